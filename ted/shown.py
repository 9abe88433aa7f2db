"""Untrusted text shown as what it is: a lesson, a library's name, a model's reply.

A library, a dataset or a server can put Rich markup (`[link=…]`, `[ignore this]`), terminal escape
sequences (colours, OSC 52 clipboard writes, cursor moves) and invisible bidi or zero-width
characters into text ted prints. Shown as is, the reader sees something other than what the
student is sent. `visible` spells every such character out (`\\x1b`, `\\u202e`) and `literal` also
escapes Rich markup, so what is printed is exactly the text, character for character.
"""

from __future__ import annotations

import re

# Control characters (C0 but tab and newline, DEL, C1), bidi overrides and isolates, zero-width and
# other invisible format characters.
HIDDEN_CHARS = "\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff"
_HIDDEN = re.compile(f"[{HIDDEN_CHARS}]")
_HIDDEN_OR_BREAK = re.compile(f"[{HIDDEN_CHARS}\t\n]")


def _spelled(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: object, *, lines: bool = False) -> str:
    """`text` with every control and invisible character spelled out; `lines` keeps tabs and newlines
    (a model's reply), otherwise they are spelled out too (a name, a table cell: one line)."""
    return (_HIDDEN if lines else _HIDDEN_OR_BREAK).sub(_spelled, str(text))


def literal(text: object, *, lines: bool = False) -> str:
    """`visible(text)` with Rich markup escaped: safe to put inside a string Rich will parse."""
    from rich.markup import escape

    return escape(visible(text, lines=lines))


def json_visible(text: str) -> str:
    """JSON text with every control and invisible character inside it as a `\\uXXXX` escape: the same
    JSON (such characters occur only inside strings), but nothing reaches a terminal unseen. `json.dumps`
    escapes C0 controls only; a bidi override or a C1 control passes raw with `ensure_ascii=False`."""
    return _HIDDEN.sub(lambda match: f"\\u{ord(match.group()):04x}", text)

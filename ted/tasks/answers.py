"""Deterministic answer extraction and scoring shared by every task.

Extraction never guesses: it looks for explicit markers and, failing those, returns None (the
reply counts as wrong and as `no_answer`). The rules, in order:

1. Reasoning is dropped: closed `<think>…</think>` blocks are removed; text after an unclosed
   `<think>` is all reasoning; with a lone `</think>` only the text after it counts.
   The library's `Used: [E1, E3]` trailer is removed too (its IDs are not answers).
2. The *last* explicit marker wins: `Answer: X` / `Final answer: X` (rest of the line),
   `\\boxed{X}` (balanced braces), or `the answer is X` (rest of the sentence).
   Several boxed answers therefore resolve to the last one.
3. Without a marker, multiple choice accepts `option X` / `choice X`, else from the last line:
   a lone letter (`B`, `(B)`, `B.`), a standalone letter at its end (`… so it is B`), a short
   line led by a letter (`(B) 4`), or the last parenthesised letter (`I pick (B) since …`).
   Free-form accepts a reply that is one short line holding a number or formula.

Scoring: multiple choice is right when the extracted answer names the gold letter, or equals the
gold option's text (after normalisation, or mathematically). Free-form answers compare as
numbers within the task's tolerance, then by mathematical equivalence (math-verify).
"""

from __future__ import annotations

import re
import string
import threading
from dataclasses import dataclass
from functools import lru_cache

LETTERS = string.ascii_uppercase

_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_USED = re.compile(r"\**Used\**\s*:\s*\[[^\]\n]*\]\**", re.IGNORECASE)
_ANSWER_LINE = re.compile(r"\b(?:final\s+)?answer\s*\**\s*[:：]\s*\**(?P<rest>[^\n]*)", re.IGNORECASE)
_ANSWER_IS = re.compile(r"\bthe\s+(?:final\s+|correct\s+)?answer\s+is\s*[:：]?\s*(?P<rest>[^\n]*)", re.IGNORECASE)
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_OPTION_WORD = re.compile(r"\b(?:option|choice)\s*\(?(?P<letter>[A-Z])\)?(?![A-Za-z0-9])")
_LONE_LETTER = re.compile(r"^\W*\(?(?P<letter>[A-Z])\)?\W*$")
_TRAILING_LETTER = re.compile(r"(?:^|[\s:])\(?(?P<letter>[A-Z])\)?[.!]?\s*$")
_PAREN_LETTER = re.compile(r"\(([A-Z])\)")
_LEAD_LETTER = re.compile(r"^\(?(?P<letter>[A-Z])(?:\)|\.|:|\s|$)")
_PROSE = re.compile(r"(?<!\\)\b[A-Za-z]{3,}")  # a word that is not a LaTeX command
_NUMBER = re.compile(r"^[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?$")
_SHORT_REPLY_CHARS = 40


def strip_reasoning(text: str) -> str:
    """The reply without thinking blocks and without the `Used: [...]` trailer."""
    text = _THINK_BLOCK.sub(" ", text)
    lowered = text.lower()
    if "<think>" in lowered:
        text = text[: lowered.index("<think>")]
    elif "</think>" in lowered:
        text = text[lowered.rindex("</think>") + len("</think>") :]
    return _USED.sub(" ", text).strip()


def _boxed_spans(text: str) -> list[tuple[int, str]]:
    """(start, content) of every `\\boxed{…}` with balanced braces."""
    spans = []
    for match in _BOXED.finditer(text):
        depth, i = 1, match.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            spans.append((match.start(), text[match.end() : i - 1]))
    return spans


def clean_candidate(text: str) -> str:
    """Strip wrappers around an answer: boxed, $…$, \\(…\\), **bold**, quotes, trailing period."""
    text = text.strip()
    boxed = _boxed_spans(text)
    if boxed:
        text = boxed[-1][1]
    text = re.sub(r"^\\\(|\\\)$|^\\\[|\\\]$", "", text.strip())
    text = text.strip().strip("*`\"' ").strip("$").strip()
    text = re.sub(r"\\text\{\s*([^{}]*)\}", r"\1", text)
    return text.rstrip(".。").strip()


def find_marked(text: str) -> str | None:
    """The answer after the last explicit marker (Answer:, \\boxed{}, 'the answer is'), if any."""
    found: list[tuple[int, str]] = []
    for pattern in (_ANSWER_LINE, _ANSWER_IS):
        found += [(m.start("rest"), _first_sentence(m.group("rest"))) for m in pattern.finditer(text)]
    # A box inside a marked span starts later, so the box (exact, braces balanced) wins.
    found += _boxed_spans(text)
    found = [(pos, body) for pos, body in found if clean_candidate(body)]
    if not found:
        return None
    return max(found, key=lambda item: item[0])[1]


def _first_sentence(text: str) -> str:
    """Cut prose after the answer: '12. Because…' → '12' (decimals like 3.5 are kept)."""
    return re.split(r"(?<=[^\d\s])\.(?:\s|$)|\.\s+(?=[A-Z])", text, maxsplit=1)[0]


def extract(text: str, letters: str | None = None, options: list[str] | None = None) -> str | None:
    """The final answer in `text`: a letter for multiple choice when one can be resolved."""
    if not text:
        return None
    body = strip_reasoning(text)
    if not body:
        return None
    marked = find_marked(body)
    if letters:
        if marked is not None:
            candidate = clean_candidate(marked)
            return to_letter(candidate, letters, options) or candidate or None
        return _fallback_letter(body, letters)
    if marked is not None:
        return clean_candidate(marked) or None
    lines = [line for line in body.splitlines() if line.strip()]
    if len(lines) == 1 and len(lines[0]) <= _SHORT_REPLY_CHARS:
        candidate = clean_candidate(lines[0])
        if to_number(candidate) is not None or (_looks_mathy(candidate) and not _PROSE.search(candidate)):
            return candidate
    return None


def _fallback_letter(body: str, letters: str) -> str | None:
    words = [m.group("letter") for m in _OPTION_WORD.finditer(body) if m.group("letter") in letters]
    if words:
        return words[-1]
    last_line = [line for line in body.splitlines() if line.strip()][-1].strip().strip("*")
    for pattern in (_LONE_LETTER, _TRAILING_LETTER):
        match = pattern.search(last_line)
        if match and match.group("letter") in letters:
            return match.group("letter")
    if len(last_line) <= _SHORT_REPLY_CHARS and (letter := to_letter(last_line, letters, None)):
        return letter
    parenthesised = [m.group(1) for m in _PAREN_LETTER.finditer(last_line) if m.group(1) in letters]
    return parenthesised[-1] if parenthesised else None


def to_letter(candidate: str, letters: str, options: list[str] | None) -> str | None:
    """Resolve an answer to an option letter: 'B', '(B)', 'B) 12', 'option B', or an option's text."""
    candidate = candidate.strip()
    match = _LEAD_LETTER.match(candidate) or _OPTION_WORD.search(candidate)
    if match and match.group("letter") in letters:
        rest = candidate[match.end() :].strip()
        # 'B) 12' or 'B' is a letter; 'A triangle' is prose, not option A.
        if not rest or candidate[match.end() - 1 : match.end()] in ").:" or _OPTION_WORD.search(candidate):
            return match.group("letter")
    if options:
        norm = normalise_text(candidate)
        for letter, option in zip(letters, options):
            if norm and norm == normalise_text(option):
                return letter
        for letter, option in zip(letters, options):
            if _looks_mathy(option) and math_equal(option, candidate):
                return letter
    return None


def normalise_text(text: str) -> str:
    text = clean_candidate(text).lower()
    text = re.sub(r"\\(?:left|right|,|;|!|\s)", "", text)
    return re.sub(r"\s+", "", text).rstrip(".")


def _looks_mathy(text: str) -> bool:
    return bool(re.search(r"[\d\\^=/]", text))


def to_number(text: str) -> float | None:
    """A plain number ('1,234', '070', '-0.5', '50%' is not one), else None."""
    text = clean_candidate(text).replace(",", "").replace("{,}", "").replace(" ", "")
    if _NUMBER.match(text):
        return float(text)
    return None


def to_integer(text: str) -> int | None:
    """An integer answer ('070' → 70, '70.0' → 70), else None."""
    number = to_number(text)
    if number is None or not number.is_integer():
        return None
    return int(number)


@lru_cache(maxsize=4096)
def _parse(text: str) -> tuple:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    timeout = 5 if threading.current_thread() is threading.main_thread() else None
    configs = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
    parsed = parse(f"${text}$", extraction_config=configs, parsing_timeout=timeout)
    if not parsed:
        parsed = parse(text, extraction_config=configs, parsing_timeout=timeout)
    return tuple(parsed)


def math_equal(gold: str, predicted: str, float_rounding: int = 6) -> bool:
    """Mathematical equivalence by math-verify ('\\frac{1}{2}' equals '0.5' and '1/2')."""
    from math_verify import verify

    gold_parsed, pred_parsed = _parse(clean_candidate(gold)), _parse(clean_candidate(predicted))
    if not gold_parsed or not pred_parsed:
        return False
    timeout = 5 if threading.current_thread() is threading.main_thread() else None
    try:
        return bool(verify(list(gold_parsed), list(pred_parsed), float_rounding=float_rounding, timeout_seconds=timeout))
    except Exception:  # noqa: BLE001  (sympy can raise anything on odd input; unequal is the safe verdict)
        return False


@dataclass(frozen=True)
class Tolerance:
    """How close two numbers must be: `decimals` rounds both (MathVision: 2), else relative `rel`."""

    decimals: int | None = None
    rel: float = 1e-6

    def equal(self, a: float, b: float) -> bool:
        if self.decimals is not None:
            return round(a, self.decimals) == round(b, self.decimals)
        return abs(a - b) <= self.rel * max(1.0, abs(a), abs(b))


def free_form_equal(gold: str, predicted: str, tolerance: Tolerance = Tolerance()) -> bool:
    """Numbers within tolerance, else normalised text equality, else math-verify equivalence."""
    gold_number, pred_number = to_number(gold), to_number(predicted)
    if gold_number is not None and pred_number is not None:
        return tolerance.equal(gold_number, pred_number)
    if normalise_text(gold) == normalise_text(predicted):
        return True
    return math_equal(gold, predicted)

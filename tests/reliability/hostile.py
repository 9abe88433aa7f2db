"""Builders of hostile and broken files: libraries, data rows, images. Each returns bytes or writes a file."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any

LESSON = "Check the units of the final answer against the question."


def library_json(items: list[dict[str, Any]] | Any, **extra: Any) -> bytes:
    return json.dumps({"format": "ted-library/1", "name": "hostile", "items": items, **extra}, ensure_ascii=False).encode()


def item(i: int, text: str = LESSON) -> dict[str, Any]:
    return {"id": f"E{i}", "text": text}


def nested_json(depth: int = 100_000) -> bytes:
    """Valid JSON nested deeper than any parser's recursion limit."""
    return b'{"format": "ted-library/1", "config": ' + b"[" * depth + b"]" * depth + b"}"


def png(width: int, height: int, *, pixels: bool = True) -> bytes:
    """A greyscale PNG of any size. With `pixels=False` only the header is real (what a bomb needs)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    raw = (b"\x00" + b"\x00" * width) * height if pixels else b"\x00" * 16
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>\n'


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def jsonl(*rows: Any) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


# Every way an untrusted library file can be wrong, by name; used for the CLI, the Hub and the Space.
HOSTILE_LIBRARIES: dict[str, bytes] = {
    "truncated": library_json([item(1)])[:-7],
    "not_utf8": b'{"format": "ted-library/1", "name": "caf\xe9"}',
    "nested": nested_json(),
    "wrong_types": library_json("E1: check units"),
    "missing_text": library_json([{"id": "E1", "usage": 3}]),
    "foreign_format": json.dumps({"format": "something-else/2", "items": []}).encode(),
    "ten_thousand_items": library_json([item(i) for i in range(1, 10_001)]),
    "megabyte_text": library_json([item(1, "x" * 1_000_000)]),
    "huge_file": library_json([item(1)], name="n" * 5_000_000),
    "control_chars": library_json([item(1, "Check units.\x1b[2J\x07 Then answer.")]),
    "zero_width": library_json([item(1, "Check\u200b the units\u2060 first.")]),
    "bidi_override": library_json([item(1, "Check the units \u202eraw ylno\u202c first.")]),
    "colliding_ids": library_json([item(1), item(1, "Restate the question before solving it.")]),
    "bad_id": library_json([{"id": "../../E1", "text": LESSON}]),
}

"""The experience library's data model: the file format (`ted-library/1`) and the verbs that change it.

A library read from anywhere is untrusted text. `Library.load` checks the size before parsing,
validates the schema, and caps the number of items, the characters per item and the total size.
Nothing is executed or unpickled. Writes are atomic (temp file + `os.replace`), so a crash never
leaves a half-written library on disk.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_serializer, model_validator

from ted.control_tokens import find_control, refusal
from ted.errors import LibraryError
from ted.files import atomic_write, parse_json
from ted.library.citations import render_block
from ted.library.lessons import CONTROL, INVISIBLE, MAX_ITEM_CHARS, ID_RE, format_id, id_number
from ted.library.metrics import Cost, Metrics
from ted.limits import BUDGET_ITEMS, BUDGET_TOKENS, MAX_ITEMS, MAX_NESTING, Strategy
from ted.redact import scrub_value
from ted.tokens import DEFAULT_TOKENIZER, TokenCounter, get_counter

FORMAT = "ted-library/1"
FILENAME = "library.json"
MAX_FILE_BYTES = 4_000_000
MAX_HISTORY = 20_000
MAX_SOURCES = 64  # problem ids kept per item, newest last

Verdict = Literal["helpful", "harmful", "irrelevant"]
VERDICTS: tuple[str, ...] = ("helpful", "harmful", "irrelevant")


class Verdicts(BaseModel):
    """How often the teacher judged a lesson helpful, harmful or irrelevant on attempts that cited it."""

    model_config = ConfigDict(extra="forbid")

    helpful: int = Field(default=0, ge=0)
    harmful: int = Field(default=0, ge=0)
    irrelevant: int = Field(default=0, ge=0)

    def __add__(self, other: Verdicts) -> Verdicts:
        return Verdicts(**{v: getattr(self, v) + getattr(other, v) for v in VERDICTS})


def _signed(value: float) -> str:
    """`+0.120`; a zero is `+0.000`, never `-0.000`."""
    return f"{round(value, 3) + 0.0:+.3f}"


class Attribution(BaseModel):
    """A lesson's measured effect on accuracy (`ted attribute`): percentage points with it in the
    prompt, its 95% interval, and the problems the estimate rests on."""

    model_config = ConfigDict(extra="forbid")

    effect: float = Field(ge=-1, le=1, allow_inf_nan=False)
    effect_ci95: tuple[float, float]
    n: int = Field(ge=1)

    def label(self) -> str:
        """`+0.120 [+0.030, +0.210] n=200`: how `ted show`, the card and the Space print it."""
        low, high = self.effect_ci95
        return f"{_signed(self.effect)} [{_signed(low)}, {_signed(high)}] n={self.n}"

    @field_validator("effect_ci95")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not (math.isfinite(low) and math.isfinite(high) and -1 <= low <= high <= 1):
            raise ValueError("an interval [low, high] with -1 <= low <= high <= 1")
        return value


class Experience(BaseModel):
    """One general lesson. `usage` counts how often student rollouts cited it; `seen` how many
    rollouts had it in their prompt (could have cited it), so a new lesson is not taken for a useless one."""

    model_config = ConfigDict(extra="forbid")

    id: str
    text: str = Field(min_length=1, max_length=MAX_ITEM_CHARS)
    usage: int = Field(default=0, ge=0)
    seen: int = Field(default=0, ge=0)
    verdicts: Verdicts = Field(default_factory=Verdicts)
    created_step: int = Field(default=0, ge=0)
    updated_step: int = Field(default=0, ge=0)
    sources: list[str] = Field(default_factory=list, max_length=MAX_SOURCES)
    attribution: Attribution | None = None  # additive: written by `ted attribute`, absent until then

    @model_serializer(mode="wrap")
    def _to_file(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        if data.get("attribution") is None:
            data.pop("attribution", None)
        return data

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not ID_RE.match(value):
            raise ValueError("ids look like E1, E2, …")
        return value

    @field_validator("text")
    @classmethod
    def _check_text(cls, value: str) -> str:
        if INVISIBLE.search(value):
            raise ValueError("contains invisible Unicode characters (zero-width or bidi controls)")
        if CONTROL.search(value):
            raise ValueError("contains control characters")
        if found := find_control(value):
            raise ValueError(refusal("the text", found))
        if not value.strip():
            raise ValueError("is blank")
        return value

    @property
    def priority(self) -> float:
        """s(e) = log(1 + usage(e)), the paper's retention priority."""
        return math.log1p(self.usage)


HistoryOp = Literal["add", "update", "merge", "rewrite", "delete", "drop", "fallback"]


class HistoryEntry(BaseModel):
    """One operation applied to the library, for provenance (what merged into what, when)."""

    model_config = ConfigDict(extra="forbid")

    step: int = Field(ge=0)
    op: HistoryOp
    ids: list[str] = Field(default_factory=list, max_length=MAX_ITEMS)
    into: str | None = None
    note: str | None = Field(default=None, max_length=MAX_ITEM_CHARS)


class ModelInfo(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = ""
    backend: str = ""


class SourceInfo(BaseModel):
    model_config = ConfigDict(extra="allow")

    dataset: str | None = None
    split: str | None = None
    revision: str | None = None
    samples: int | None = None
    epochs: int | None = None
    rollouts: int | None = None
    batch_size: int | None = None
    seed: int | None = None


class Budget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_tokens: int = Field(default=BUDGET_TOKENS, ge=1)
    max_items: int = Field(default=BUDGET_ITEMS, ge=1, le=MAX_ITEMS)
    tokenizer: str = DEFAULT_TOKENIZER


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Library(BaseModel):
    """The experience library file. Items are kept and rendered in ID order."""

    model_config = ConfigDict(extra="forbid", validate_assignment=False)

    format: Literal["ted-library/1"] = FORMAT
    name: str = Field(default="library", max_length=200)
    version: str = Field(default="0.1.0", max_length=64)
    created: str = Field(default_factory=_now)
    student: ModelInfo = Field(default_factory=ModelInfo)
    teacher: ModelInfo = Field(default_factory=ModelInfo)
    source: SourceInfo = Field(default_factory=SourceInfo)
    budget: Budget = Field(default_factory=Budget)
    compression: Strategy = "teacher"
    items: list[Experience] = Field(default_factory=list, max_length=MAX_ITEMS)
    history: list[HistoryEntry] = Field(default_factory=list, max_length=MAX_HISTORY)
    metrics: Metrics = Field(default_factory=Metrics)
    cost: Cost = Field(default_factory=Cost)
    next_id: int = Field(default=1, ge=1, description="IDs are never reused: the next new item gets E{next_id}.")
    config: dict[str, Any] = Field(default_factory=dict)

    @field_validator("student", "teacher", "source", "config")
    @classmethod
    def _scrub_urls(cls, value: Any) -> Any:
        """Stored provenance never keeps a credential from an endpoint or data URL (see ted.redact)."""
        if isinstance(value, BaseModel):
            return type(value).model_validate(scrub_value(value.model_dump()))
        return scrub_value(value)

    @model_validator(mode="after")
    def _check_ids(self) -> Library:
        seen: set[str] = set()
        for item in self.items:
            if item.id in seen:
                raise ValueError(f"duplicate experience id {item.id}")
            seen.add(item.id)
        self.items.sort(key=lambda e: id_number(e.id))
        highest = max((id_number(e.id) for e in self.items), default=0)
        self.next_id = max(self.next_id, highest + 1)
        return self

    # ----------------------------------------------------------------- reading and writing
    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Library:
        """Load and validate a library from a `library.json` file or a folder holding one."""
        p = Path(path)
        if p.is_dir():
            p = p / FILENAME
        if not p.is_file():
            raise LibraryError(f"{path}: no library file found (expected a library.json or a folder holding one)")
        size = p.stat().st_size
        if size > MAX_FILE_BYTES:
            raise LibraryError(f"{p}: library file is {size:,} bytes, over the {MAX_FILE_BYTES:,}-byte cap; is it really a library?")
        try:
            raw = p.read_bytes().decode("utf-8")
        except UnicodeDecodeError as err:
            raise LibraryError(f"{p}: not UTF-8 text ({err.reason} at byte {err.start})") from None
        return cls.from_json(raw, origin=str(p))

    @classmethod
    def from_json(cls, raw: str | bytes, origin: str = "library") -> Library:
        if len(raw) > MAX_FILE_BYTES:
            raise LibraryError(f"{origin}: library is over the {MAX_FILE_BYTES:,}-byte cap")
        data = parse_json(raw, LibraryError, origin, MAX_NESTING)  # duplicate keys, NaN, deep nesting: refused
        return cls.from_dict(data, origin=origin)

    @classmethod
    def from_dict(cls, data: Any, origin: str = "library") -> Library:
        if not isinstance(data, dict):
            raise LibraryError(f"{origin}: a library is a JSON object, got {type(data).__name__}")
        fmt = data.get("format")
        if fmt != FORMAT:
            raise LibraryError(f"{origin}: format is {fmt!r}, expected {FORMAT!r}; is this a ted library?")
        items = data.get("items")
        if isinstance(items, list) and len(items) > MAX_ITEMS:
            raise LibraryError(f"{origin}: {len(items):,} items, over the cap of {MAX_ITEMS}")
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            first = err.errors()[0]
            loc = first["loc"]
            where = ".".join(str(part) for part in loc) or "(top level)"
            if len(loc) > 1 and loc[0] == "items" and isinstance(loc[1], int) and isinstance(data["items"][loc[1]], dict):
                where += f" (experience {str(data['items'][loc[1]].get('id'))[:20]})"  # the item a reader looks for
            more = f" (and {err.error_count() - 1} more problems)" if err.error_count() > 1 else ""
            message = first["msg"].removeprefix("Value error, ")
            raise LibraryError(f"{origin}: invalid library at {where}: {message}{more}") from None

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), ensure_ascii=False, indent=2) + "\n"

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write atomically: readers see the old file or the new one, never a torn one."""
        return atomic_write(Path(path), self.to_json())

    # ----------------------------------------------------------------- the prompt block
    def render(self, cite: bool = True, frame: bool = False) -> str:
        """The exact block injected into the student's system prompt ("" when empty, unless `frame`:
        then the heading and citation instruction stand alone, as in the placebo arm).

        Items render in ID order, so the same library gives the same bytes on every request and
        server prefix caches hit. `cite=False`: the citation-free block for tasks ted does not
        grade itself (see `render_block`).
        """
        return render_block(self.items, cite=cite, frame=frame)

    def tokens(self, counter: TokenCounter | None = None, keep: bool = False) -> int:
        """The rendered block's tokens; `keep` for a count people will ask for again (see `ted.tokens`)."""
        if not self.items:
            return 0
        return (counter or get_counter(self.budget.tokenizer)).count(self.render(), keep=keep)

    def fits(self, counter: TokenCounter | None = None, items: list[Experience] | None = None) -> bool:
        """Whether the library (or the same library holding only `items`) is within its budget."""
        if items is not None:
            return self.model_copy(update={"items": sorted(items, key=lambda e: id_number(e.id))}).fits(counter)
        return len(self.items) <= self.budget.max_items and self.tokens(counter) <= self.budget.max_tokens

    # ----------------------------------------------------------------- editing
    def get(self, item_id: str) -> Experience | None:
        return next((item for item in self.items if item.id == item_id), None)

    def ids(self) -> list[str]:
        return [item.id for item in self.items]

    # The verbs below are the only way items change: each keeps the items in ID order (new IDs
    # are the highest) and logs one history entry. Stages decide what to do; the Library applies it.
    def add(self, text: str, step: int, sources: list[str] | None = None, note: str | None = None) -> Experience:
        """A new item with a fresh ID (IDs are never reused)."""
        item = self._new(text, step, list(sources or []), usage=0)
        self.log(step, "add", [item.id], note=note)
        return item

    def update(self, item_id: str, text: str, step: int, source: str | None = None, note: str | None = None) -> Experience:
        """New text for an item a problem taught more about; the problem joins its sources."""
        item = self._require(item_id)
        item.text, item.updated_step = text, step
        if source is not None and source not in item.sources:
            item.sources = (item.sources + [source])[-MAX_SOURCES:]
        self.log(step, "update", [item_id], note=note)
        return item

    def merge(self, ids: list[str], text: str, step: int) -> Experience:
        """Several items become one new item holding their usage and sources."""
        merged = [self._take(i) for i in ids]
        sources = list(dict.fromkeys(s for item in merged for s in item.sources))[-MAX_SOURCES:]
        item = self._new(text, step, sources, usage=sum(e.usage for e in merged))
        item.seen = max(e.seen for e in merged)  # the same rollouts saw them all: not a sum
        item.verdicts = sum((e.verdicts for e in merged), Verdicts())
        self.log(step, "merge", list(ids), into=item.id)
        return item

    def rewrite(self, item_id: str, text: str, step: int) -> Experience:
        """Clearer, more general text for an item (compression); its usage stays."""
        item = self._require(item_id)
        item.text, item.updated_step = text, step
        self.log(step, "rewrite", [item_id])
        return item

    def delete(self, ids: list[str], step: int) -> list[Experience]:
        """Remove items the teacher chose to delete."""
        removed = [self._take(i) for i in ids]
        self.log(step, "delete", list(ids))
        return removed

    def drop(self, ids: list[str], step: int, note: str, fallback: bool = False) -> None:
        """Remove items to meet the budget without the teacher (truncate, random, or the teacher's fallback)."""
        if not ids:
            return
        for item_id in ids:
            self._take(item_id)
        self.log(step, "fallback" if fallback else "drop", list(ids), note=note)

    def record_usage(self, citations: Iterable[list[str]]) -> Counter[str]:
        """One use per citing rollout for each cited item still in the library; returns the counts."""
        counts: Counter[str] = Counter(item_id for ids in citations for item_id in ids)
        for item in self.items:
            item.usage += counts.get(item.id, 0)
        return counts

    def record_seen(self, ids: Iterable[str], rollouts: int) -> None:
        """`rollouts` more student answers had these items in their prompt."""
        wanted = set(ids)
        for item in self.items:
            if item.id in wanted:
                item.seen += rollouts

    def record_verdicts(self, verdicts: Iterable[tuple[str, Verdict]]) -> None:
        """The teacher's verdicts on cited lessons, counted on the items still in the library."""
        for item_id, verdict in verdicts:
            item = self.get(item_id)
            if item is not None:
                setattr(item.verdicts, verdict, getattr(item.verdicts, verdict) + 1)

    def log(self, step: int, op: HistoryOp, ids: list[str], into: str | None = None, note: str | None = None) -> None:
        self.history.append(HistoryEntry(step=step, op=op, ids=ids, into=into, note=note))
        if len(self.history) > MAX_HISTORY:  # keep the newest entries, so the file always loads again
            del self.history[: len(self.history) - MAX_HISTORY]

    def _new(self, text: str, step: int, sources: list[str], usage: int) -> Experience:
        item = Experience(id=format_id(self.next_id), text=text, usage=usage, created_step=step, updated_step=step, sources=sources)
        self.next_id += 1
        self.items.append(item)
        return item

    def _require(self, item_id: str) -> Experience:
        item = self.get(item_id)
        if item is None:
            raise LibraryError(f"no experience {item_id} in the library")
        return item

    def _take(self, item_id: str) -> Experience:
        item = self._require(item_id)
        self.items.remove(item)
        return item

    def copy_deep(self) -> Library:
        return self.model_copy(deep=True)


@dataclass
class LibraryDiff:
    """Items added, removed and rewritten between two libraries (matched by ID)."""

    added: list[Experience] = field(default_factory=list)
    removed: list[Experience] = field(default_factory=list)
    changed: list[tuple[Experience, Experience]] = field(default_factory=list)
    usage: list[tuple[str, int, int]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


def diff(a: Library, b: Library) -> LibraryDiff:
    old = {item.id: item for item in a.items}
    new = {item.id: item for item in b.items}
    result = LibraryDiff(
        added=[new[i] for i in new if i not in old],
        removed=[old[i] for i in old if i not in new],
    )
    for item_id in old.keys() & new.keys():
        before, after = old[item_id], new[item_id]
        if before.text != after.text:
            result.changed.append((before, after))
        if before.usage != after.usage:
            result.usage.append((item_id, before.usage, after.usage))
    result.changed.sort(key=lambda pair: id_number(pair[0].id))
    result.usage.sort(key=lambda row: id_number(row[0]))
    return result


def check_library(library: Library, extra: Iterable[str] = ()) -> None:
    """Refuse a library any of whose items holds a control sequence of the list or of `extra`
    (the student tokenizer's own special tokens: `ted.control_tokens.special_tokens`)."""
    extra = tuple(extra)
    for item in library.items:
        if found := find_control(item.text, extra):
            raise LibraryError(refusal(f"library {library.name!r}, experience {item.id},", found))

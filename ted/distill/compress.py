"""Compression: keep the library within its budget.

Strategies (for ablation, as in the paper):
- `teacher` (default): the teacher sees every item with usage and priority s(e) = log(1 + usage),
  its age (steps since it was written, rollouts that could have cited it) and the extraction
  verdicts on it (helpful / harmful / irrelevant), and returns merge / rewrite / delete / retain
  operations; if the result still does not fit after retries, the lowest-priority items are
  dropped deterministically and the fallback is logged.
- `truncate`: keep the first items in ID order that fit.
- `random`: a seeded random subset that fits.
- `none`: no compression (growth up to the file's item cap, `MAX_ITEMS`).
- `usage`: `teacher` with each item's usage and priority only, as the paper's arm (no ages, no verdicts).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field

from ted import prompts
from ted.distill.options import STRATEGIES, Strategy
from ted.library import Library
from ted.library.lessons import ID_PATTERN, LESSON_MAX_CHARS, LESSON_MAX_WORDS, clean_text, id_number, lesson_problem
from ted.models.base import ChatModel, ChatResult, Message, SamplingParams, chat_json
from ted.tokens import TokenCounter



class CompressOp(BaseModel):
    op: Literal["merge", "rewrite", "delete", "retain"]
    ids: list[str] = Field(default_factory=list, json_schema_extra={"items": {"type": "string", "pattern": ID_PATTERN}})
    text: str | None = Field(default=None, json_schema_extra={"maxLength": LESSON_MAX_CHARS})


class CompressionOps(BaseModel):
    operations: list[CompressOp] = Field(default_factory=list)


@dataclass
class CompressionReport:
    strategy: str
    before_items: int
    before_tokens: int
    after_items: int
    after_tokens: int
    rounds: int = 0
    fallback: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.rounds) or self.after_items != self.before_items

    def message(self, step: int) -> str:
        """The run-log line of a compression that did something."""
        text = (
            f"step {step}: compression ({self.strategy}) {self.before_items}→{self.after_items} items, "
            f"{self.before_tokens}→{self.after_tokens} tokens"
        )
        return text + ("; teacher result did not fit, dropped lowest-priority items (fallback)" if self.fallback else "")


@dataclass(frozen=True)
class Compression:
    """What one compression needs: the library's budget is the library's own."""

    counter: TokenCounter
    step: int
    seed: int
    teacher: ChatModel | None = None
    params: SamplingParams | None = None
    retries: int = 2


def drop_lowest_priority(library: Library, counter: TokenCounter, step: int) -> list[str]:
    """Deterministic fallback: drop by ascending priority (older first on ties) until it fits."""
    remaining = list(library.items)
    dropped: list[str] = []
    for item in sorted(library.items, key=lambda e: (e.priority, id_number(e.id))):
        if library.fits(counter, remaining):
            break
        remaining.remove(item)
        dropped.append(item.id)
    library.drop(dropped, step, note="teacher compression did not fit; dropped lowest priority", fallback=True)
    return dropped


def keep_fitting(library: Library, order: list[str], counter: TokenCounter, step: int, strategy: str) -> None:
    """Greedily keep items in `order` while the library fits; the rest are dropped."""
    kept = []
    for item_id in order:
        trial = kept + [library.get(item_id)]
        if library.fits(counter, trial):
            kept = trial
    keep = {item.id for item in kept}
    library.drop([i for i in order if i not in keep], step, note=strategy)


def apply_compression_ops(library: Library, ops: list[CompressOp], step: int) -> list[str]:
    """Apply the teacher's ops; invalid ones (unknown ids, ids used twice, a text that is no lesson) are skipped."""
    skipped: list[str] = []
    claimed: set[str] = set()
    for op in ops:
        ids = list(dict.fromkeys(op.ids))
        if not ids or any(library.get(i) is None or i in claimed for i in ids):
            skipped.append(f"{op.op} {ids}: unknown or repeated id")
            continue
        text = clean_text(op.text or "")
        # The lesson check of extraction; no problem numbers to avoid: a merge spans several problems.
        if op.op in ("merge", "rewrite") and (found := lesson_problem(text, prompts.active().words)):
            skipped.append(f"{op.op} {ids}: {found.detail}")
            continue
        claimed.update(ids)
        if op.op == "merge" and len(ids) >= 2:
            library.merge(ids, text, step)
        elif op.op in ("merge", "rewrite"):  # a merge of one item is a rewrite
            library.rewrite(ids[0], text, step)
        elif op.op == "delete":
            library.delete(ids, step)
    return skipped


# --------------------------------------------------------------------------- strategies
async def _none(library: Library, c: Compression, report: CompressionReport) -> ChatResult:
    return ChatResult.empty()


async def _truncate(library: Library, c: Compression, report: CompressionReport) -> ChatResult:
    keep_fitting(library, library.ids(), c.counter, c.step, "truncate")
    return ChatResult.empty()


async def _random(library: Library, c: Compression, report: CompressionReport) -> ChatResult:
    order = library.ids()
    random.Random(f"{c.seed}:{c.step}").shuffle(order)
    keep_fitting(library, order, c.counter, c.step, "random")
    return ChatResult.empty()


async def _teacher(library: Library, c: Compression, report: CompressionReport, usage_only: bool = False) -> ChatResult:
    if c.teacher is None:
        raise ValueError("teacher compression needs a teacher model")
    cost = ChatResult.empty()
    feedback = ""
    while report.rounds <= c.retries and not library.fits(c.counter):
        report.rounds += 1
        prompt = prompts.render(
            "compress",
            max_items=library.budget.max_items,
            max_tokens=library.budget.max_tokens,
            n_items=len(library.items),
            n_tokens=library.tokens(c.counter),
            max_chars=LESSON_MAX_CHARS,
            max_words=LESSON_MAX_WORDS,
            feedback=feedback,
            usage_only=usage_only,
            items=[
                {
                    "id": e.id, "usage": e.usage, "priority": e.priority, "tokens": c.counter.count(e.text), "text": e.text,
                    "age": c.step - e.created_step, "seen": e.seen, **e.verdicts.model_dump(),
                }
                for e in library.items
            ],  # fmt: skip
        )
        parsed, result = await chat_json(c.teacher, [Message("user", prompt)], CompressionOps, c.params)
        cost += result
        if parsed is not None:
            apply_compression_ops(library, parsed.operations, c.step)
        feedback = f"{len(library.items)} items and {library.tokens(c.counter)} tokens remain"
    if not library.fits(c.counter):
        report.fallback = bool(drop_lowest_priority(library, c.counter, c.step))
    return cost


STRATEGY_TABLE: dict[str, Callable[[Library, Compression, CompressionReport], Awaitable[ChatResult]]] = {
    "teacher": _teacher,
    "truncate": _truncate,
    "random": _random,
    "none": _none,
    "usage": lambda library, c, report: _teacher(library, c, report, usage_only=True),
}
assert tuple(STRATEGY_TABLE) == STRATEGIES


async def compress(
    library: Library,
    strategy: Strategy,
    counter: TokenCounter,
    step: int,
    seed: int,
    teacher: ChatModel | None = None,
    params: SamplingParams | None = None,
    retries: int = 2,
) -> tuple[CompressionReport, ChatResult]:
    """Bring `library` within budget in place, by `strategy`. Returns a report and the teacher's cost."""
    if strategy not in STRATEGY_TABLE:
        raise ValueError(f"unknown compression strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    report = CompressionReport(strategy, len(library.items), library.tokens(counter), 0, 0)
    cost = ChatResult.empty()
    if not library.fits(counter):
        cost = await STRATEGY_TABLE[strategy](library, Compression(counter, step, seed, teacher, params, retries), report)
    report.after_items, report.after_tokens = len(library.items), library.tokens(counter)
    return report, cost

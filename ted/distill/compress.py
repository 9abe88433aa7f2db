"""Compression: keep the library within its budget.

Strategies (for ablation, as in the paper):
- `teacher` (default): the teacher sees every item with usage and priority s(e) = log(1 + usage)
  and returns merge / rewrite / delete / retain operations; if the result still does not fit after
  retries, the lowest-priority items are dropped deterministically and the fallback is logged.
- `truncate`: keep the first items in ID order that fit.
- `random`: a seeded random subset that fits.
- `none`: unbounded growth.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field

from ted import prompts
from ted.control_tokens import find_control
from ted.distill.extract import MAX_CHARS
from ted.library import Library, clean_text, id_number
from ted.models.base import ChatModel, ChatResult, Message, SamplingParams, Usage, chat_json
from ted.tokens import TokenCounter

Strategy = Literal["teacher", "truncate", "random", "none"]
STRATEGIES: tuple[str, ...] = ("teacher", "truncate", "random", "none")


class CompressOp(BaseModel):
    op: Literal["merge", "rewrite", "delete", "retain"]
    ids: list[str] = Field(default_factory=list, json_schema_extra={"items": {"type": "string", "pattern": "^E[1-9][0-9]{0,5}$"}})
    text: str | None = Field(default=None, json_schema_extra={"maxLength": MAX_CHARS})


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


def drop_lowest_priority(library: Library, counter: TokenCounter, step: int) -> list[str]:
    """Deterministic fallback: drop by ascending priority (older first on ties) until it fits."""
    dropped: list[str] = []
    for item in sorted(library.items, key=lambda e: (e.priority, id_number(e.id))):
        if library.fits(counter):
            break
        library.items.remove(item)
        dropped.append(item.id)
    if dropped:
        library.log(step, "fallback", dropped, note="teacher compression did not fit; dropped lowest priority")
    return dropped


def keep_fitting(library: Library, order: list[str], counter: TokenCounter, step: int, op: str) -> None:
    """Greedily keep items in `order` while the library fits; the rest are dropped."""
    candidates = {item.id: item for item in library.items}
    library.items = []
    for item_id in order:
        library.items.append(candidates[item_id])
        library.items.sort(key=lambda e: id_number(e.id))
        if not library.fits(counter):
            library.items.remove(candidates[item_id])
    dropped = [i for i in order if library.get(i) is None]
    if dropped:
        library.log(step, "drop", dropped, note=op)


def apply_compression_ops(library: Library, ops: list[CompressOp], step: int) -> list[str]:
    """Apply the teacher's ops; invalid ones (unknown ids, ids used twice, empty text) are skipped."""
    skipped: list[str] = []
    claimed: set[str] = set()
    for op in ops:
        ids = list(dict.fromkeys(op.ids))
        if not ids or any(library.get(i) is None or i in claimed for i in ids):
            skipped.append(f"{op.op} {ids}: unknown or repeated id")
            continue
        text = clean_text(op.text or "")
        if op.op in ("merge", "rewrite") and not 1 <= len(text) <= MAX_CHARS:
            skipped.append(f"{op.op} {ids}: text missing or over {MAX_CHARS} characters")
            continue
        if op.op in ("merge", "rewrite") and (found := find_control(text)):
            skipped.append(f"{op.op} {ids}: chat-template control sequence {found!r}")
            continue
        if op.op == "merge" and len(ids) < 2:
            op = CompressOp(op="rewrite", ids=ids, text=text)
        claimed.update(ids)
        if op.op == "merge":
            merged = [library.remove(i) for i in ids]
            sources = list(dict.fromkeys(s for e in merged for s in e.sources))[-64:]
            new = library.add(text, step, sources=sources, usage=sum(e.usage for e in merged))
            library.log(step, "merge", ids, into=new.id)
        elif op.op == "rewrite":
            item = library.get(ids[0])
            assert item is not None
            item.text, item.updated_step = text, step
            library.log(step, "rewrite", ids)
        elif op.op == "delete":
            for i in ids:
                library.remove(i)
            library.log(step, "delete", ids)
    return skipped


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
    cost = ChatResult(texts=[], usage=Usage(), requests=0)
    report = CompressionReport(strategy, len(library.items), library.tokens(counter), 0, 0)
    if strategy == "none" or library.fits(counter):
        report.after_items, report.after_tokens = report.before_items, report.before_tokens
        return report, cost
    if strategy == "truncate":
        keep_fitting(library, library.ids(), counter, step, "truncate")
    elif strategy == "random":
        order = library.ids()
        random.Random(f"{seed}:{step}").shuffle(order)
        keep_fitting(library, order, counter, step, "random")
    elif strategy == "teacher":
        if teacher is None:
            raise ValueError("teacher compression needs a teacher model")
        feedback = ""
        while report.rounds <= retries and not library.fits(counter):
            report.rounds += 1
            prompt = prompts.render(
                "compress",
                max_items=library.budget.max_items,
                max_tokens=library.budget.max_tokens,
                n_items=len(library.items),
                n_tokens=library.tokens(counter),
                max_chars=MAX_CHARS,
                feedback=feedback,
                items=[
                    {"id": e.id, "usage": e.usage, "priority": e.priority, "tokens": counter.count(e.text), "text": e.text}
                    for e in library.items
                ],
            )
            parsed, result = await chat_json(teacher, [Message("user", prompt)], CompressionOps, params)
            cost.usage += result.usage
            cost.requests += result.requests
            cost.retries += result.retries
            cost.wall_s += result.wall_s
            if parsed is not None:
                apply_compression_ops(library, parsed.operations, step)
            feedback = f"{len(library.items)} items and {library.tokens(counter)} tokens remain"
        if not library.fits(counter):
            report.fallback = bool(drop_lowest_priority(library, counter, step))
    else:
        raise ValueError(f"unknown compression strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    report.after_items, report.after_tokens = len(library.items), library.tokens(counter)
    return report, cost

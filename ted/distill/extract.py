"""Extraction: the teacher compares graded student chains with its own and the ground truth,
and proposes `add` / `update` operations. Problem-specific advice is refused twice: by the prompt,
and here by validation (length, duplicates, numbers copied from the problem)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, Field

from ted import prompts
from ted.control_tokens import find_control
from ted.distill.rollouts import Rollout
from ted.distill.structure import Structured
from ted.library import LESSON_MAX_CHARS, LESSON_MIN_CHARS, Library, Rejection, clean_text
from ted.models.base import ChatModel, ChatResult, Message, SamplingParams, chat_json
from ted.tasks.base import Problem

MAX_OPS = 3

_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:[.,]\d+)?(?![\w.])")


# The wire schema is stricter than parsing: servers with constrained decoding then cannot emit
# an empty lesson or a made-up id, while one bad op in a reply is still only that op rejected.
class ExtractOp(BaseModel):
    op: Literal["add", "update"]
    id: str | None = Field(default=None, json_schema_extra={"pattern": "^E[1-9][0-9]{0,5}$"})
    text: str = Field(default="", json_schema_extra={"minLength": LESSON_MIN_CHARS, "maxLength": LESSON_MAX_CHARS})
    reason: str | None = Field(default=None, json_schema_extra={"maxLength": 120})


class ExtractionOps(BaseModel):
    operations: list[ExtractOp] = Field(default_factory=list, json_schema_extra={"maxItems": 2 * MAX_OPS})


@dataclass(frozen=True)
class Rejected:
    """A refused proposal: the reason counted in the tally, and the detail for the run's log."""

    op: ExtractOp
    reason: Rejection
    detail: str


@dataclass
class Extraction:
    ops: list[ExtractOp] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    parsed: bool = True


PROMPT = "extract"


def _distinctive_numbers(problem: Problem) -> set[str]:
    """Numbers in the problem and its answer that a general lesson should not repeat.

    Single digits are allowed: lessons legitimately say "check both cases" or "divide by 2".
    """
    found = _NUMBER.findall(problem.question) + _NUMBER.findall(problem.answer)
    return {n.lstrip("-") for n in found if len(n.lstrip("-").replace(".", "").replace(",", "")) >= 2}


def _normal(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


# A reply-format slot such as `<final answer>`: two or more plain words in angle brackets, not
# touching other word characters (so `x<y and y>z` is not one).
_SLOT = re.compile(r"(?<![\w)])<[A-Za-z]+(?: [A-Za-z]+)+>(?![\w(])")


def _copies_the_prompt(text: str) -> bool:
    """An empty or slot-bearing text (`<a new lesson>`, `...`), or the prompt's own wording copied."""
    if re.fullmatch(r"<[^<>]*>|[.\s…]*", text) or _SLOT.search(text):
        return True
    return len(text) >= LESSON_MIN_CHARS and _normal(text) in _normal(prompts.source(PROMPT))


def validate(op: ExtractOp, snapshot: Library, problem: Problem, accepted: list[ExtractOp]) -> Rejected | None:
    """Why `op` is rejected, or None when it is acceptable. `op.text` is cleaned in place."""
    op.text = clean_text(op.text)
    if op.op == "update" and (op.id is None or snapshot.get(op.id) is None):
        return Rejected(op, Rejection.UNKNOWN_ID, f"update of unknown id {op.id!r}")
    if _copies_the_prompt(op.text):
        return Rejected(op, Rejection.PLACEHOLDER, "placeholder text, not a lesson")
    if not LESSON_MIN_CHARS <= len(op.text) <= LESSON_MAX_CHARS:
        return Rejected(op, Rejection.LENGTH, f"length {len(op.text)} outside {LESSON_MIN_CHARS}-{LESSON_MAX_CHARS} characters")
    if found := find_control(op.text):
        return Rejected(op, Rejection.CONTROL, f"chat-template control sequence {found!r}")
    copied = {n for n in _NUMBER.findall(op.text) if n.lstrip("-") in _distinctive_numbers(problem)}
    if copied:
        return Rejected(op, Rejection.COPIES_NUMBERS, f"copies numbers from the problem: {', '.join(sorted(copied))}")
    if _known_text(op.text, snapshot) or any(_normal(o.text) == _normal(op.text) for o in accepted):
        return Rejected(op, Rejection.DUPLICATE, "duplicate of an existing lesson")
    return None


def _known_text(text: str, library: Library) -> bool:
    norm = _normal(text)
    return any(_normal(item.text) == norm for item in library.items)


async def extract(
    teacher: ChatModel,
    snapshot: Library,
    problem: Problem,
    rollouts: list[Rollout],
    teacher_trace: Rollout,
    chains: Structured,
    params: SamplingParams,
    max_ops: int = MAX_OPS,
) -> tuple[Extraction, ChatResult]:
    prompt = prompts.render(
        PROMPT,
        max_ops=max_ops,
        min_chars=LESSON_MIN_CHARS,
        max_chars=LESSON_MAX_CHARS,
        items=snapshot.items,
        question=problem.question,
        answer=problem.answer,
        teacher_chain=chains.teacher,
        teacher_correct=teacher_trace.correct,
        student_chains=[
            {"correct": r.correct, "answer": r.answer or "none", "text": text} for r, text in zip(rollouts, chains.student)
        ],
    )
    parsed, result = await chat_json(teacher, [Message("user", prompt)], ExtractionOps, params)
    extraction = Extraction(parsed=parsed is not None)
    for op in (parsed.operations if parsed else [])[: max_ops * 2]:
        rejected = validate(op, snapshot, problem, extraction.ops)
        if rejected is None and len(extraction.ops) < max_ops:
            extraction.ops.append(op)
        else:
            extraction.rejected.append(rejected or Rejected(op, Rejection.TOO_MANY, f"too many operations (limit {max_ops})"))
    return extraction, result


def apply_ops(library: Library, ops: list[ExtractOp], step: int, source: str) -> list[str]:
    """Apply validated ops to the live library; an update whose target has gone becomes an add.

    Problems of one batch are validated against the same snapshot, so two of them can propose
    the same lesson: an add whose text the live library already holds is skipped here.
    """
    touched: list[str] = []
    for op in ops:
        note = (op.reason or "")[:200] or None
        target = library.get(op.id) if op.op == "update" and op.id else None
        if target is not None:
            touched.append(library.update(target.id, op.text, step, source=source, note=note).id)
        elif not _known_text(op.text, library):
            touched.append(library.add(op.text, step, sources=[source], note=note).id)
    return touched

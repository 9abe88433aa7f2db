"""Extraction: the teacher compares graded student chains with its own and the ground truth,
and proposes `add` / `update` operations. Problem-specific advice is refused twice: by the prompt,
and here by validation (length, duplicates, numbers copied from the problem).

The reply (prompt v2) starts with a diagnosis of what separates the correct attempts from the
wrong ones, then gives a verdict on every lesson an attempt cited (helpful / harmful /
irrelevant; counted on the item and shown to compression), then the operations. The teacher sees
each attempt's structured chain with an excerpt of its raw trace, the lessons it cited, whether
it was cut off at the token limit, the problem's images, and how full the library is."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, Field

from ted import prompts
from ted.distill.options import MAX_OPS
from ted.distill.rollouts import Rollout
from ted.distill.structure import Structured
from ted.distill.traces import EXCERPT_CHARS, teacher_images, trace
from ted.library import Library, Verdict
from ted.library.lessons import (
    ID_PATTERN,
    LESSON_MAX_CHARS,
    LESSON_MAX_WORDS,
    LESSON_MIN_CHARS,
    Rejection,
    clean_text,
    id_number,
    lesson_problem,
    normal,
    problem_numbers,
)
from ted.limits import MAX_ITEMS
from ted.models.base import ChatModel, ChatResult, Message, SamplingParams, chat_json
from ted.tasks.base import Problem
from ted.tokens import TokenCounter

NEARLY_FULL = 0.8  # the share of the item or token budget from which extraction is asked to prefer updates

# The wire schema is stricter than parsing: servers with constrained decoding then cannot emit
# an empty lesson or a made-up id, while one bad op in a reply is still only that op rejected.
class ExtractOp(BaseModel):
    op: Literal["add", "update"]
    id: str | None = Field(default=None, json_schema_extra={"pattern": ID_PATTERN})
    text: str = Field(default="", json_schema_extra={"minLength": LESSON_MIN_CHARS, "maxLength": LESSON_MAX_CHARS})
    reason: str | None = Field(default=None, json_schema_extra={"maxLength": 120})


class LessonVerdict(BaseModel):
    id: str = Field(json_schema_extra={"pattern": ID_PATTERN})
    verdict: Verdict
    reason: str | None = Field(default=None, json_schema_extra={"maxLength": 160})


class ExtractionOps(BaseModel):
    """The reply, in the order the teacher is asked to think: diagnosis, verdicts, operations."""

    # llama.cpp turns maxLength into nested optional rules; past about 1,100 characters (with 64
    # verdicts) its grammar parser gives up and the process crashes (tests: every reply schema compiles).
    diagnosis: str = Field(default="", json_schema_extra={"maxLength": 1000})
    lesson_verdicts: list[LessonVerdict] = Field(default_factory=list, json_schema_extra={"maxItems": 64})
    operations: list[ExtractOp] = Field(default_factory=list, json_schema_extra={"maxItems": 2 * MAX_OPS})


class ExtractionOpsDue(ExtractionOps):
    """The reply when a lesson is due: the teacher's chain reached the ground truth and an attempt
    finished wrong, which the prompt says calls for a lesson; a schema-following server then asks for
    at least one operation. Without it the local 1.5B teacher replied with no operation in 2 of the 4
    such extractions of a demo run (docs/demo.md). Validation judges what it writes like any other."""

    operations: list[ExtractOp] = Field(default_factory=list, json_schema_extra={"minItems": 1, "maxItems": 2 * MAX_OPS})


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
    diagnosis: str = ""
    verdicts: list[tuple[str, Verdict]] = field(default_factory=list)  # one per lesson some attempt cited
    reply: str = ""  # when not parsed: the teacher's last reply, for the call log
    asked_again: bool = False  # every proposal of a due lesson was refused, and the teacher was told why once


PROMPT = "extract"
ASK_AGAIN = "extract_again"  # the turn that shows the teacher its refused lessons and the reasons
# Refusals a rewrite can cure; a duplicate or an unknown id is no lesson the library lacks.
CURABLE = frozenset({Rejection.COPIES_NUMBERS, Rejection.LENGTH, Rejection.FORM, Rejection.PLACEHOLDER})
SECOND_TURN = "extract_ops"  # in a prompt set that has it, extraction is two turns: notes in plain text, then the JSON


def validate(op: ExtractOp, snapshot: Library, problem: Problem, accepted: list[ExtractOp]) -> Rejected | None:
    """Why `op` is rejected, or None when it is acceptable. `op.text` is cleaned in place."""
    op.text = clean_text(op.text)
    if op.op == "update" and (op.id is None or not snapshot.items):
        # Nothing it could replace: small teachers write "update" for any new lesson. It is an add,
        # under every check an add gets (the teacher's literal reply stays in the call log).
        op.op, op.id = "add", None
    elif op.op == "update" and snapshot.get(op.id) is None:
        return Rejected(op, Rejection.UNKNOWN_ID, f"update of unknown id {op.id!r}")
    if found := lesson_problem(op.text, prompts.active().words, problem_numbers(problem.question, problem.answer)):
        return Rejected(op, found.reason, found.detail)
    if _known_text(op.text, snapshot) or any(normal(o.text) == normal(op.text) for o in accepted):
        return Rejected(op, Rejection.DUPLICATE, "duplicate of an existing lesson")
    return None


def _known_text(text: str, library: Library) -> bool:
    norm = normal(text)
    return any(normal(item.text) == norm for item in library.items)


def nearly_full(library: Library, counter: TokenCounter) -> bool:
    budget = library.budget
    return len(library.items) >= NEARLY_FULL * budget.max_items or library.tokens(counter) >= NEARLY_FULL * budget.max_tokens


def extract_prompt(
    snapshot: Library,
    problem: Problem,
    rollouts: list[Rollout],
    teacher_trace: Rollout,
    chains: Structured,
    counter: TokenCounter,
    max_ops: int = MAX_OPS,
    has_images: bool = False,
) -> str:
    """The extraction prompt: the instructions and the library first (the same for a whole batch, so a
    server's prefix cache holds them: `prime.py`), then the problem, the teacher's chain and the attempts."""
    return prompts.render(
        PROMPT,
        two_step=prompts.active().has(SECOND_TURN),
        reply_format=prompts.render("extract_reply", max_ops=max_ops),
        max_ops=max_ops,
        min_chars=LESSON_MIN_CHARS,
        max_chars=LESSON_MAX_CHARS,
        max_words=LESSON_MAX_WORDS,
        n_items=len(snapshot.items),
        max_items=snapshot.budget.max_items,
        n_tokens=snapshot.tokens(counter),
        max_tokens=snapshot.budget.max_tokens,
        nearly_full=nearly_full(snapshot, counter),
        items=snapshot.items,
        question=problem.question,
        answer=problem.answer,
        has_images=has_images,
        teacher_chain=chains.teacher,
        teacher_correct=teacher_trace.correct,
        teacher_truncated=teacher_trace.truncated,
        student_chains=[
            {
                "correct": r.correct,
                "truncated": r.truncated,
                "answer": r.answer or "none",
                "cited": r.cited,
                "text": text,
                # The chain already is the trace when structuring failed: no excerpt twice.
                "excerpt": trace(r, EXCERPT_CHARS) if chains.parsed else "",
            }
            for r, text in zip(rollouts, chains.student)
        ],
    )


async def extract(
    teacher: ChatModel,
    snapshot: Library,
    problem: Problem,
    rollouts: list[Rollout],
    teacher_trace: Rollout,
    chains: Structured,
    params: SamplingParams,
    counter: TokenCounter,
    max_ops: int = MAX_OPS,
) -> tuple[Extraction, ChatResult]:
    images = teacher_images(teacher, problem)
    two_step = prompts.active().has(SECOND_TURN)
    reply_format = prompts.render("extract_reply", max_ops=max_ops)
    prompt = extract_prompt(snapshot, problem, rollouts, teacher_trace, chains, counter, max_ops, bool(images))
    messages = [Message("user", prompt, images=images)]
    notes = ChatResult.empty()
    if two_step:  # the second turn extends the first: a server's prefix cache holds all of it
        base = params or SamplingParams(temperature=0.2)
        notes = await teacher.chat(messages, SamplingParams(temperature=base.temperature, max_tokens=base.max_tokens, seed=base.seed))
        messages += [Message("assistant", notes.text), Message("user", prompts.render(SECOND_TURN, reply_format=reply_format))]
    due = teacher_trace.correct and any(not r.correct and not r.truncated for r in rollouts)
    parsed, result = await chat_json(teacher, messages, ExtractionOpsDue if due else ExtractionOps, params)
    result = notes + result
    extraction = Extraction(parsed=parsed is not None)
    if parsed is None:
        extraction.reply = result.texts[-1] if result.texts else ""
        return extraction, result
    extraction.diagnosis = clean_text(parsed.diagnosis)
    extraction.verdicts = _verdicts(parsed.lesson_verdicts, {i for r in rollouts for i in r.cited})
    _judge(extraction, parsed.operations, snapshot, problem, max_ops)
    if due and not extraction.ops and any(r.reason in CURABLE for r in extraction.rejected):
        # A lesson is due and every proposal was refused for a reason a rewrite can cure (a small
        # teacher copies the problem's numbers): the same request once more, with the refusals and
        # their reasons after it (so a server's prefix cache holds the rest). Not as a reply to its
        # own answer: shown that, the demo's 1.5B teacher wrote the same lessons again, word for word.
        extraction.asked_again = True
        refused = [{"text": r.op.text[:LESSON_MAX_CHARS], "detail": r.detail} for r in extraction.rejected]
        note = prompts.render(ASK_AGAIN, refused=refused, min_chars=LESSON_MIN_CHARS, max_chars=LESSON_MAX_CHARS, max_words=LESSON_MAX_WORDS)
        last = messages[-1]
        messages = [*messages[:-1], Message(last.role, f"{last.text}\n\n{note}", images=last.images)]
        again, more = await chat_json(teacher, messages, ExtractionOpsDue, params)
        result += more
        if again is not None:
            _judge(extraction, again.operations, snapshot, problem, max_ops)
    return extraction, result


def _judge(extraction: Extraction, operations: list[ExtractOp], snapshot: Library, problem: Problem, max_ops: int) -> None:
    """Validate a reply's operations into `extraction`: accepted up to `max_ops`, the rest refused with the reason."""
    for op in operations[: max_ops * 2]:
        rejected = validate(op, snapshot, problem, extraction.ops)
        if rejected is None and len(extraction.ops) < max_ops:
            extraction.ops.append(op)
        else:
            extraction.rejected.append(rejected or Rejected(op, Rejection.TOO_MANY, f"too many operations (limit {max_ops})"))


def _verdicts(given: list[LessonVerdict], cited: set[str]) -> list[tuple[str, Verdict]]:
    """One verdict per lesson an attempt cited, in id order; verdicts on lessons no attempt cited are ignored."""
    chosen: dict[str, Verdict] = {}
    for verdict in given:
        if verdict.id in cited and verdict.id not in chosen:
            chosen[verdict.id] = verdict.verdict
    return sorted(chosen.items(), key=lambda pair: id_number(pair[0]))


@dataclass
class Applied:
    """What `apply_ops` did: the items it added or updated, and the adds refused at the file's item cap."""

    touched: list[str] = field(default_factory=list)
    full: int = 0


def apply_ops(library: Library, ops: list[ExtractOp], step: int, source: str) -> Applied:
    """Apply validated ops to the live library; an update whose target has gone becomes an add.

    Problems of one batch are validated against the same snapshot, so two of them can propose
    the same lesson: an add whose text the live library already holds is skipped here. An add
    to a library at `MAX_ITEMS` is refused: every library a run saves must load again, and
    `Library.load` caps items there (only `--compression none` grows that far).
    """
    applied = Applied()
    for op in ops:
        note = (op.reason or "")[:200] or None
        target = library.get(op.id) if op.op == "update" and op.id else None
        if target is not None:
            applied.touched.append(library.update(target.id, op.text, step, source=source, note=note).id)
        elif _known_text(op.text, library):
            continue
        elif len(library.items) >= MAX_ITEMS:
            applied.full += 1
        else:
            applied.touched.append(library.add(op.text, step, sources=[source], note=note).id)
    return applied

"""Priming: a batch's shared prompt heads go to the server once, ahead of the requests that share them.

Why (llama.cpp's llama-server; docs/local-models.md): a request reuses the longest prompt prefix that
an idle slot holds, else one from the server's RAM prompt cache, where a slot's prompt is copied
when a new task starts while that slot is idle (and taken out again when a request loads it); a
busy slot's prefix helps no one. A batch's requests of one stage go out about together, so each
started on a slot holding something else and read the stage's instructions and the library again:
17 of a run's 4,359 prompt tokens came from the cache. A 1-token request whose prompt is the shared
head, finished before them, leaves the head in an idle slot. The teacher's two heads (structuring,
then extraction) go one after the other, so the second's start copies the first's slot into the
RAM cache: two structuring requests sent together both find the head (one in the slot, one in the
RAM cache), and later ones find it in the slots the earlier ones left.

The head is found, not declared: a stage's messages for two stand-in problems, up to the line where
they part, so any prompt set (`--prompts`) primes what its own layout shares, and a layout that
puts the problem first primes nothing. Primes are real requests: the ledger and the call log
(stage "prime") count them. Only models that say priming pays (`primes_prefixes`: the managed
llama-server) are primed; elsewhere nothing is sent.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from ted.distill.extract import extract_prompt
from ted.distill.rollouts import Rollout, student_messages
from ted.distill.structure import Structured, structure_prompt
from ted.library import Library
from ted.models.base import ChatModel, ChatResult, Message, SamplingParams
from ted.models.calllog import context
from ted.tasks.base import Problem, Task
from ted.tokens import TokenCounter

PRIME_PARAMS = SamplingParams(n=1, temperature=0.0, max_tokens=1)
"""One token: the request is for its prompt, which the server keeps; what it generates is thrown away."""
STAND_INS = ("A", "B")  # two stand-in problems' text, different from their first character


def shared_head(a: list[Message], b: list[Message]) -> list[Message] | None:
    """The messages `a` and `b` both begin with, the first that differs cut before the line break
    where they part (a token at the cut could tokenise differently with what follows); None when
    they share no text. The first that differs stays, emptied if need be, so the head ends where
    the requests' next turn begins; one with images shares none of its text (where a server puts
    the images is its own business)."""
    head: list[Message] = []
    for x, y in zip(a, b):
        if x == y and not x.images:
            head.append(x)
            continue
        if x.role == y.role:
            common = "" if x.images or y.images else os.path.commonprefix([x.text, y.text])
            head.append(Message(x.role, common[: max(common.rfind("\n"), 0)]))
        break
    return head if any(m.text for m in head) else None


def _stand_in(mark: str) -> tuple[Problem, Rollout]:
    return Problem(id=mark, question=mark, answer=mark), Rollout(text=mark, answer=mark, correct=False, cited=[])


def student_head(library: Library, task: Task) -> list[Message] | None:
    """What every rollout of a batch begins with: the system prompt and the library block."""
    return shared_head(*(student_messages(library, _stand_in(mark)[0], task) for mark in STAND_INS))


def structure_head() -> list[Message] | None:
    """What every structuring prompt begins with: its instructions."""
    return shared_head(
        *([Message("user", structure_prompt(mark, [{"label": mark, "text": mark, "truncated": False}]))] for mark in STAND_INS)
    )


def extract_head(snapshot: Library, counter: TokenCounter, max_ops: int) -> list[Message] | None:
    """What every extraction prompt of a batch begins with: its instructions and the batch's library."""

    def messages(mark: str) -> list[Message]:
        problem, run = _stand_in(mark)
        return [Message("user", extract_prompt(snapshot, problem, [run], run, Structured([mark], mark, True), counter, max_ops))]

    return shared_head(*(messages(mark) for mark in STAND_INS))


Record = Callable[[str, ChatResult], None]
"""Books a prime's result under its role (the ledger)."""


@dataclass
class Primes:
    """One batch's primes: each stage's requests wait for their head (`ready`) before they go out."""

    tasks: dict[str, asyncio.Future[None]] = field(default_factory=dict)

    async def ready(self, stage: str) -> None:
        """Wait until `stage`'s head is primed (at once when it has no prime)."""
        task = self.tasks.get(stage)
        if task is not None:
            await asyncio.shield(task)

    async def close(self) -> None:
        """Cancel what is still running (a batch that failed) and wait for it; a prime's own failure
        is the failure of the stage that waits for it, so it is not raised again here."""
        for task in self.tasks.values():
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)


def start(
    student: ChatModel, teacher: ChatModel, record: Record, rollout_head: list[Message] | None,
    teacher_heads: list[tuple[str, list[Message] | None]],
) -> Primes:  # fmt: skip
    """Send the batch's primes: the student's head at once; the teacher's heads one after the other,
    in the order given (each stage then waits for its own). Models that do not prime get none."""
    primes = Primes()
    if rollout_head is not None and getattr(student, "primes_prefixes", False):
        primes.tasks["rollouts"] = asyncio.ensure_future(_send(student, "student", rollout_head, record))
    if getattr(teacher, "primes_prefixes", False):
        previous: asyncio.Future[None] | None = None
        for stage, head in teacher_heads:
            if head is not None:
                previous = primes.tasks[stage] = asyncio.ensure_future(_after(previous, teacher, head, record))
    return primes


async def _after(previous: asyncio.Future[None] | None, teacher: ChatModel, head: list[Message], record: Record) -> None:
    """The teacher's next prime, once the one before it has finished."""
    if previous is not None:
        await asyncio.shield(previous)
    await _send(teacher, "teacher", head, record)


async def _send(model: ChatModel, role: str, head: list[Message], record: Record) -> None:
    with context(stage="prime"):
        result = await model.chat(head, PRIME_PARAMS)
    record(role, result)

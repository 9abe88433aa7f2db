"""One question answered by the student twice, without and with a library: the smallest look at
what a library changes (`ted ask`, the end of `make demo`).

Both answers use the layout of distillation and evaluation (`[system prompt; E; input]`, the
task's prompt and grader) and the same sampling, so the library is the only difference.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from ted.distill.rollouts import Rollout, graded, student_messages
from ted.library import Library
from ted.models.base import ChatModel, SamplingParams
from ted.tasks.base import Problem, Task


@dataclass(frozen=True)
class SideBySide:
    problem: Problem
    without: Rollout
    with_library: Rollout


async def side_by_side(student: ChatModel, library: Library, problem: Problem, task: Task, params: SamplingParams) -> SideBySide:
    """The student's graded answer to `problem` without `library`, then with it (one after the other:
    an in-process model answers one request at a time anyway)."""
    answers = []
    for lib in (None, library):
        result = await student.chat(student_messages(lib, problem, task), params)
        answers.append(graded(result, problem, task, lib.ids() if lib else [])[0])
    return SideBySide(problem, *answers)


def ask(student: ChatModel, library: Library, problem: Problem, task: Task, params: SamplingParams) -> SideBySide:
    """`side_by_side` for synchronous callers; closes the model afterwards."""

    async def run() -> SideBySide:
        try:
            return await side_by_side(student, library, problem, task, params)
        finally:
            await student.aclose()

    return asyncio.run(run())

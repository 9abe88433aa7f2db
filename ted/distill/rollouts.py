"""Rollouts: the student answers a problem k times with the current library in its prompt."""

from __future__ import annotations

from dataclasses import dataclass

from ted.library import Library, cited_ids
from ted.models.base import ChatModel, ChatResult, Message, SamplingParams, bounded_images
from ted.tasks import student_system
from ted.tasks.base import Problem, Task


@dataclass
class Rollout:
    """One graded attempt. `text` is the reply (answer and citations are read from it only);
    `reasoning` what a thinking model returned apart; `truncated` that it hit the token limit."""

    text: str
    answer: str | None
    correct: bool
    cited: list[str]
    reasoning: str = ""
    truncated: bool = False


def student_messages(library: Library | None, problem: Problem, task: Task, frame: bool = False) -> list[Message]:
    """`[system prompt; E; input]`: the same layout for distillation, evaluation and the Space
    (`frame`: the library's block even with no lesson in it, see `student_system`)."""
    system = student_system(library, task, frame)
    user = Message("user", task.format_prompt(problem), images=bounded_images(problem.images))
    return [Message("system", system), user] if system else [user]


def grade(text: str, problem: Problem, task: Task, known_ids: list[str]) -> Rollout:
    verdict = task.grade(text, problem)
    return Rollout(text=text, answer=verdict.answer, correct=verdict.correct, cited=cited_ids(text, known_ids))


def graded(result: ChatResult, problem: Problem, task: Task, known_ids: list[str]) -> list[Rollout]:
    """Every generation of a call, graded, with its reasoning and whether it was cut off."""
    runs = []
    for index, text in enumerate(result.texts):
        run = grade(text, problem, task, known_ids)
        run.reasoning, run.truncated = result.reasoning_of(index), result.truncated(index)
        runs.append(run)
    return runs


async def rollouts(
    student: ChatModel, library: Library, problem: Problem, task: Task, params: SamplingParams
) -> tuple[list[Rollout], ChatResult]:
    result = await student.chat(student_messages(library, problem, task), params)
    return graded(result, problem, task, library.ids()), result

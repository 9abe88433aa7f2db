"""Teacher solution: the teacher solves the problem on its own, without the library."""

from __future__ import annotations

from ted import prompts
from ted.distill.rollouts import Rollout, grade
from ted.models.base import ChatModel, ChatResult, Message, SamplingParams
from ted.tasks.base import Problem, Task


async def teacher_solution(
    teacher: ChatModel, problem: Problem, task: Task, params: SamplingParams
) -> tuple[Rollout, ChatResult]:
    messages = [
        Message("system", prompts.render("teacher_solve")),
        Message("user", task.format_prompt(problem), images=list(problem.images)),
    ]
    result = await teacher.chat(messages, params)
    return grade(result.text, problem, task, []), result

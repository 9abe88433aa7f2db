"""Teacher solution: the teacher solves the problem on its own, without the library."""

from __future__ import annotations

from ted import prompts
from ted.distill.rollouts import Rollout, graded
from ted.models.base import ChatModel, ChatResult, Message, SamplingParams, bounded_images
from ted.tasks.base import Problem, Task


async def teacher_solution(
    teacher: ChatModel, problem: Problem, task: Task, params: SamplingParams
) -> tuple[Rollout, ChatResult]:
    messages = [
        Message("system", prompts.render("teacher_solve")),
        Message("user", task.format_prompt(problem), images=bounded_images(problem.images)),
    ]
    result = await teacher.chat(messages, params)
    return graded(result, problem, task, [])[0], result

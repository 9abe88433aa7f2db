"""Tasks: load labelled problems, format the question, extract and score the answer.

`get_task(name)` returns one of the registered tasks, or a reasoning-gym task for `rg:NAME`
(`ted.tasks.rg`); the same objects grade rollouts in `ted distill --task NAME` and score the
lm-eval tasks in `eval_tasks/`.
"""

from __future__ import annotations

from ted.errors import DataError
from ted.library import Library, placebo_block
from ted.tasks.aime import Aime24Task, AimeTask
from ted.tasks.base import Grade, Problem, Task
from ted.tasks.benchmark import BenchmarkTask
from ted.tasks.dapo import DapoMathTask
from ted.tasks.data import load_problems
from ted.tasks.generic import BaseTask
from ted.tasks.mathverse import MathVerseTask
from ted.tasks.mathvision import MathVisionTask
from ted.tasks.registry import LM_TASK_ALIASES
from ted.tasks.rg import is_spec
from ted.tasks.rg_task import RgTask
from ted.tasks.visualpuzzles import VisualPuzzlesTask

TASKS: dict[str, type[BaseTask]] = {
    task.name: task
    for task in (BaseTask, MathVisionTask, VisualPuzzlesTask, AimeTask, Aime24Task, MathVerseTask, DapoMathTask)
}
# lm-eval task name → (ted task, split), as each benchmark declares it.
LM_EVAL_TASKS: dict[str, tuple[str, str | None]] = {
    lm_task: (task.name, split)
    for task in TASKS.values()
    if issubclass(task, BenchmarkTask)
    for lm_task, split in task.lm_eval_tasks.items()
}
LM_EVAL_TASKS.update({old: LM_EVAL_TASKS[new] for old, new in LM_TASK_ALIASES.items()})


def student_system(library: Library | None, task: Task | None = None, frame: bool = False) -> str | None:
    """The student's system message `[system prompt; E]` (None: no system message), built one way for
    rollouts, `ted chat`, the Space and lm-eval. The task decides the prompt; without one, the generic task's.
    `frame`: the library's block even when it holds no lesson (the placebo, attribution's subsets)."""
    block = library.render(frame=frame) if library is not None else placebo_block() if frame else ""
    return (task or get_task()).system_prompt(block)


def get_task(name: str | None = None) -> BaseTask:
    """The task called `name` (default `generic`); unknown names raise a DataError listing the choices."""
    key = (name or "generic").strip().lower().removeprefix("ted_")
    if is_spec(key):
        return RgTask.from_name(key)
    if key not in TASKS:
        raise DataError(f"unknown task {name!r}; choose one of {', '.join(TASKS)} or rg:NAME (a reasoning-gym generator)")
    return TASKS[key]()


__all__ = [
    "LM_EVAL_TASKS",
    "TASKS",
    "BaseTask",
    "BenchmarkTask",
    "Grade",
    "Problem",
    "RgTask",
    "Task",
    "get_task",
    "load_problems",
    "student_system",
]

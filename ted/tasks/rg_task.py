"""`--task rg:NAME`: one reasoning-gym generator as a ted task, graded by reasoning-gym's own
`score_answer` (the problems, the spec and the reading of a reply are `ted.tasks.rg`)."""

from __future__ import annotations

from ted import prompts
from ted.errors import DataError
from ted.tasks.base import Grade, Problem
from ted.tasks.generic import BaseTask
from ted.tasks.registry import REASONING_GYM
from ted.tasks.rg import PREFIX, generate, is_spec, parse_spec, read_answer, reward


class RgTask(BaseTask):
    """One reasoning-gym generator as a ted task (`rg:NAME`)."""

    protocol = "reasoning-gym score_answer"
    max_gen_toks = REASONING_GYM.max_gen_toks

    def __init__(self, generator: str) -> None:
        self.generator = generator
        self.name = f"{PREFIX}{generator}"

    @classmethod
    def from_name(cls, name: str) -> RgTask:
        """The task for `rg:NAME` (a query, as in a data spec, is allowed and ignored here)."""
        return cls(parse_spec(name).generator)

    def format_prompt(self, problem: Problem) -> str:
        return prompts.render("rg_question", question=problem.question.strip())

    def reward(self, answer: str | None, problem: Problem) -> float:
        """reasoning-gym's score for an extracted answer (1.0 = right)."""
        return reward(self.generator, answer, problem)

    def grade(self, text: str, problem: Problem) -> Grade:
        answer, _ = read_answer(text, problem.answer)
        return Grade(answer, answer is not None and self.reward(answer, problem) >= 1.0)

    def grade_lenient(self, text: str, problem: Problem) -> Grade:
        return self.grade(text, problem)

    def load(self, split: str | None = None, data_files: str | None = None, limit: int | None = None) -> list[Problem]:
        """Problems from a spec (`data_files`), else this generator's `split` with the defaults."""
        if data_files and not is_spec(data_files):
            return super().load(split=split, data_files=data_files, limit=limit)
        spec = parse_spec(data_files or self.name, split or "train")
        if spec.generator != self.generator:
            raise DataError(f"{data_files}: problems of {spec.generator}, but the task is {self.name}")
        problems = generate(spec)
        return problems[:limit] if limit is not None else problems

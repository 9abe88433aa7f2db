"""AIME: `aime` is AIME 2025 (math-ai/aime25, test, 30 rows: problem, answer); `aime24` is
AIME 2024 (Maxwell-Jia/AIME_2024, train, 30 rows: ID, Problem, Solution, Answer).

Answers are integers 0–999 and compare as integers, so `\\boxed{070}`, `70` and `70.0` agree.
A non-integer reply falls back to mathematical equivalence (and so is wrong for an integer).
"""

from __future__ import annotations

from typing import Any

from ted.tasks import answers
from ted.tasks.base import Problem
from ted.tasks.benchmark import BenchmarkTask


class AimeTask(BenchmarkTask):
    name = "aime"
    description = "AIME 2025 (math-ai/aime25): 30 integer-answer problems"
    display_name = "AIME 2025"
    dataset = "math-ai/aime25"
    # Only a short commit id (7510e41) could be confirmed offline; the Hub needs a full SHA.
    revision = None
    default_split = "test"
    splits = ("test",)
    required = ("problem", "answer")
    answer_hint = "an integer from 0 to 999"

    def canonical_row(self, row: dict[str, Any]) -> dict[str, Any]:
        lowered = {key.lower(): value for key, value in row.items()}
        return {**row, "question": lowered.get("problem"), "answer": lowered.get("answer"), "id": lowered.get("id")}

    def is_correct(self, predicted: str, problem: Problem) -> bool:
        gold, value = answers.to_integer(problem.answer), answers.to_integer(predicted)
        if gold is not None and value is not None:
            return gold == value
        return answers.free_form_equal(problem.answer, predicted, self.tolerance)


class Aime24Task(AimeTask):
    name = "aime24"
    description = "AIME 2024 (Maxwell-Jia/AIME_2024): 30 integer-answer problems"
    display_name = "AIME 2024"
    dataset = "Maxwell-Jia/AIME_2024"
    revision = "8d88b2876a82a080e2f172cc9b25d0d9d2cb4792"
    default_split = "train"
    splits = ("train",)
    required = (("Problem", "problem"), ("Answer", "answer"))

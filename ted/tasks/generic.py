"""The generic task: any labelled problems (JSONL, CSV, a `datasets` folder or Hub id).

Benchmark adapters subclass `BaseTask` and change only what differs: where rows come from, how
a row becomes a `Problem`, and the numeric tolerance or answer form. Grading is shared, so
`ted distill --task X` and the lm-eval task `ted_X` score a reply identically.
"""

from __future__ import annotations

from ted import prompts
from ted.tasks import answers
from ted.tasks.base import Grade, Problem


class BaseTask:
    """Shared prompt, extraction and scoring; subclasses set the data source and tolerances."""

    name = "generic"
    tolerance = answers.Tolerance()
    answer_hint: str | None = None
    protocol = "ted"  # whose prompt and scorer `acc` reproduces (a harness and version for benchmarks)
    max_gen_toks = 4096  # the protocol's generation limit

    # ----------------------------------------------------------------- the question
    def system_prompt(self, library_block: str) -> str | None:
        return prompts.render("solve", library=library_block)

    def letters(self, problem: Problem) -> str | None:
        """The option letters when the problem is multiple choice, else None."""
        return answers.LETTERS[: len(problem.options)] if problem.options else None

    def format_prompt(self, problem: Problem) -> str:
        letters = self.letters(problem)
        options = list(zip(letters, problem.options)) if letters and problem.options else None
        return prompts.render(
            "task_question", question=problem.question.strip(), options=options, letters=list(letters or ""), hint=self.answer_hint
        )

    # ----------------------------------------------------------------- the answer
    def extract_answer(self, text: str, problem: Problem) -> str | None:
        return self.grade(text, problem).answer

    def gold_letter(self, problem: Problem) -> str | None:
        letters = self.letters(problem)
        if not letters:
            return None
        return answers.to_letter(problem.answer, letters, problem.options)

    def is_correct(self, predicted: str, problem: Problem) -> bool:
        gold_letter = self.gold_letter(problem)
        if gold_letter is not None:
            return predicted == gold_letter
        return answers.free_form_equal(problem.answer, predicted, self.tolerance)

    def grade_lenient(self, text: str, problem: Problem) -> Grade:
        """ted's forgiving reading (`acc_lenient`): any marker, letters or option text, equivalence."""
        predicted = answers.extract(text, self.letters(problem), problem.options)
        return Grade(predicted, predicted is not None and self.is_correct(predicted, problem))

    def grade(self, text: str, problem: Problem) -> Grade:
        """The task's own verdict (`acc`); benchmarks reproduce their upstream harness here."""
        return self.grade_lenient(text, problem)

    def score(self, text: str, problem: Problem) -> bool:
        return self.grade(text, problem).correct

    # ----------------------------------------------------------------- the data
    def load(self, split: str | None = None, data_files: str | None = None, limit: int | None = None) -> list[Problem]:
        from ted.errors import DataError
        from ted.tasks.data import load_problems

        if not data_files:
            raise DataError("the generic task has no default dataset: pass a data file (--data PATH)")
        return load_problems(data_files, split=split, limit=limit)

    def __repr__(self) -> str:
        return f"<task {self.name}>"

"""Shared loading for benchmark adapters: one pinned Hub dataset, or a local copy of it.

A benchmark reads through `datasets` whether the rows come from the Hub (pinned revision) or
from `data_files` (a Parquet/JSONL file or a datasets folder in the same schema), and checks
the schema first so a wrong file says which field is missing. Images that cannot be decoded do
not stop an evaluation: the problem keeps `meta["image_error"]`, is scored wrong, and counted.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ted.tasks.base import Problem
from ted.tasks.data import open_dataset, require_columns, row_to_problem
from ted.tasks.generic import BaseTask


class BenchmarkTask(BaseTask):
    """A benchmark with a fixed schema. Subclasses set the dataset and `to_problem`."""

    dataset: ClassVar[str]
    display_name: ClassVar[str]
    revision: ClassVar[str | None]
    config: ClassVar[str | None] = None  # the dataset configuration, for datasets with several
    default_split: ClassVar[str | None] = None
    # The lm-eval tasks (eval_tasks/*.yaml) that score this benchmark, by name → split (None: the only split).
    lm_eval_tasks: ClassVar[dict[str, str | None]] = {}
    required: ClassVar[tuple[str | tuple[str, ...], ...]] = ()
    categories: ClassVar[tuple[str, ...]] = ()
    category_field: ClassVar[str | None] = None
    has_images: ClassVar[bool] = False

    def system_prompt(self, library_block: str) -> str | None:
        """None for the baseline: the upstream protocols have no system prompt, the library is the only addition."""
        return library_block or None

    def load(
        self,
        split: str | None = None,
        data_files: str | None = None,
        limit: int | None = None,
        revision: str | None = None,
    ) -> list[Problem]:
        """Rows of `split` from `data_files` if given, else from the Hub at the pinned revision."""
        source = str(data_files) if data_files else self.dataset
        wanted = split or self.default_split
        if data_files:
            dataset, base_dir = open_dataset(source, split=wanted, revision=None, name=self.config)
        else:
            dataset, base_dir = open_dataset(source, split=wanted, revision=revision or self.revision, name=self.config)
        require_columns(dataset.column_names, self.required, source, self.display_name)
        dataset = self.prepare(dataset)
        if limit is not None:
            dataset = dataset.select(range(min(limit, len(dataset))))
        problems = []
        for index, row in enumerate(dataset):
            problem = row_to_problem(
                self.canonical_row(row), index, {}, base_dir, f"{source} row {index + 1}", on_bad_image="mark"
            )
            problems.append(self.finish(problem, row))
        return problems

    def prepare(self, dataset: Any) -> Any:
        """The rows to read, before any is converted (e.g. one copy of each repeated row)."""
        return dataset

    def canonical_row(self, row: dict[str, Any]) -> dict[str, Any]:
        """The row with ted's field names (question, answer, options, images, id)."""
        return row

    def finish(self, problem: Problem, row: dict[str, Any]) -> Problem:
        """Task-specific touches after the shared conversion (e.g. options drawn in the image)."""
        return problem

    def category(self, problem: Problem) -> str | None:
        if self.category_field is None:
            return None
        value = problem.meta.get(self.category_field)
        return None if value is None else str(value)

"""VisualPuzzles (neulab/VisualPuzzles): 1168 multiple-choice visual logic puzzles.

Rows: id, category, image, question, options (4 strings, or null when the options are drawn
in the image), answer (A–D). The reply must name the letter (or, with text options, the
option's text). Accuracy is reported overall and per category.

The pinned revision names the single split `test` (it was `train` before); a single-split
dataset is read whatever its split is called, so both work.
"""

from __future__ import annotations

from typing import Any

from ted.tasks.base import Problem
from ted.tasks.benchmark import BenchmarkTask

LETTERS = "ABCD"


class VisualPuzzlesTask(BenchmarkTask):
    name = "visualpuzzles"
    description = "VisualPuzzles (neulab/VisualPuzzles): 1168 visual logic puzzles, A-D, per-category accuracy"
    display_name = "VisualPuzzles"
    dataset = "neulab/VisualPuzzles"
    revision = "121e4ff2aa9ed04d04d972dd3847acefca421e0b"
    default_split = None
    splits = ("train", "test")
    required = ("id", "category", "image", "question", "options", "answer")
    categories = ("algorithmic", "analogical", "deductive", "inductive", "spatial")
    category_field = "category"
    has_images = True

    def canonical_row(self, row: dict[str, Any]) -> dict[str, Any]:
        return {**{k: v for k, v in row.items() if k != "image"}, "images": row.get("image")}

    def letters(self, problem: Problem) -> str:
        """Always A–D: with options drawn in the image there is no text, only the letters."""
        return LETTERS[: len(problem.options)] if problem.options else LETTERS

"""MathVision (MathLLMs/MathVision): competition math over figures; `test` 3040, `testmini` 304.

Rows: id, question, options (a list; empty for free-form), decoded_image (PIL) or image (a path
in the dataset repo), answer, solution, level, subject. Multiple choice is right when the reply
names the gold letter or the gold option's text. Free-form numbers must agree after rounding to
2 decimals, the rule of the benchmark's own evaluation script; other answers compare by
mathematical equivalence (math-verify).
"""

from __future__ import annotations

from typing import Any

from ted.tasks import answers
from ted.tasks.benchmark import BenchmarkTask


class MathVisionTask(BenchmarkTask):
    name = "mathvision"
    description = "MathVision (MathLLMs/MathVision): multimodal competition math, test 3040 / testmini 304"
    display_name = "MathVision"
    dataset = "MathLLMs/MathVision"
    revision = "08d26d67d45431e1e88ed7e70f4737615b519aad"
    default_split = "test"
    splits = ("test", "testmini")
    required = ("id", "question", "options", ("decoded_image", "image"), "answer")
    category_field = "subject"
    has_images = True
    tolerance = answers.Tolerance(decimals=2)

    def canonical_row(self, row: dict[str, Any]) -> dict[str, Any]:
        image = row.get("decoded_image") or row.get("image")
        return {**{k: v for k, v in row.items() if k not in ("decoded_image", "image")}, "images": [image] if image else []}

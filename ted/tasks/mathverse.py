"""MathVerse (AI4Math/MathVerse): visual math, `testmini` 3,940 rows = 788 problems × 5 versions.

The paper's source for the multimodal library. Rows: sample_index (unique), problem_index (shared
by the versions of one problem), problem_version (Text Dominant, Text Lite, Vision Intensive,
Vision Dominant, Vision Only), question, image, answer, question_type (multi-choice or
free-form), metadata {split, source, subject, subfield}, query_wo, query_cot, question_for_eval.

Multiple-choice questions carry their options in the text, as a `Choices:` block of `A:…` lines
(none in Vision Only versions, whose options are drawn in the figure); the gold answer is the
letter. The block is parsed into options, so a reply in MathVerse's own choice form,
`Answer: B:45°`, resolves to the letter B; with the options only in the figure, the letter alone
decides. Free-form answers compare as numbers or by mathematical equivalence.
"""

from __future__ import annotations

import re
from typing import Any

from ted.tasks import answers
from ted.tasks.base import Problem
from ted.tasks.benchmark import BenchmarkTask

MULTI_CHOICE = "multi-choice"
LETTERS = "ABCDE"  # when the options are drawn in the figure only the letters are known

_CHOICES = re.compile(r"\n?\s*Choices:\s*\n(?P<block>(?:[ \t]*\(?[A-H][:.)].*(?:\n|$))+)\s*$")
_CHOICE = re.compile(r"^\s*\(?(?P<letter>[A-H])[:.)]\s*(?P<text>.*?)\s*$")


def split_choices(question: str) -> tuple[str, list[str] | None]:
    """The question without its `Choices:` block, and the options in letter order (None if none)."""
    match = _CHOICES.search(question)
    if not match:
        return question, None
    lines = [_CHOICE.match(line) for line in match.group("block").splitlines() if line.strip()]
    letters = [line.group("letter") for line in lines if line]
    if not lines or not all(lines) or letters != list(answers.LETTERS[: len(letters)]):
        return question, None  # not the A, B, C… block it looks like: leave the text alone
    return question[: match.start()].rstrip(), [line.group("text") for line in lines if line]


class MathVerseTask(BenchmarkTask):
    name = "mathverse"
    display_name = "MathVerse"
    dataset = "AI4Math/MathVerse"
    revision = "268dfc55b62296be3bdf6406d6dea07bd06a7d64"
    config = "testmini"
    default_split = "testmini"
    required = ("sample_index", "question", "image", "answer", "question_type")
    category_field = "problem_version"
    has_images = True

    def canonical_row(self, row: dict[str, Any]) -> dict[str, Any]:
        question, options = split_choices(str(row.get("question") or ""))
        metadata = row.get("metadata") if isinstance(row.get("metadata"), dict) else {}
        image = row.get("image")
        return {
            "id": row.get("sample_index"),
            "question": question,
            "answer": row.get("answer"),
            "options": options,
            "images": [image] if image else [],
            "problem_index": row.get("problem_index"),
            "problem_version": row.get("problem_version"),
            "question_type": row.get("question_type"),
            **{key: metadata.get(key) for key in ("source", "subject", "subfield") if metadata.get(key)},
        }

    def letters(self, problem: Problem) -> str | None:
        if problem.options:
            return answers.LETTERS[: len(problem.options)]
        return LETTERS if problem.meta.get("question_type") == MULTI_CHOICE else None

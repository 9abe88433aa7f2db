"""VisualPuzzles (neulab/VisualPuzzles): 1168 multiple-choice visual logic puzzles.

Rows: id, category, image, question, options (4 strings, or null when the options are drawn
in the image), answer (A–D). Accuracy is reported overall and per category.

`acc` follows lmms-eval's `VisualPuzzles_cot` (lmms-eval 0.7.3): its chain-of-thought prompt
(`Answer: $LETTER`) and its letter reading — `Answer: (X)`, `Answer: X`, then `(X)`, `X)`,
`{X}`, `$X$`, ` X.`, a reply of at most 5 characters, then an option's text — the last match
of the first rule that matches, in any case. Where the harness guesses a random letter (nothing
matched), ted counts the reply as wrong and as `no_answer`: deterministic, and never above the
harness's expected score (its guess is right one time in four). `acc_lenient` is ted's own reading.

The pinned revision names the single split `test` (it was `train` before); a single-split
dataset is read whatever its split is called, so both work.
"""

from __future__ import annotations

import re
from typing import Any

from ted import prompts
from ted.library import strip_trailer
from ted.tasks.base import Grade, Problem
from ted.tasks.benchmark import BenchmarkTask

LETTERS = "ABCD"
# The harness's rules in order; `True` marks the rules read from the reply with one leading space.
_RULES: tuple[tuple[re.Pattern[str], bool], ...] = tuple(
    (re.compile(pattern), spaced)
    for pattern, spaced in (
        (r"Answer:\s*\(([A-Za-z])\)", False),
        (r"(?<!Final )Answer:\s*([A-Za-z])", False),
        (r"Answer:\s*([A-Za-z])", False),
        (r"\s*\(([A-Za-z])\)", False),
        (r"\s*([A-Za-z])\)", True),
        (r"\s*\{([A-Za-z])\}", True),
        (r"\s*\$([A-Za-z])\$", True),
        (r" ([A-Da-d])\.", True),
    )
)
_SHORT = re.compile(r" ([A-Da-d])")
_SHORT_CHARS = 5


class VisualPuzzlesTask(BenchmarkTask):
    name = "visualpuzzles"
    display_name = "VisualPuzzles"
    dataset = "neulab/VisualPuzzles"
    revision = "121e4ff2aa9ed04d04d972dd3847acefca421e0b"
    default_split = None
    lm_eval_tasks = {"ted_visualpuzzles": None}
    required = ("id", "category", "image", "question", "options", "answer")
    categories = ("algorithmic", "analogical", "deductive", "inductive", "spatial")
    category_field = "category"
    has_images = True
    protocol = "lmms-eval 0.7.3 VisualPuzzles_cot"
    max_gen_toks = 4096

    def canonical_row(self, row: dict[str, Any]) -> dict[str, Any]:
        return {**{k: v for k, v in row.items() if k != "image"}, "images": row.get("image")}

    def letters(self, problem: Problem) -> str:
        """Always A–D: with options drawn in the image there is no text, only the letters."""
        return LETTERS[: len(problem.options)] if problem.options else LETTERS

    def format_prompt(self, problem: Problem) -> str:
        options = list(zip(LETTERS, problem.options)) if problem.options else None
        return prompts.render("visualpuzzles_question", question=problem.question.strip(), options=options, strip=False)

    def grade(self, text: str, problem: Problem) -> Grade:
        options = dict(zip(LETTERS, problem.options)) if problem.options else None
        letter = read_letter(strip_trailer(text, "").strip(), options)
        return Grade(letter, letter is not None and letter.lower() == str(problem.answer).lower())


def read_letter(reply: str, options: dict[str, str] | None) -> str | None:
    """The letter the harness reads from a reply, as written (case kept); None where it would guess."""
    for pattern, spaced in _RULES:
        text = " " + reply.strip() if spaced else reply
        for found in reversed(pattern.findall(text)):
            if found.upper() in LETTERS:
                return found
    spaced_reply = " " + reply.strip()
    if len(spaced_reply) <= _SHORT_CHARS:
        for found in reversed(_SHORT.findall(spaced_reply)):
            return found
    if options is None:
        return None
    lowered = spaced_reply.lower()
    for letter in LETTERS:
        if f"answer: {options[letter]}" in lowered or f"answer:{options[letter]}" in lowered:
            return letter
    latest, where = None, -1
    for letter in LETTERS:
        position = spaced_reply.rfind(options[letter])
        if position > where:
            latest, where = letter, position
    return latest

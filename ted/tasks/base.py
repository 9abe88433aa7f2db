"""The task interface: load problems, format the question, extract and score the answer.

`ted distill --task NAME` grades rollouts with a task; the lm-eval tasks in `eval_tasks/` call
the same adapters, so training and evaluation grade alike.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field


class Problem(BaseModel):
    """One labelled problem. `images` holds file paths or PIL images."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    id: str
    question: str
    answer: str
    options: list[str] | None = None
    images: list[Any] = Field(default_factory=list)
    meta: dict[str, Any] = Field(default_factory=dict)


_PLACEHOLDER = re.compile(r"<\s*image\s*\d*\s*>", re.I)
_NOT_WORD = re.compile(r"[\W_]+", re.UNICODE)


def question_key(text: str) -> str:
    """A question as two problems are compared (`ted data sample`, reasoning-gym's splits):
    Unicode-normalised, case-folded, image placeholders and punctuation gone."""
    text = unicodedata.normalize("NFKC", _PLACEHOLDER.sub(" ", text)).casefold()
    return " ".join(_NOT_WORD.sub(" ", text).split())


@dataclass(frozen=True)
class Grade:
    """One graded reply: the extracted answer (None = no answer found) and the verdict."""

    answer: str | None
    correct: bool

    @property
    def no_answer(self) -> bool:
        return self.answer is None


@runtime_checkable
class Task(Protocol):
    name: str

    def system_prompt(self, library_block: str) -> str | None:
        """The system message for a rendered library ("" = none); None when there is no system message."""
        ...

    def format_prompt(self, problem: Problem) -> str:
        """The user message text: question, options, and how to state the final answer."""
        ...

    def grade(self, text: str, problem: Problem) -> Grade:
        """The reply's final answer, read deterministically (None when there is none), and whether it is right."""
        ...

"""Which lessons help: each lesson's effect on the student's accuracy, measured, with its interval.

Self-citation counts (`usage`) say what the student *says* it used, not what changed its answers.
Here every problem is answered with a seeded random half of the lessons: each lesson is present on
exactly half the problems, drawn independently of the others (a balanced random design), and the
replies are graded by the task. A linear model of correctness on the lessons' presence,
`correct ~ 1 + x_1 + … + x_m`, gives each lesson's effect (percentage points of accuracy when it is
in the prompt, the others averaged over); its 95% interval comes from a bootstrap over problems
(the same resampled problems for every coefficient). With `leave_one_out`, a check for small
libraries: every problem with the whole library and with each lesson removed, effect = acc(all) −
acc(all but one).

The result is stored per item (`effect`, `effect_ci95`, `n`: the problems the estimate rests on) in
the library file and shown by `ted show`, the card and the Space.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ted.distill.rollouts import student_messages
from ted.library import Attribution, Library
from ted.models.base import ChatModel, SamplingParams
from ted.stats import BOOTSTRAP_ITERS
from ted.tasks.base import Problem, Task

LOO_MAX_ITEMS = 8  # leave-one-out costs (m + 1) × n calls: a check for small libraries only


@dataclass
class LessonEffect:
    id: str
    effect: float
    ci95: tuple[float, float]
    n: int
    present: int  # problems that had the lesson in their prompt
    loo: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "effect": self.effect, "effect_ci95": list(self.ci95), "n": self.n, "present": self.present, "loo": self.loo}


@dataclass
class AttributionResult:
    effects: list[LessonEffect]
    n: int
    seed: int
    accuracy: float  # over all attributed problems, each with its half of the lessons
    calls: int
    full_accuracy: float | None = None  # with every lesson (leave-one-out only)
    design: list[list[str]] = field(default_factory=list)  # per problem: the lessons it had

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n, "seed": self.seed, "accuracy": self.accuracy, "calls": self.calls, "full_accuracy": self.full_accuracy,
            "effects": [e.to_dict() for e in self.effects], "method": METHOD,
        }  # fmt: skip


METHOD = (
    "each problem answered with a seeded balanced random half of the lessons (each lesson on half the problems); "
    "effect = the lesson's coefficient in a linear model of correctness on lesson presence, 95% bootstrap interval over problems"
)


def design(ids: Sequence[str], problems: Sequence[Problem], seed: int) -> list[set[str]]:
    """Which lessons each problem sees: per lesson, a seeded random half of the problems (the odd one out at random)."""
    n = len(problems)
    present: list[set[str]] = [set() for _ in problems]
    for item_id in ids:
        order = list(range(n))
        rng = random.Random(f"{seed}:{item_id}")
        rng.shuffle(order)
        half = n // 2 + (rng.random() < 0.5 if n % 2 else 0)
        for index in order[:half]:
            present[index].add(item_id)
    return present


def estimate(ids: Sequence[str], present: Sequence[set[str]], correct: Sequence[float], *, seed: int = 0, iters: int = BOOTSTRAP_ITERS) -> list[LessonEffect]:
    """Each lesson's coefficient in `correct ~ 1 + presence`, with a percentile-bootstrap interval over problems."""
    import numpy as np

    n = len(correct)
    x = np.array([[1.0] + [1.0 if i in row else 0.0 for i in ids] for row in present])
    y = np.array(correct, dtype=float)
    coef = np.linalg.lstsq(x, y, rcond=None)[0]
    picks = np.random.default_rng(seed).integers(0, n, size=(iters, n))
    draws = np.array([np.linalg.lstsq(x[p], y[p], rcond=None)[0] for p in picks])
    low, high = np.percentile(draws, [2.5, 97.5], axis=0)
    clip = lambda v: float(min(1.0, max(-1.0, v)))  # noqa: E731 — a linear probability model can overshoot on few problems
    return [
        LessonEffect(i, clip(coef[j + 1]), (clip(low[j + 1]), clip(high[j + 1])), n, sum(1 for row in present if i in row))
        for j, i in enumerate(ids)
    ]


async def attribute(
    library: Library,
    student: ChatModel,
    task: Task,
    problems: Sequence[Problem],
    params: SamplingParams,
    *,
    seed: int = 0,
    leave_one_out: bool = False,
) -> AttributionResult:
    """Score each problem with its half of the lessons, estimate every lesson's effect (and the
    leave-one-out effects when asked and the library is small)."""
    if not library.items:
        raise ValueError("the library has no lesson to attribute")
    if len(problems) < 4:
        raise ValueError(f"{len(problems)} problems: attribution needs at least 4 (and hundreds for a useful interval)")
    if leave_one_out and len(library.items) > LOO_MAX_ITEMS:
        raise ValueError(f"leave-one-out is a check for libraries of at most {LOO_MAX_ITEMS} lessons; this one has {len(library.items)}")
    ids = library.ids()
    present = design(ids, problems, seed)

    async def score(problem: Problem, keep: set[str]) -> float:
        subset = library.model_copy(update={"items": [item for item in library.items if item.id in keep]})
        result = await student.chat(student_messages(subset, problem, task, frame=True), params)
        return float(task.grade(result.texts[0] if result.texts else "", problem).correct)

    correct = await asyncio.gather(*(score(p, keep) for p, keep in zip(problems, present)))
    effects = estimate(ids, present, correct, seed=seed)
    calls, full = len(problems), None
    if leave_one_out:
        everything = set(ids)
        runs = await asyncio.gather(*(asyncio.gather(*(score(p, everything - {drop}) for p in problems)) for drop in [None, *ids]))
        full = sum(runs[0]) / len(problems)
        for effect, without in zip(effects, runs[1:]):
            effect.loo = full - sum(without) / len(problems)
        calls += len(runs) * len(problems)
    return AttributionResult(effects, len(problems), seed, sum(correct) / len(correct), calls, full, [sorted(row) for row in present])


def store(library: Library, result: AttributionResult) -> None:
    """Write each lesson's effect into its item (the library file's additive `attribution` fields)."""
    by_id = {effect.id: effect for effect in result.effects}
    for item in library.items:
        effect = by_id.get(item.id)
        if effect is not None:
            item.attribution = Attribution(effect=round(effect.effect, 4), effect_ci95=(round(effect.ci95[0], 4), round(effect.ci95[1], 4)), n=effect.n)

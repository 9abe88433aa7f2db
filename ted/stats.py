"""Honest statistics for a with/without-library comparison on the same problems.

A benchmark of 30 problems (AIME) moves 3.3 points per problem, so a difference means little
without its uncertainty. Everything here is computed over *problems*: with `repeats` k > 1
replies per problem, each problem's score is the mean of its k verdicts (mean@k) and the
problems are what is resampled, so k never inflates the sample size.

- accuracy of each arm with a 95% percentile-bootstrap interval over problems;
- the paired difference (with − without) with a paired-bootstrap 95% interval (the same
  resampled problems for both arms);
- an exact two-sided sign test over the problems whose score changed; with one reply per
  problem this is McNemar's exact test (a binomial test on the discordant pairs);
- for an arm distilled with several seeds, Δ pooled over them with an interval that accounts for
  both the evaluation sample and the distillation seed (`pooled`).

The bootstrap is seeded, so the same scores give the same intervals on every run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

BOOTSTRAP_ITERS = 10_000
SEED = 0


@dataclass(frozen=True)
class Arm:
    acc: float
    ci95: tuple[float, float]

    def to_dict(self) -> dict[str, Any]:
        return {"acc": self.acc, "ci95": list(self.ci95)}


@dataclass(frozen=True)
class Comparison:
    """Baseline against with-library on the same n problems, k replies each."""

    n: int
    repeats: int
    baseline: Arm
    with_library: Arm
    delta: float
    delta_ci95: tuple[float, float]
    p_value: float

    @property
    def significant(self) -> bool:
        """Whether the 95% interval of the difference excludes 0."""
        low, high = self.delta_ci95
        return not low <= 0.0 <= high

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n, "repeats": self.repeats, "baseline": self.baseline.to_dict(),
            "with_library": self.with_library.to_dict(), "delta": self.delta,
            "delta_ci95": list(self.delta_ci95), "p_value": self.p_value,
        }  # fmt: skip


def per_problem(scores: Sequence[Sequence[float]]) -> list[float]:
    """Each problem's mean over its replies (mean@k); every problem needs at least one reply."""
    if any(len(replies) == 0 for replies in scores):
        raise ValueError("every problem needs at least one scored reply")
    return [sum(replies) / len(replies) for replies in scores]


def compare(
    baseline: Sequence[Sequence[float]],
    with_library: Sequence[Sequence[float]],
    *,
    iters: int = BOOTSTRAP_ITERS,
    seed: int = SEED,
) -> Comparison:
    """The comparison of two arms scored on the same problems, in the same order."""
    import numpy as np
    from scipy.stats import binomtest

    if len(baseline) != len(with_library):
        raise ValueError(f"the arms cover different problems ({len(baseline)} and {len(with_library)})")
    if not baseline:
        raise ValueError("no problems to compare")
    base, lib = np.array(per_problem(baseline)), np.array(per_problem(with_library))
    repeats = max(max(len(r) for r in baseline), max(len(r) for r in with_library))
    n = len(base)
    picks = np.random.default_rng(seed).integers(0, n, size=(iters, n))
    base_means, lib_means = base[picks].mean(axis=1), lib[picks].mean(axis=1)
    diff = lib - base
    better, worse = int((diff > 0).sum()), int((diff < 0).sum())
    p_value = 1.0 if better + worse == 0 else float(binomtest(better, better + worse, 0.5).pvalue)
    return Comparison(
        n=n,
        repeats=repeats,
        baseline=Arm(float(base.mean()), _interval(base_means)),
        with_library=Arm(float(lib.mean()), _interval(lib_means)),
        delta=float(diff.mean()),
        delta_ci95=_interval(lib_means - base_means),
        p_value=p_value,
    )


def _interval(samples: Any) -> tuple[float, float]:
    import numpy as np

    low, high = np.percentile(samples, [2.5, 97.5])
    return float(low), float(high)


# --------------------------------------------------------------------------- several distillations
@dataclass(frozen=True)
class Pooled:
    """Δ of one arm distilled with S seeds, each library scored on the same n problems as the control.

    Two sources of uncertainty: which problems were drawn (the evaluation sample) and which library
    the distillation happened to write (its seed). Δ̄ is the mean over seeds of each seed's Δ; its
    variance is estimated as se_problems² + sd_seeds² / S, where se_problems² is the variance over
    problems of each problem's seed-averaged difference, divided by n, and sd_seeds the standard
    deviation of the seeds' Δ (a random-effects model; the seed term already holds some of the
    problem × seed noise, so the sum leans conservative). The interval is Student-t with
    Welch–Satterthwaite degrees of freedom (n − 1 for the problem term, S − 1 for the seed term):
    with 3 seeds and seeds that disagree, it is wide, as it should be.
    """

    seeds: int
    n: int
    deltas: tuple[float, ...]
    delta: float
    sd_seeds: float
    se_problems: float
    se: float
    df: float
    ci95: tuple[float, float]
    p_value: float

    METHOD = "random-effects t: se² = var over problems of the seed-averaged difference / n + var of the seeds' Δ / S; Welch–Satterthwaite df"

    def to_dict(self) -> dict[str, Any]:
        return {
            "seeds": self.seeds, "n": self.n, "deltas": list(self.deltas), "delta": self.delta, "sd_seeds": self.sd_seeds,
            "se_problems": self.se_problems, "se": self.se, "df": self.df, "ci95": list(self.ci95), "p_value": self.p_value,
            "method": self.METHOD,
        }  # fmt: skip


def pooled(control: Sequence[Sequence[float]], seeds: Sequence[Sequence[Sequence[float]]]) -> Pooled:
    """Δ over several distillation seeds against one control (per problem, per reply, as `compare` takes them)."""
    import numpy as np
    from scipy.stats import t

    if not seeds:
        raise ValueError("no seed to pool")
    if any(len(arm) != len(control) for arm in seeds):
        raise ValueError("every seed's library must be scored on the control's problems")
    if len(control) < 2:
        raise ValueError("pooling needs at least 2 problems")
    base = np.array(per_problem(control))
    diffs = np.array([np.array(per_problem(arm)) - base for arm in seeds])  # S × n
    s, n = diffs.shape
    deltas = diffs.mean(axis=1)
    problem_var = float(diffs.mean(axis=0).var(ddof=1)) / n
    seed_var = float(deltas.var(ddof=1)) / s if s > 1 else 0.0
    se = (problem_var + seed_var) ** 0.5
    parts = [(problem_var, n - 1)] + ([(seed_var, s - 1)] if s > 1 else [])
    denominator = sum(v * v / df for v, df in parts)
    df = (problem_var + seed_var) ** 2 / denominator if denominator > 0 else float(n - 1)
    delta = float(deltas.mean())
    if se > 0:
        half = float(t.ppf(0.975, df)) * se
        p_value = float(2 * t.sf(abs(delta) / se, df))
    else:
        half, p_value = 0.0, 1.0 if delta == 0 else 0.0
    return Pooled(
        seeds=s, n=n, deltas=tuple(float(d) for d in deltas), delta=delta, sd_seeds=float(deltas.std(ddof=1)) if s > 1 else 0.0,
        se_problems=problem_var**0.5, se=se, df=float(df), ci95=(delta - half, delta + half), p_value=p_value,
    )  # fmt: skip

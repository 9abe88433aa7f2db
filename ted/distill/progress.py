"""Progress of a run, for whoever shows it: the engine knows no terminal, only a `Reporter`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

Stage = Literal["rollouts", "solve", "structure", "extract", "compress", "validate"]
Role = Literal["student", "teacher"]
# Which model each stage calls: the ledger books a call under its role.
STAGE_ROLE: dict[Stage, Role] = {
    "rollouts": "student", "validate": "student",
    "solve": "teacher", "structure": "teacher", "extract": "teacher", "compress": "teacher",
}  # fmt: skip
# The stages a problem of a batch goes through, in order ("solve" only with per-epoch solutions:
# by default the teacher's solutions are asked once per run, ahead of the batches). After each
# batch, one "compress" (a teacher call only for `teacher` compression over budget); "validate"
# once per validation problem and epoch. The loop, its progress and the cost plans read this.
BATCH_STAGES: tuple[Stage, ...] = ("rollouts", "solve", "structure", "extract")


def batch_stages(per_epoch_solutions: bool) -> tuple[Stage, ...]:
    """The stages each problem of each batch calls; without per-epoch solutions, "solve" is once per problem and run."""
    return tuple(stage for stage in BATCH_STAGES if per_epoch_solutions or stage != "solve")


@dataclass
class Status:
    epoch: int = 0
    epochs: int = 0
    batch: int = 0
    batches: int = 0
    done: int = 0
    total: int = 0
    in_flight: int = 0
    items: int = 0
    tokens: int = 0
    rollouts_correct: int = 0
    rollouts_total: int = 0
    cut_off: int = 0  # student generations that hit the token limit, this run
    # Calls of the current batch, per stage: the bar moves while a batch runs, not only after it.
    planned: dict[str, int] = field(default_factory=dict)
    finished: dict[str, int] = field(default_factory=dict)
    solutions: int = 0  # teacher solutions in hand (asked once per run, ahead of the batches)
    solutions_total: int = 0

    @property
    def rollout_accuracy(self) -> float:
        return self.rollouts_correct / self.rollouts_total if self.rollouts_total else 0.0

    def start_batch(self, size: int, per_epoch_solutions: bool) -> None:
        self.planned = {stage: size for stage in batch_stages(per_epoch_solutions)}
        self.finished = {}

    def skip(self, *stages: Stage) -> None:
        """A problem that will not make these calls (e.g. `--skip-solved`)."""
        for stage in stages:
            self.planned[stage] -= 1

    def call_done(self, stage: Stage) -> None:
        self.finished[stage] = self.finished.get(stage, 0) + 1

    @property
    def progress(self) -> float:
        """Problems done, counting the current batch's finished calls as a fraction of its problems."""
        planned = sum(self.planned.get(stage, 0) for stage in BATCH_STAGES)
        if not planned:
            return float(self.done)
        finished = sum(min(self.finished.get(stage, 0), self.planned.get(stage, 0)) for stage in BATCH_STAGES)
        return self.done + self.planned.get("rollouts", 0) * finished / planned

    def calls(self) -> str:
        """`rollouts 3/3 · structure 1/3 · extract 0/3 · solutions 5/6` (and compress/validate when they ran)."""
        parts = [f"{stage} {self.finished.get(stage, 0)}/{self.planned[stage]}" for stage in BATCH_STAGES if stage in self.planned]
        parts += [f"{stage} {self.finished[stage]}" for stage in ("compress", "validate") if self.finished.get(stage)]
        if self.solutions_total:
            parts.append(f"solutions {self.solutions}/{self.solutions_total}")
        return " · ".join(parts)


class Reporter(Protocol):
    def update(self, status: Status) -> None: ...

    def log(self, message: str) -> None: ...


class SilentReporter:
    """For library use and tests: progress goes nowhere (the run's log is kept in its state)."""

    def update(self, status: Status) -> None:
        return None

    def log(self, message: str) -> None:
        return None

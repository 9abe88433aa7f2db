"""Progress of a run, for whoever shows it: the engine knows no terminal, only a `Reporter`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


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

    @property
    def rollout_accuracy(self) -> float:
        return self.rollouts_correct / self.rollouts_total if self.rollouts_total else 0.0


class Reporter(Protocol):
    def update(self, status: Status) -> None: ...

    def log(self, message: str) -> None: ...


class SilentReporter:
    """For library use and tests: progress goes nowhere (the run's log is kept in its state)."""

    def update(self, status: Status) -> None:
        return None

    def log(self, message: str) -> None:
        return None

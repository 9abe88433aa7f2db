"""The run's state, which is also the checkpoint file's schema: one model, saved after every batch.

A checkpoint lets `--resume` continue at the next batch and end with the same library as an
uninterrupted run. It is refused, with one line saying what to do, when it is damaged, was written
by other options, or over other training problems.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ted.distill.config import RunConfig
from ted.distill.rollouts import Rollout
from ted.errors import ConfigError
from ted.files import atomic_write, parse_json, read_capped
from ted.library import ExtractionTally, Library
from ted.limits import MAX_CHECKPOINT_BYTES, MAX_NESTING
from ted.tasks.base import Problem

CHECKPOINT_FORMAT = "ted-checkpoint/2"
MAX_LOG = 200  # newest run-log lines kept


def problems_fingerprint(problems: list[Problem]) -> str:
    """A hash of the training problems: a checkpoint resumes only over the data it was written for."""
    digest = hashlib.sha256()
    for problem in problems:
        digest.update(json.dumps([problem.id, problem.question, problem.answer, problem.options]).encode() + b"\n")
    return digest.hexdigest()[:16]


class CheckpointWriter:
    """Writes checkpoints off the critical path: the state is serialised now, on the loop (the next
    batch cannot change it), and written in a thread while the next batch starts. One write at a
    time, each atomic, so a kill leaves the previous checkpoint or this one, and resume redoes the rest."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writing: asyncio.Task[Path] | None = None

    async def save(self, state: RunState) -> None:
        text = state.dump()
        await self.wait()
        self._writing = asyncio.create_task(asyncio.to_thread(atomic_write, self.path, text))

    async def wait(self) -> None:
        """Wait for the write in flight, if any (its error, e.g. a full disk, is raised here)."""
        writing, self._writing = self._writing, None
        if writing is not None:
            await writing


def checkpoint_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".checkpoint.json")


class RunState(BaseModel):
    """Everything needed to continue exactly where the run stopped."""

    model_config = ConfigDict(extra="ignore")

    format: Literal["ted-checkpoint/2"] = CHECKPOINT_FORMAT
    fingerprint: str  # of the options that change the result
    config: dict[str, object] = Field(default_factory=dict)  # the options, to name the changed ones
    data: str | None = None  # fingerprint of the training problems
    library: Library
    epoch: int = Field(default=0, ge=0)
    batch: int = Field(default=0, ge=0)  # batches of `epoch` already applied
    step: int = Field(default=0, ge=0)  # problems applied so far
    wall_s: float = 0.0
    best: Library | None = None
    best_score: float | None = None
    rollouts_correct: int = Field(default=0, ge=0)  # this epoch so far: the learning curve's train accuracy
    rollouts_total: int = Field(default=0, ge=0)
    calls_offset: int = Field(default=0, ge=0)  # bytes of the call log written by then: --resume cuts it back to this
    extraction: ExtractionTally = Field(default_factory=ExtractionTally)
    log: list[str] = Field(default_factory=list)
    solutions: dict[str, Rollout] = Field(default_factory=dict)  # problem id → the teacher's own solution, asked once per run
    teacher_chains: dict[str, str] = Field(default_factory=dict)  # problem id → that solution's structured chain

    def dump(self) -> str:
        del self.log[:-MAX_LOG]
        return self.model_dump_json()

    @classmethod
    def load(cls, path: Path, config: RunConfig, data: str, problems: int) -> RunState:
        """The checkpoint at `path`, refused (one line) unless written by `config` over the training
        problems hashed `data` (`problems` of them), and consistent: a hand-edited position must not
        silently skip work."""
        again = "; rerun with --force to start over"
        try:
            raw = parse_json(read_capped(path, MAX_CHECKPOINT_BYTES, ConfigError).decode("utf-8"), ConfigError, str(path), MAX_NESTING)
        except (UnicodeDecodeError, ConfigError) as err:
            raise ConfigError(f"{path}: unreadable checkpoint ({str(err).removeprefix(f'{path}: ')}){again}") from None
        if not isinstance(raw, dict) or raw.get("format") != CHECKPOINT_FORMAT:
            raise ConfigError(f"{path}: not a ted checkpoint; rerun with --force to start over")
        if raw.get("fingerprint") != config.fingerprint():
            changed = config.changed_since(raw["config"] if isinstance(raw.get("config"), dict) else {})
            raise ConfigError(
                f"{path} was written by a different configuration (changed: {', '.join(changed) or 'unknown'}); "
                "resume with the same options, or use --force to start over"
            )
        try:
            state = cls.model_validate(raw)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise ConfigError(f"{path}: damaged checkpoint ({where}: {first['msg']}); rerun with --force to start over") from None
        batches = -(-problems // config.batch_size)
        wrong = next(
            (
                what
                for what, bad in (
                    (f"epoch {state.epoch} of {config.epochs}", state.epoch > config.epochs),
                    (f"batch {state.batch} of {batches}", state.batch > batches),
                    (f"step {state.step} past {config.epochs * problems} problems × epochs", state.step > config.epochs * problems),
                    (f"{state.rollouts_correct} correct of {state.rollouts_total} rollouts", state.rollouts_correct > state.rollouts_total),
                )
                if bad
            ),
            None,
        )
        if wrong:
            raise ConfigError(f"{path}: damaged checkpoint ({wrong}){again}")
        if state.data != data:  # a checkpoint without the hash (`data: null`) is not trusted over any data
            raise ConfigError(
                f"{path}: the training problems in {config.data} changed since this checkpoint was written; "
                "resume with the same data, or use --force to start over"
            )
        return state

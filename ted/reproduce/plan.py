"""What `ted reproduce` will do, as a list of steps, and where it stands: `runs/NAME/state.json`.

A reproduction is a fixed plan of units — the training split, one distillation per arm
(strategy × teacher × distillation seed), one evaluation per (benchmark, arm) including the
no-library baseline and the placebo (the library's frame and citation instruction, no lesson) —
derived from one `ReproduceConfig`. The state file records the configuration, its fingerprint
and, per step, whether it finished and what it produced. Every update is an atomic write, so a
killed run leaves either the old or the new state, and `--resume` runs exactly the steps that
are not done (a distillation continues from its own checkpoint).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator, model_validator

from ted.distill.config import RunConfig, derive_seed, option_field
from ted.distill.options import Strategy
from ted.errors import ConfigError, LibraryError
from ted.files import atomic_write, remove_stale_temps
from ted.redact import scrub_text
from ted.repo_ids import check_repo_id
from ted.reproduce.options import DISTILL_OPTIONS, PARSED, REPRODUCE, STRATEGIES
from ted.tasks import registry
from ted.tasks.registry import BENCHMARKS, MAIN_BENCHMARKS

STATE_FORMAT = "ted-reproduce/1"
STATE_FILE = "state.json"
BASELINE = "baseline"
PLACEBO = "placebo"  # the system frame and citation instruction of a library, with no lesson in it

# Options that change nothing in the results; they may differ on --resume.
NOT_HASHED = ("out", "concurrency", "price", "reply_tokens", "push", "api_key_env", "teacher_api_key_env")


# Every option of `ted reproduce`: types, defaults and bounds from its table (the parsed ones typed here).
_Options: type[BaseModel] = create_model(
    "_Options",
    __config__=ConfigDict(extra="forbid"),
    **{option.name: option_field(option) for option in REPRODUCE if option.name not in PARSED},
)


class ReproduceConfig(_Options):  # type: ignore[misc,valid-type]
    """Every option of a reproduction; recorded in the state file and the report, hashed to guard `--resume`."""

    model_config = ConfigDict(extra="forbid")

    strategies: list[Strategy] = Field(default_factory=lambda: list(STRATEGIES))
    seed_strategies: list[Strategy] = Field(default_factory=list)  # the strategies repeated `seeds` times (empty: all)
    teachers: list[str] = Field(default_factory=list)  # more teachers: the paper's teacher ablation
    transfer_to: list[str] = Field(default_factory=list)
    eval_data: dict[str, str] = Field(default_factory=dict)  # benchmark → local copy in its Hub schema
    price: dict[str, tuple[float, float]] = Field(default_factory=dict)

    @field_validator("strategies")
    @classmethod
    def _unique_strategies(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("give at least one strategy")
        if len(set(value)) != len(value):
            raise ValueError("each strategy once")
        return value

    @model_validator(mode="after")
    def _seeded_strategies_are_run(self) -> ReproduceConfig:
        extra = [s for s in self.seed_strategies if s not in self.strategies]
        if extra:
            raise ValueError(f"--seed-strategies names {extra[0]!r}, which --strategies does not run")
        return self

    @field_validator("push")
    @classmethod
    def _hub_dataset_id(cls, value: str | None) -> str | None:
        """Refused before the run, not after hours of it."""
        if value is not None:
            try:
                check_repo_id(value)
            except LibraryError:
                raise ValueError("not a Hub dataset id like org/name (letters, digits, '-', '_', '.'; no '..' or '--')") from None
        return value

    @field_validator("benchmark")
    @classmethod
    def _main_benchmark(cls, value: str) -> str:
        entry = registry.benchmark(value)
        if value in BENCHMARKS and not entry.main:
            raise ValueError(f"{value} is a transfer target only; choose {', '.join(MAIN_BENCHMARKS)} or rg:NAME")
        return entry.name

    @field_validator("transfer_to")
    @classmethod
    def _known_benchmarks(cls, value: list[str]) -> list[str]:
        return [registry.benchmark(name).name for name in value]

    @model_validator(mode="after")
    def _no_self_transfer(self) -> ReproduceConfig:
        if self.benchmark in self.transfer_to:
            raise ValueError(f"--transfer-to repeats the main benchmark {self.benchmark!r}")
        bad = [name for name in self.eval_data if name not in self.benchmarks]
        if bad:
            raise ValueError(f"--eval-data names {bad[0]!r}, which this run does not evaluate ({', '.join(self.benchmarks)})")
        return self

    @property
    def benchmarks(self) -> list[str]:
        """The main benchmark, then the transfer targets (the paper's cross-task table)."""
        return [self.benchmark, *self.transfer_to]

    @property
    def training_task(self) -> str:
        return self.train_task or registry.benchmark(self.benchmark).pool

    @property
    def all_teachers(self) -> list[str]:
        return [self.teacher, *[t for t in self.teachers if t != self.teacher]]

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(hashed(self.model_dump(mode="json")), sort_keys=True).encode()).hexdigest()[:16]

    def recorded(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def run_config(self, arm: Arm, data: str, out: str) -> RunConfig:
        """The options one arm's `ted distill` runs with: ours, and RunConfig's defaults for the rest."""
        options = {option.name: getattr(self, option.name) for option in DISTILL_OPTIONS} | {"seed": arm.seed}
        return RunConfig(
            data=data, task=self.training_task, student=self.student, teacher=arm.teacher, out=out, compression=arm.strategy,
            price=self.price, **options,
        )  # fmt: skip

    def seeds_of(self, strategy: str) -> int:
        return self.seeds if not self.seed_strategies or strategy in self.seed_strategies else 1


def hashed(config: dict[str, Any]) -> dict[str, Any]:
    """What `--resume` must find unchanged in a recorded configuration. An endpoint counts by the model it
    serves, not its address: a run resumed in a later session reaches the same local models on new ports."""
    from ted.models import parse_spec

    data = {k: v for k, v in config.items() if k not in NOT_HASHED}
    for role in ("student", "teacher"):
        if isinstance(data.get(role), str):
            data[role] = parse_spec(data[role])[1]
    data["teachers"] = [parse_spec(spec)[1] for spec in data.get("teachers") or []]
    return data


@dataclass(frozen=True)
class Arm:
    """One library to build: a compression strategy with one teacher (index into `all_teachers`) and
    one distillation seed (`seed_index` 0 runs with the configuration's seed, so one seed is the old plan)."""

    strategy: str
    teacher_index: int
    teacher: str
    seed_index: int = 0
    seed: int = 0

    @property
    def group(self) -> str:
        """The arm without its seed: the distillations whose Δ are pooled."""
        return self.strategy if self.teacher_index == 0 else f"{self.strategy}@teacher{self.teacher_index + 1}"

    @property
    def name(self) -> str:
        return self.group if self.seed_index == 0 else f"{self.group}-s{self.seed_index + 1}"


def distillation_seed(seed: int, index: int) -> int:
    """The seed of a strategy's `index`-th distillation: the run's own first, then derived ones."""
    return seed if index == 0 else derive_seed(seed, "distillation", index)


def arms(config: ReproduceConfig) -> list[Arm]:
    return [
        Arm(s, i, t, k, distillation_seed(config.seed, k))
        for i, t in enumerate(config.all_teachers) for s in config.strategies for k in range(config.seeds_of(s))
    ]  # fmt: skip


def controls(config: ReproduceConfig) -> list[str]:
    """The evaluations without a distilled library: the baseline, and the placebo when asked."""
    return [BASELINE, PLACEBO] if config.placebo else [BASELINE]


StepKind = Literal["split", "distill", "eval", "attribute"]


@dataclass(frozen=True)
class Step:
    """One checkpointed unit. `arm` is None for the split, BASELINE or PLACEBO for the evaluations without a library."""

    kind: StepKind
    arm: str | None = None
    benchmark: str | None = None

    @property
    def id(self) -> str:
        return ":".join(part for part in (self.kind, self.benchmark, self.arm) if part)


def plan(config: ReproduceConfig) -> list[Step]:
    """The steps in run order: split, every distillation, every evaluation (baseline and placebo first),
    then, with `attribute`, the lessons of the first library measured on the main benchmark."""
    steps = [Step("split")]
    steps += [Step("distill", arm.name) for arm in arms(config)]
    for bench in config.benchmarks:
        steps += [Step("eval", name, bench) for name in (*controls(config), *(arm.name for arm in arms(config)))]
    if config.attribute:
        steps.append(Step("attribute", arms(config)[0].name, config.benchmark))
    return steps


# --------------------------------------------------------------------------- the run folder
class RunDir:
    """The layout of `runs/NAME`: every path a step reads or writes is named here."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def state(self) -> Path:
        return self.root / STATE_FILE

    @property
    def train(self) -> Path:
        return self.root / "train.jsonl"

    def library(self, arm: str) -> Path:
        return self.root / "libraries" / arm / "library.json"

    def attribution(self, arm: str) -> Path:
        return self.root / "libraries" / arm / "attribution.json"

    def eval(self, benchmark: str, arm: str) -> Path:
        return self.root / "evals" / benchmark / f"{arm}.json"

    @property
    def report_md(self) -> Path:
        return self.root / "report.md"

    @property
    def report_json(self) -> Path:
        return self.root / "report.json"

    @property
    def report_html(self) -> Path:
        return self.root / "report.html"

    def chart(self, name: str) -> Path:
        return self.root / f"{name}.png"


class StepState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["pending", "running", "done"] = "pending"
    attempts: int = 0
    wall_s: float = 0.0  # seconds of the attempt that finished
    started: float | None = None
    result: dict[str, Any] = Field(default_factory=dict)


class State(BaseModel):
    """The contents of `state.json`."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["ted-reproduce/1"] = STATE_FORMAT
    fingerprint: str
    config: dict[str, Any]
    command: list[str] = Field(default_factory=list)
    steps: dict[str, StepState]

    def done(self, step: Step) -> bool:
        return self.steps[step.id].status == "done"


class Tracker:
    """Reads and writes the state file; the only code that touches it."""

    def __init__(self, run_dir: RunDir, config: ReproduceConfig, steps: list[Step], command: list[str]) -> None:
        self.dir, self.config, self.steps = run_dir, config, steps
        self.state = State(
            fingerprint=config.fingerprint(),
            config=config.recorded(),
            command=command,
            steps={step.id: StepState() for step in steps},
        )

    def open(self, resume: bool) -> None:
        """Start a new state file, or (resume) load the old one; refuse a mismatch before any call is made."""
        path = self.dir.state
        remove_stale_temps(path)
        if not resume:
            if path.exists():
                raise ConfigError(f"{path} exists: rerun with --resume to continue that run, or choose another --out")
            self.save()
            return
        if not path.exists():
            raise ConfigError(f"nothing to resume: {path} does not exist; run without --resume to start")
        try:
            old = State.model_validate_json(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValidationError) as err:
            raise ConfigError(f"{path}: unreadable state file ({str(err).splitlines()[0]}); choose another --out to start over") from None
        if old.fingerprint != self.state.fingerprint:
            before, now = hashed(old.config), hashed(self.state.config)
            changed = sorted(k for k, v in now.items() if before.get(k) != v)
            raise ConfigError(
                f"{path} was written by a different configuration (changed: {', '.join(changed) or 'unknown'}); "
                "resume with the same options, or choose another --out"
            )
        for step_id, step_state in old.steps.items():
            if step_id in self.state.steps:
                self.state.steps[step_id] = step_state
        self.state.command = old.command or self.state.command
        self.save()

    def save(self) -> None:
        """The state, with credentials scrubbed out of any URL (the fingerprint is of the real configuration)."""
        atomic_write(self.dir.state, scrub_text(self.state.model_dump_json(indent=1)))

    def pending(self) -> list[Step]:
        return [step for step in self.steps if not self.state.done(step)]

    def start(self, step: Step) -> None:
        entry = self.state.steps[step.id]
        entry.status, entry.started, entry.attempts = "running", time.time(), entry.attempts + 1
        self.save()

    def finish(self, step: Step, result: dict[str, Any]) -> None:
        entry = self.state.steps[step.id]
        entry.wall_s = round(time.time() - (entry.started or time.time()), 3)
        entry.status, entry.result = "done", result
        self.save()

    def result(self, step: Step) -> dict[str, Any]:
        return self.state.steps[step.id].result

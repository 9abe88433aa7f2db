"""The distillation loop: epochs of mini-batches over the training problems.

Per problem: rollouts ∥ teacher solution → structuring → extraction. The teacher's solution does
not depend on the library: it is asked once per run, from the start and ahead of the batches that
need it, kept in the checkpoint and reused every epoch (`--fresh-teacher-solutions`: per epoch). A batch of B problems shares
one library snapshot and runs concurrently; its operations are applied in problem order (so the
result does not depend on which call finished first), then usage is counted and compression runs
if the library is over budget. B=1 is exactly the paper's sequential loop.

After every batch the whole state is checkpointed atomically, so `resume=True` continues at the
next batch and ends with the same library as an uninterrupted run. The engine knows nothing of
terminals: it reports progress through a `Reporter`.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ted import prompts
from ted.distill.compress import Strategy, compress
from ted.distill.extract import MAX_OPS, Extraction, apply_ops, extract
from ted.distill.rollouts import Rollout, grade, rollouts, student_messages
from ted.distill.structure import structure
from ted.distill.teacher_solution import teacher_solution
from ted.errors import ConfigError, LibraryError
from ted.library import Budget, ExtractionTally, Library, ModelInfo, Rejection, RoleCost, SourceInfo, atomic_write, clean_text, remove_stale_temps
from ted.redact import scrub_value
from ted.models.base import ChatModel, ChatResult, SamplingParams
from ted.tasks.base import Problem, Task
from ted.tokens import TokenCounter, get_counter

CHECKPOINT_FORMAT = "ted-checkpoint/1"
Role = Literal["student", "teacher"]


# Options that change nothing in the result; they may differ on --resume.
NOT_HASHED = ("out", "concurrency", "price", "name")


class RunConfig(BaseModel):
    """Every option of a run. It is recorded in the library, and its hash guards `--resume`."""

    model_config = ConfigDict(extra="forbid")

    data: str
    task: str = "generic"
    student: str
    teacher: str
    out: str
    fields: dict[str, str] = Field(default_factory=dict)
    split: str | None = None
    limit: int | None = Field(default=None, ge=1, le=100_000_000)
    val_data: str | None = None
    keep_best: bool = False
    epochs: int = Field(default=3, ge=1, le=1000)
    rollouts: int = Field(default=5, ge=1, le=64)
    batch_size: int = Field(default=8, ge=1, le=4096)
    budget_tokens: int = Field(default=4000, ge=1, le=1_000_000)
    max_items: int = Field(default=15, ge=1, le=500)
    compression: Strategy = "teacher"
    seed: int = 0
    temperature: float = Field(default=0.7, ge=0)
    teacher_temperature: float = Field(default=0.3, ge=0)
    # Generation budgets: thinking models reason for thousands of tokens before answering. An
    # OpenAI-compatible server's reported context lowers them per request (see models.openai_api).
    max_tokens: int = Field(default=16384, ge=1, le=1_000_000)  # student rollouts
    teacher_max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)  # the teacher's own solution; None: as max_tokens
    json_max_tokens: int = Field(default=16384, ge=1, le=1_000_000)  # the teacher's structuring, extraction, compression
    max_ops: int = Field(default=MAX_OPS, ge=1, le=10)
    skip_solved: bool = False  # no structuring or extraction when all rollouts and the teacher are right
    prompts: str | None = None  # a folder of prompt files replacing the package's
    concurrency: int = Field(default=16, ge=1, le=4096)
    tokenizer: str = "cl100k_base"
    name: str | None = None
    price: dict[str, tuple[float, float]] = Field(default_factory=dict)
    system_in_user: bool = False  # the student's system text folded into its first user turn (ted.system_probe)
    fresh_teacher_solutions: bool = False  # ask the teacher to solve each problem again every epoch (default: once per run)

    def fingerprint(self) -> str:
        data = self.model_dump(mode="json", exclude=set(NOT_HASHED)) | {"prompts_sha256": self.prompt_set().digest}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    def recorded(self) -> dict[str, Any]:
        """The options as stored (library `config`, checkpoint): URLs without their credentials,
        and the hash of the prompt set the run used."""
        return scrub_value(self.model_dump(mode="json", exclude={"out"}) | {"prompts_sha256": self.prompt_set().digest})

    def prompt_set(self) -> prompts.PromptSet:
        return prompts.load(self.prompts)


def derive_seed(seed: int, *parts: object) -> int:
    """A per-call seed from the run seed and the call's identity, so order of completion never matters."""
    digest = hashlib.blake2b(":".join(map(str, (seed, *parts))).encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") & 0x7FFFFFFF


# --------------------------------------------------------------------------- progress
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
    def __init__(self) -> None:
        self.messages: list[str] = []

    def update(self, status: Status) -> None:
        return None

    def log(self, message: str) -> None:
        self.messages.append(message)


# --------------------------------------------------------------------------- cost ledger
class Ledger:
    """Calls, tokens, retries and seconds per role; USD when prices per 1M tokens are given."""

    def __init__(self, roles: dict[str, RoleCost] | None = None, prices: dict[str, tuple[float, float]] | None = None):
        self.roles: dict[str, RoleCost] = {"student": RoleCost(), "teacher": RoleCost()}
        self.roles.update({k: v.model_copy() for k, v in (roles or {}).items()})
        self.prices = prices or {}

    def record(self, role: str, result: ChatResult) -> None:
        cost = self.roles.setdefault(role, RoleCost())
        cost.calls += result.requests
        cost.generations += len(result.texts)
        cost.retries += result.retries
        cost.truncated += sum(result.truncated(i) for i in range(len(result.texts)))
        cost.prompt_tokens += result.usage.prompt_tokens
        cost.completion_tokens += result.usage.completion_tokens
        cost.wall_s = round(cost.wall_s + result.wall_s, 3)
        if role in self.prices:
            per_in, per_out = self.prices[role]
            cost.usd = round((cost.prompt_tokens * per_in + cost.completion_tokens * per_out) / 1e6, 6)

    def failure(self, role: str) -> None:
        self.roles.setdefault(role, RoleCost()).failures += 1

    def write_into(self, library: Library, wall_s: float) -> None:
        c = library.cost
        c.roles = {k: v.model_copy() for k, v in self.roles.items()}
        c.calls = {k: v.calls for k, v in self.roles.items()}
        c.generations = {k: v.generations for k, v in self.roles.items()}
        c.prompt_tokens = sum(v.prompt_tokens for v in self.roles.values())
        c.completion_tokens = sum(v.completion_tokens for v in self.roles.values())
        c.wall_s = round(wall_s, 3)
        priced = [v.usd for v in self.roles.values() if v.usd is not None]
        c.usd = round(sum(priced), 6) if priced else None


# --------------------------------------------------------------------------- per-problem work
@dataclass
class ProblemResult:
    problem: Problem
    rollouts: list[Rollout]
    teacher: Rollout
    extraction: Extraction
    structured: bool
    skipped: bool = False  # --skip-solved: every attempt and the teacher were right, nothing asked


@dataclass
class RunState:
    """What a checkpoint holds: enough to continue exactly where the run stopped."""

    library: Library
    epoch: int = 0
    batch: int = 0
    step: int = 0
    wall_s: float = 0.0
    best: Library | None = None
    best_score: float | None = None
    rollouts_correct: int = 0  # this epoch so far: the learning curve's train accuracy
    rollouts_total: int = 0
    extraction: ExtractionTally = field(default_factory=ExtractionTally)
    log: list[str] = field(default_factory=list)
    solutions: dict[str, Rollout] = field(default_factory=dict)  # problem id → the teacher's own solution, asked once per run


class _Checkpoint(BaseModel):
    """The shape of a checkpoint file: a damaged one is refused with one line, not a crash mid-resume."""

    model_config = ConfigDict(extra="ignore")

    epoch: int = Field(ge=0)
    batch: int = Field(ge=0)
    step: int = Field(ge=0)
    wall_s: float = 0.0
    best_score: float | None = None
    rollouts: tuple[int, int] = (0, 0)
    library: dict[str, Any]
    best: dict[str, Any] | None = None
    extraction: ExtractionTally = Field(default_factory=ExtractionTally)
    log: list[str] = Field(default_factory=list)
    data: str | None = None  # fingerprint of the training problems
    solutions: dict[str, Rollout] = Field(default_factory=dict)


def checkpoint_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".checkpoint.json")


class Distiller:
    """Runs TED over `problems`; model-agnostic (any ChatModel) and terminal-agnostic (a Reporter)."""

    def __init__(
        self,
        config: RunConfig,
        student: ChatModel,
        teacher: ChatModel,
        task: Task,
        problems: list[Problem],
        val_problems: list[Problem] | None = None,
        reporter: Reporter | None = None,
        counter: TokenCounter | None = None,
        source: SourceInfo | None = None,
    ) -> None:
        if not problems:
            raise ConfigError("no training problems to distill from")
        self.config = config
        self.prompt_set = config.prompt_set()  # a bad --prompts folder is refused before any call
        self.student, self.teacher = student, teacher
        self.task = task
        self.problems = problems
        self.val_problems = val_problems or []
        self.reporter: Reporter = reporter or SilentReporter()
        self.counter = counter or get_counter(config.tokenizer)
        self.source = source or SourceInfo(dataset=config.data, split=config.split)
        self.ledger = Ledger(prices=config.price)
        self.status = Status(epochs=config.epochs, total=config.epochs * len(problems))
        self.checkpoint = checkpoint_path(config.out)
        self._check_budget()

    # ------------------------------------------------------------------ set-up
    def _check_budget(self) -> None:
        probe = Library(budget=Budget(max_tokens=self.config.budget_tokens, max_items=1, tokenizer=self.config.tokenizer))
        probe.add("When a problem has several cases, check each case before giving the final answer.", 0)
        needed = probe.tokens(self.counter)
        if self.config.budget_tokens < needed:
            raise ConfigError(
                f"--budget-tokens {self.config.budget_tokens} is smaller than one experience "
                f"(the block with one short lesson takes {needed} tokens); use at least {needed * 3}"
            )

    def new_library(self) -> Library:
        c = self.config
        return Library(
            name=c.name or Path(c.out).stem,
            student=ModelInfo(model=self.student.model, backend=self.student.backend),
            teacher=ModelInfo(model=self.teacher.model, backend=self.teacher.backend),
            source=self.source.model_copy(
                update={
                    "samples": len(self.problems),
                    "epochs": c.epochs,
                    "rollouts": c.rollouts,
                    "batch_size": c.batch_size,
                    "seed": c.seed,
                }
            ),
            budget=Budget(max_tokens=c.budget_tokens, max_items=c.max_items, tokenizer=self.counter.name),
            compression=c.compression,
            config=c.recorded(),
        )

    # ------------------------------------------------------------------ checkpoints
    async def save_checkpoint(self, state: RunState) -> None:
        """Snapshot the state now, on the loop (the next batch cannot change it), and write it in a
        thread while the next batch starts: the fsync is off the critical path. One write at a time,
        each atomic, so a kill leaves the previous checkpoint or this one, and resume redoes the rest."""
        text = self.checkpoint_text(state)
        await self.checkpoint_written()
        self._writing = asyncio.create_task(asyncio.to_thread(atomic_write, self.checkpoint, text))

    async def checkpoint_written(self) -> None:
        """Wait for the checkpoint write in flight, if any (its error, e.g. a full disk, is raised here)."""
        writing, self._writing = getattr(self, "_writing", None), None
        if writing is not None:
            await writing

    def checkpoint_text(self, state: RunState) -> str:
        self.ledger.write_into(state.library, state.wall_s)
        payload = {
            "format": CHECKPOINT_FORMAT,
            "fingerprint": self.config.fingerprint(),
            "config": self.config.recorded(),
            "epoch": state.epoch,
            "batch": state.batch,
            "step": state.step,
            "wall_s": state.wall_s,
            "best_score": state.best_score,
            "rollouts": [state.rollouts_correct, state.rollouts_total],
            "best": state.best.model_dump(mode="json") if state.best is not None else None,
            "library": state.library.model_dump(mode="json"),
            "extraction": state.extraction.model_dump(),
            "log": state.log[-200:],
            "data": self.data_fingerprint,
            "solutions": {key: asdict(solution) for key, solution in state.solutions.items()},
        }
        return json.dumps(payload, ensure_ascii=False)

    @functools.cached_property
    def data_fingerprint(self) -> str:
        """A hash of the training problems: a checkpoint resumes only over the data it was written for.

        Computed once: the problems do not change during a run, and hashing them at every checkpoint
        cost O(problems) per batch.
        """
        digest = hashlib.sha256()
        for problem in self.problems:
            digest.update(json.dumps([problem.id, problem.question, problem.answer, problem.options]).encode() + b"\n")
        return digest.hexdigest()[:16]

    def load_checkpoint(self) -> RunState:
        try:
            payload = json.loads(self.checkpoint.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
            raise ConfigError(f"{self.checkpoint}: unreadable checkpoint ({err}); rerun with --force to start over") from None
        if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
            raise ConfigError(f"{self.checkpoint}: not a ted checkpoint; rerun with --force to start over")
        if payload.get("fingerprint") != self.config.fingerprint():
            old = payload.get("config") if isinstance(payload.get("config"), dict) else {}
            changed = sorted(k for k, v in self.config.recorded().items() if k not in NOT_HASHED and old.get(k) != v)
            raise ConfigError(
                f"{self.checkpoint} was written by a different configuration (changed: {', '.join(changed) or 'unknown'}); "
                "resume with the same options, or use --force to start over"
            )
        try:
            saved = _Checkpoint.model_validate(payload)
            library = Library.from_dict(saved.library, origin=str(self.checkpoint))
            best = Library.from_dict(saved.best, origin=str(self.checkpoint)) if saved.best else None
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise ConfigError(f"{self.checkpoint}: damaged checkpoint ({where}: {first['msg']}); rerun with --force to start over") from None
        except LibraryError as err:
            raise ConfigError(f"{err}; rerun with --force to start over") from None
        if saved.data is not None and saved.data != self.data_fingerprint:
            raise ConfigError(
                f"{self.checkpoint}: the training problems in {self.config.data} changed since this checkpoint was written; "
                "resume with the same data, or use --force to start over"
            )
        self.ledger = Ledger(roles=library.cost.roles, prices=self.config.price)
        return RunState(
            library=library,
            epoch=saved.epoch,
            batch=saved.batch,
            step=saved.step,
            wall_s=saved.wall_s,
            best=best,
            best_score=saved.best_score,
            rollouts_correct=saved.rollouts[0],
            rollouts_total=saved.rollouts[1],
            extraction=saved.extraction,
            log=saved.log,
            solutions=saved.solutions,
        )

    # ------------------------------------------------------------------ calls
    async def _call(self, role: Role, make: Callable[[], Awaitable[Any]]) -> Any:
        """Await one stage call, keeping the in-flight count and the ledger.

        The call is made here (`make()`), not by the caller: a call cancelled before it started
        (Ctrl-C, a sibling's failure) then leaves no coroutine that was never awaited.
        """
        self.status.in_flight += 1
        self.reporter.update(self.status)
        try:
            value, result = await make()
        except BaseException:
            self.ledger.failure(role)
            raise
        finally:
            self.status.in_flight -= 1
        self.ledger.record(role, result)
        self.status.cut_off = self.ledger.roles["student"].truncated
        return value

    def _params(self, role: Role, *parts: object, n: int = 1, json_out: bool = False) -> SamplingParams:
        c = self.config
        return SamplingParams(
            n=n,
            temperature=c.temperature if role == "student" else c.teacher_temperature,
            max_tokens=c.json_max_tokens if json_out else c.max_tokens if role == "student" else c.teacher_max_tokens or c.max_tokens,
            seed=derive_seed(c.seed, role, *parts),
        )

    async def process(self, problem: Problem, snapshot: Library, epoch: int) -> ProblemResult:
        """Rollouts ∥ teacher solution (the run's, or per epoch) → structuring → extraction, against one snapshot."""
        key = (epoch, problem.id)
        student_runs, teacher_run = await gather_or_cancel(
            self._call("student", lambda: rollouts(self.student, snapshot, problem, self.task, self._params("student", *key, n=self.config.rollouts)),
            ),
            self.teacher_run(problem, epoch),
        )
        if self.config.skip_solved and teacher_run.correct and all(r.correct for r in student_runs):
            return ProblemResult(problem, student_runs, teacher_run, Extraction(), structured=True, skipped=True)
        chains = await self._call("teacher", lambda: structure(self.teacher, problem, student_runs, teacher_run, self._params("teacher", *key, "structure", json_out=True)),
        )
        extraction = await self._call("teacher", lambda: extract(
                self.teacher,
                snapshot,
                problem,
                student_runs,
                teacher_run,
                chains,
                self._params("teacher", *key, "extract", json_out=True),
                self.counter,
                max_ops=self.config.max_ops,
            ),
        )
        return ProblemResult(problem, student_runs, teacher_run, extraction, chains.parsed)

    # ------------------------------------------------------------------ the loop
    def batches(self, epoch: int) -> list[list[Problem]]:
        order = list(self.problems)
        random.Random(f"{self.config.seed}:epoch:{epoch}").shuffle(order)
        size = self.config.batch_size
        return [order[i : i + size] for i in range(0, len(order), size)]

    async def run_batch(self, state: RunState, batch: list[Problem], epoch: int) -> None:
        # The batch reads only the snapshot's items (prompts, ids, duplicate checks). Copying the
        # ever-growing history as well made every batch cost O(steps so far).
        items = [item.model_copy(deep=True) for item in state.library.items]
        snapshot = state.library.model_copy(update={"items": items, "history": []})
        results = await gather_or_cancel(*(self.process(p, snapshot, epoch) for p in batch))
        library = state.library
        for result in results:  # problem order, not completion order
            state.step += 1
            library.record_usage(r.cited for r in result.rollouts)
            library.record_seen(snapshot.ids(), len(result.rollouts))
            library.record_verdicts(result.extraction.verdicts)
            applied = apply_ops(library, result.extraction.ops, state.step, result.problem.id)
            tally = state.extraction
            tally.accepted += len(applied)
            tally.reject(Rejection.DUPLICATE_IN_BATCH, len(result.extraction.ops) - len(applied))
            for rejected in result.extraction.rejected:
                tally.reject(rejected.reason)
                state.log.append(
                    f"step {state.step} {result.problem.id}: rejected {rejected.op.op} ({rejected.detail}): {clean_text(rejected.op.text)[:120]}"
                )
            if result.skipped:
                state.log.append(f"step {state.step} {result.problem.id}: all attempts and the teacher correct; no extraction (--skip-solved)")
            if not result.structured:
                state.log.append(f"step {state.step} {result.problem.id}: structuring reply unusable; raw traces used")
            if not result.extraction.parsed:
                state.log.append(f"step {state.step} {result.problem.id}: extraction reply unusable; no operations")
            state.rollouts_correct += sum(r.correct for r in result.rollouts)
            state.rollouts_total += len(result.rollouts)
        self.status.rollouts_correct, self.status.rollouts_total = state.rollouts_correct, state.rollouts_total
        report = await self._call("teacher", lambda: compress(
                library,
                self.config.compression,
                self.counter,
                state.step,
                self.config.seed,
                teacher=self.teacher,
                params=self._params("teacher", epoch, state.step, "compress", json_out=True),
            ),
        )
        if report.rounds or report.after_items != report.before_items:
            message = (
                f"step {state.step}: compression ({report.strategy}) {report.before_items}→{report.after_items} items, "
                f"{report.before_tokens}→{report.after_tokens} tokens"
            )
            if report.fallback:
                message += "; teacher result did not fit, dropped lowest-priority items (fallback)"
            state.log.append(message)
            self.reporter.log(message)

    async def score(self, library: Library | None, problems: list[Problem], tag: str) -> float:
        """Accuracy of one greedy answer per problem: the learning-curve point."""

        async def one(problem: Problem) -> bool:
            params = SamplingParams(n=1, temperature=0.0, max_tokens=self.config.max_tokens, seed=derive_seed(self.config.seed, tag))
            result = await self._call("student", lambda: _paired(self.student.chat(student_messages(library, problem, self.task), params)))
            return grade(result.text, problem, self.task, []).correct

        outcomes = await gather_or_cancel(*(one(p) for p in problems))
        return sum(outcomes) / len(outcomes)

    async def run(self, resume: bool = False) -> Library:
        """Distill and return the final library (the best one with keep_best and a validation split)."""
        with prompts.using(self.prompt_set):
            return await self._run(resume)

    # ------------------------------------------------------------------ the teacher's own solutions
    def solve_ahead(self, state: RunState) -> None:
        """Ask the teacher for every solution the run lacks, from the start and in the order the batches need them.

        A solution does not depend on the library, so it is asked once per run and reused every epoch
        (unless --fresh-teacher-solutions): it then sits in the first round of the first batch only.
        At most half the calls in flight are solutions, so the batches' own calls are never starved.
        Each lands in `state.solutions` as it arrives, so the next checkpoint keeps it and a resumed
        run never asks for it again.
        """
        self.solutions = state.solutions
        self._solving: dict[str, asyncio.Task[Rollout]] = {}
        if self.config.fresh_teacher_solutions:
            return
        ahead = asyncio.Semaphore(max(1, self.config.concurrency // 2))
        needed = [p for batch in self.batches(state.epoch)[state.batch :] for p in batch] + self.problems
        for problem in needed:
            if problem.id not in self.solutions and problem.id not in self._solving:
                self._solving[problem.id] = asyncio.create_task(self._solve(problem, ahead))

    async def _solve(self, problem: Problem, ahead: asyncio.Semaphore) -> Rollout:
        async with ahead:
            params = self._params("teacher", 0, problem.id, "solve")  # the seed epoch 0 asks with, per epoch or not
            solution = await self._call("teacher", lambda: teacher_solution(self.teacher, problem, self.task, params))
        self.solutions[problem.id] = solution
        return solution

    async def teacher_run(self, problem: Problem, epoch: int) -> Rollout:
        """The teacher's solution of `problem`: the run's one (waiting for it if still on its way), or a fresh one."""
        if self.config.fresh_teacher_solutions:
            params = self._params("teacher", epoch, problem.id, "solve")
            return await self._call("teacher", lambda: teacher_solution(self.teacher, problem, self.task, params))
        if problem.id in self.solutions:
            return self.solutions[problem.id]
        return await self._solving[problem.id]

    async def stop_solving(self) -> None:
        """Cancel the solutions still on their way (the run ended or failed) and wait for them, so nothing prints after the run."""
        for task in self._solving.values():
            task.cancel()
        await asyncio.gather(*self._solving.values(), return_exceptions=True)

    async def _run(self, resume: bool) -> Library:
        for path in (self.checkpoint, Path(self.config.out)):  # a killed run may have left half-written temp files
            remove_stale_temps(path)
        state = self.load_checkpoint() if resume and self.checkpoint.exists() else RunState(library=self.new_library())
        limiters: dict[object, asyncio.Semaphore] = {}  # one bound on calls in flight per endpoint (a router counts as one)
        for model in (self.student, self.teacher):
            if hasattr(model, "limiter"):
                endpoint = getattr(model, "base_url", None) or id(model)
                model.limiter = limiters.setdefault(endpoint, asyncio.Semaphore(self.config.concurrency))
        started = time.perf_counter() - state.wall_s
        self.solve_ahead(state)
        try:
            return await self._loop(state, started)
        finally:
            await self.stop_solving()
            await self.checkpoint_written()

    async def _loop(self, state: RunState, started: float) -> Library:
        metrics = state.library.metrics
        metrics.task = self.task.name
        if self.val_problems and metrics.baseline is None:
            metrics.baseline = await self.score(None, self.val_problems, "val")
            self.reporter.log(f"validation baseline (no library): {metrics.baseline:.3f}")
        per_epoch = len(self.problems)
        self.status.done = state.epoch * per_epoch
        while state.epoch < self.config.epochs:
            epoch = state.epoch
            batches = self.batches(epoch)
            self.status.epoch, self.status.batches = epoch + 1, len(batches)
            if state.batch == 0:
                state.rollouts_correct = state.rollouts_total = 0
            self.status.rollouts_correct, self.status.rollouts_total = state.rollouts_correct, state.rollouts_total
            self.status.done = epoch * per_epoch + sum(len(b) for b in batches[: state.batch])
            while state.batch < len(batches):
                self.status.batch = state.batch + 1
                await self.run_batch(state, batches[state.batch], epoch)
                state.batch += 1
                state.wall_s = time.perf_counter() - started
                self.status.done += len(batches[state.batch - 1])
                self.status.items, self.status.tokens = len(state.library.items), state.library.tokens(self.counter)
                await self.save_checkpoint(state)
                self.reporter.update(self.status)
            await self.end_epoch(state, epoch)
            state.epoch, state.batch = epoch + 1, 0
            state.wall_s = time.perf_counter() - started
            await self.save_checkpoint(state)
        final = state.best if (self.config.keep_best and state.best is not None) else state.library
        self.ledger.write_into(final, time.perf_counter() - started)
        if self.val_problems:
            final.metrics.with_library = state.best_score if final is state.best else final.metrics.curve[-1].get("val_accuracy")
        final.metrics.curve = state.library.metrics.curve
        final.metrics.extraction = state.extraction
        final.metrics.baseline, final.metrics.task = state.library.metrics.baseline, self.task.name
        return final

    async def end_epoch(self, state: RunState, epoch: int) -> None:
        point: dict[str, Any] = {
            "epoch": epoch + 1,
            "step": state.step,
            "items": len(state.library.items),
            "tokens": state.library.tokens(self.counter),
            "train_accuracy": round(state.rollouts_correct / state.rollouts_total, 4) if state.rollouts_total else None,
        }
        if self.val_problems:
            accuracy = await self.score(state.library, self.val_problems, "val")
            point["val_accuracy"] = round(accuracy, 4)
            self.reporter.log(f"epoch {epoch + 1}: validation accuracy {accuracy:.3f}")
            if state.best_score is None or accuracy > state.best_score:
                state.best_score, state.best = accuracy, state.library.copy_deep()
        state.library.metrics.curve.append(point)
        if state.best is not None:
            state.best.metrics.curve = list(state.library.metrics.curve)


async def gather_or_cancel(*calls: Awaitable[Any]) -> list[Any]:
    """`asyncio.gather`, except that the first failure cancels the other calls and waits for them.

    Plain gather leaves the siblings running; `asyncio.run` then cancels them at shutdown and
    prints whatever they raise there, after the one error line.
    """
    tasks = [asyncio.ensure_future(call) for call in calls]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def _paired(coro: Any) -> tuple[ChatResult, ChatResult]:
    """Adapt a bare chat call to the (value, cost) shape `_call` expects."""
    result = await coro
    return result, result

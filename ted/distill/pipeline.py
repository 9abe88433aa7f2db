"""The distillation loop, as in the paper: epochs of mini-batches over the training problems.

Per problem: rollouts ∥ teacher solution (asked once per run, ahead of need: `solutions.py`) →
structuring → extraction. A batch of B problems shares one library snapshot and runs concurrently;
its results (usage, then the teacher's operations) are applied in problem order, then compression
runs if the library is over budget. B=1 is exactly the paper's sequential loop.

After every batch the run's state is checkpointed atomically (`checkpoint.py`), so `resume=True`
continues at the next batch and ends with the same library as an uninterrupted run. Options and
seeds are `config.py`, the cost ledger `ledger.py`; progress goes to a `Reporter` (`progress.py`).
Every model call, and every teacher proposal with its fate, goes to the call log beside the output
(`ted.models.calllog`: the models are wrapped once here, the stages tag their calls).
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ted import prompts
from ted.distill import prime
from ted.distill.calls import gather_or_cancel, paired, share_limiters
from ted.distill.checkpoint import CheckpointWriter, RunState, checkpoint_path, problems_fingerprint
from ted.distill.compress import compress
from ted.distill.config import RunConfig, derive_seed
from ted.distill.extract import Extraction, apply_ops, extract
from ted.distill.ledger import Ledger
from ted.distill.progress import STAGE_ROLE, Reporter, Role, SilentReporter, Stage, Status
from ted.distill.rollouts import Rollout, grade, rollouts, student_messages
from ted.distill.solutions import TeacherSolutions, solutions_ahead
from ted.distill.structure import structure
from ted.distill.teacher_solution import teacher_solution
from ted.errors import ConfigError
from ted.files import remove_stale_temps
from ted.limits import MAX_ITEMS
from ted.library import CurvePoint, Library, ModelInfo, Rejection, SourceInfo, clean_text
from ted.models.base import ChatModel, ChatResult, SamplingParams
from ted.models.calllog import CallLog, Recorded, calls_path, context
from ted.system_probe import ensure_system_reaches
from ted.tasks.base import Problem, Task
from ted.tokens import TokenCounter, get_counter

@dataclass
class ProblemResult:
    problem: Problem
    rollouts: list[Rollout]
    extraction: Extraction
    structured: bool
    skipped: bool = False  # --skip-solved: every attempt and the teacher were right, nothing asked


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
        self.calls = CallLog(calls_path(config.out))
        self.student: ChatModel = Recorded(student, self.calls, "student")  # type: ignore[assignment]
        self.teacher: ChatModel = Recorded(teacher, self.calls, "teacher")  # type: ignore[assignment]
        self.task = task
        self.problems = problems
        self.val_problems = val_problems or []
        self.reporter: Reporter = reporter or SilentReporter()
        self.counter = counter or get_counter(config.tokenizer, trusted=True)  # the user's own --tokenizer
        self.source = source or SourceInfo(dataset=config.data, split=config.split)
        self.ledger = Ledger(prices=config.price)
        self.status = Status(epochs=config.epochs, total=config.epochs * len(problems), solutions_total=0 if config.fresh_teacher_solutions else len(problems))
        self.checkpoint = checkpoint_path(config.out)
        self.writer = CheckpointWriter(self.checkpoint)
        self.data = problems_fingerprint(problems)  # once: hashing at every checkpoint cost O(problems) per batch
        config.check_budget(self.counter)

    # ------------------------------------------------------------------ the loop
    async def run(self, resume: bool = False, state: RunState | None = None) -> Library:
        """Distill and return the final library (the best one with keep_best and a validation split).

        Starts from `state` when given (a checkpoint already read: `ted.distill` reads it once, to
        refuse a wrong one before any call), else from the checkpoint with `resume`, else afresh."""
        with prompts.using(self.prompt_set):  # before any task starts: tasks copy the prompt set they are created under
            remove_stale_temps(self.checkpoint, Path(self.config.out))  # a killed run may have left half-written temp files
            resumed = state is not None or (resume and self.checkpoint.exists())
            if state is None:
                state = self.load_checkpoint() if resumed else self.new_state()
            self.calls.open(resume_at=state.calls_offset if resumed else None)  # the calls after the checkpoint are made again
            share_limiters((self.student, self.teacher), self.config.concurrency)
            self.counter.prefetch()  # the first batch's calls are about to go out: the tokenizer loads while they are in flight
            c = self.config
            self.solutions = TeacherSolutions(self.solve, state.solutions, state.teacher_chains, c.fresh_teacher_solutions, ahead=solutions_ahead(c.concurrency, c.batch_size))
            try:
                with context(stage="probe"):
                    await ensure_system_reaches(self.student)  # before the first paid call: the library must reach the student
                self.solutions.start([p for batch in self.batches(state.epoch)[state.batch :] for p in batch] + self.problems)
                return await self.loop(state, started=time.perf_counter() - state.wall_s)
            finally:
                await self.solutions.stop()
                await self.writer.wait()
                self.calls.close()

    async def loop(self, state: RunState, started: float) -> Library:
        await self.score_baseline(state)
        while state.epoch < self.config.epochs:
            batches = self.batches(state.epoch)
            if state.batch == 0:
                state.rollouts_correct = state.rollouts_total = 0
            while state.batch < len(batches):
                self.show(state, batches)
                with context(epoch=state.epoch + 1, batch=state.batch + 1):  # the batch's calls and proposals say where they belong
                    await self.run_batch(state, batches[state.batch])
                state.batch += 1
                await self.save(state, started)
            await self.end_epoch(state)
            state.epoch, state.batch = state.epoch + 1, 0
            await self.save(state, started)
        return self.finish(state, started)

    def batches(self, epoch: int) -> list[list[Problem]]:
        order = list(self.problems)
        random.Random(f"{self.config.seed}:epoch:{epoch}").shuffle(order)
        size = self.config.batch_size
        return [order[i : i + size] for i in range(0, len(order), size)]

    async def run_batch(self, state: RunState, batch: list[Problem]) -> None:
        # The batch reads only the snapshot's items (prompts, ids, duplicate checks). Copying the
        # ever-growing history as well made every batch cost O(steps so far).
        items = [item.model_copy(deep=True) for item in state.library.items]
        snapshot = state.library.model_copy(update={"items": items, "history": []})
        primes = self.start_primes(snapshot)
        try:
            results = await gather_or_cancel(*(self.process(p, snapshot, state.epoch, state.step + i + 1, primes) for i, p in enumerate(batch)))
        finally:
            await primes.close()
        for result in results:  # problem order, not completion order
            state.step += 1
            self.apply(state, result, snapshot)
        params = self._params("teacher", state.epoch, state.step, "compress", json_out=True)
        c = self.config
        with context(step=state.step):
            report = await self._call(
                "compress", lambda: compress(state.library, c.compression, self.counter, state.step, c.seed, teacher=self.teacher, params=params)
            )
        if report.changed:
            state.log.append(report.message(state.step))
            self.reporter.log(state.log[-1])

    def start_primes(self, snapshot: Library) -> prime.Primes:
        """The batch's shared prompt heads, sent ahead of its requests where the servers reuse them (`prime.py`)."""
        c = self.config
        return prime.start(
            self.student, self.teacher, self.ledger.record, prime.student_head(snapshot, self.task),
            [("structure", prime.structure_head()), ("extract", prime.extract_head(snapshot, self.counter, c.max_ops))],
        )  # fmt: skip

    async def process(
        self, problem: Problem, snapshot: Library, epoch: int, step: int | None = None, primes: prime.Primes | None = None
    ) -> ProblemResult:
        """Rollouts ∥ teacher solution → structuring → extraction, against one snapshot (`step`: the
        problem's step once applied, for the call log; `primes`: the batch's, each stage waits for its own)."""
        with context(problem=problem.id, epoch=epoch + 1, step=step):
            return await self._process(problem, snapshot, epoch, primes or prime.Primes())

    async def _process(self, problem: Problem, snapshot: Library, epoch: int, primes: prime.Primes) -> ProblemResult:
        key = (epoch, problem.id)
        student, teacher = self.student, self.teacher
        sample = self._params("student", *key, n=self.config.rollouts)

        async def attempts() -> tuple[list[Rollout], ChatResult]:
            await primes.ready("rollouts")
            return await rollouts(student, snapshot, problem, self.task, sample)

        student_runs, teacher_run = await gather_or_cancel(
            self._call("rollouts", attempts),
            self.solutions.get(problem, epoch),
        )
        if self.config.skip_solved and teacher_run.correct and all(r.correct for r in student_runs):
            self.status.skip("structure", "extract")
            return ProblemResult(problem, student_runs, Extraction(), structured=True, skipped=True)
        params = self._params("teacher", *key, "structure", json_out=True)
        known = self.solutions.chain(problem)
        await primes.ready("structure")
        chains = await self._call("structure", lambda: structure(teacher, problem, student_runs, teacher_run, params, known))
        self.solutions.keep_chain(problem, chains)
        params = self._params("teacher", *key, "extract", json_out=True)
        await primes.ready("extract")
        extraction = await self._call(
            "extract",
            lambda: extract(teacher, snapshot, problem, student_runs, teacher_run, chains, params, self.counter, max_ops=self.config.max_ops),
        )
        return ProblemResult(problem, student_runs, extraction, chains.parsed)

    def apply(self, state: RunState, result: ProblemResult, snapshot: Library) -> None:
        """One problem's results on the live library: usage, then the teacher's operations; tallies and log."""
        where = f"step {state.step} {result.problem.id}"
        extraction = result.extraction
        state.library.record_usage(r.cited for r in result.rollouts)
        state.library.record_seen(snapshot.ids(), len(result.rollouts))
        state.library.record_verdicts(extraction.verdicts)
        on_record = {"problem": result.problem.id, "epoch": state.epoch + 1, "step": state.step}
        applied = 0
        for op in extraction.ops:  # one at a time, so the one a batch sibling already added is known
            done = apply_ops(state.library, [op], state.step, result.problem.id)
            touched = done.touched
            applied += len(touched)
            if done.full:
                rejection, detail = Rejection.LIBRARY_FULL, f"the library holds {MAX_ITEMS} items, the most a library file may"
                state.log.append(f"{where}: rejected {op.op} ({detail}): {clean_text(op.text)[:120]}")
            elif not touched:
                rejection, detail = Rejection.DUPLICATE_IN_BATCH, "another problem of the batch added the same lesson first"
            if not touched:
                state.extraction.reject(rejection)
            self.calls.write(
                "proposal", stage="extract", **on_record, op=op.op, id=op.id, text=op.text, teacher_reason=op.reason,
                applied_as=touched[0] if touched else None, rejection=None if touched else rejection.value,
                detail=None if touched else detail,
            )  # fmt: skip
        state.extraction.accepted += applied
        for rejected in extraction.rejected:
            state.extraction.reject(rejected.reason)
            state.log.append(f"{where}: rejected {rejected.op.op} ({rejected.detail}): {clean_text(rejected.op.text)[:120]}")
            self.calls.write(
                "proposal", stage="extract", **on_record, op=rejected.op.op, id=rejected.op.id, text=rejected.op.text,
                teacher_reason=rejected.op.reason, applied_as=None, rejection=rejected.reason.value, detail=rejected.detail,
            )  # fmt: skip
        self.calls.write(
            "extraction", stage="extract", **on_record, skipped=result.skipped, structured=result.structured, parsed=extraction.parsed,
            diagnosis=extraction.diagnosis, proposed=len(extraction.ops) + len(extraction.rejected), accepted=applied,
            asked_again=extraction.asked_again, reply=None if extraction.parsed else extraction.reply,
        )  # fmt: skip
        if result.skipped:
            state.log.append(f"{where}: all attempts and the teacher correct; no extraction (--skip-solved)")
        if not result.structured:
            state.log.append(f"{where}: structuring reply unusable; raw traces used")
        if not result.extraction.parsed:
            state.extraction.reject(Rejection.UNUSABLE)  # counted, so a run of nothing but these says so at the end
            state.log.append(f"{where}: extraction reply unusable; no operations")
        state.rollouts_correct += sum(r.correct for r in result.rollouts)
        state.rollouts_total += len(result.rollouts)

    async def end_epoch(self, state: RunState) -> None:
        """A learning-curve point; with a validation split, its score and the best library so far."""
        total = state.rollouts_total
        point = CurvePoint(
            epoch=state.epoch + 1,
            step=state.step,
            items=len(state.library.items),
            tokens=state.library.tokens(self.counter),
            train_accuracy=round(state.rollouts_correct / total, 4) if total else None,
        )
        if self.val_problems:
            with context(epoch=state.epoch + 1):
                accuracy = await self.score(state.library, self.val_problems, "val")
            point.val_accuracy = round(accuracy, 4)
            self.reporter.log(f"epoch {state.epoch + 1}: validation accuracy {accuracy:.3f}")
            if state.best_score is None or accuracy > state.best_score:
                state.best_score, state.best = accuracy, state.library.copy_deep()
        state.library.metrics.curve.append(point)
        if state.best is not None:
            state.best.metrics.curve = list(state.library.metrics.curve)

    # ------------------------------------------------------------------ scoring
    async def score_baseline(self, state: RunState) -> None:
        metrics = state.library.metrics
        metrics.task = self.task.name
        if self.val_problems and metrics.baseline is None:
            metrics.baseline = await self.score(None, self.val_problems, "val")
            self.reporter.log(f"validation baseline (no library): {metrics.baseline:.3f}")

    async def score(self, library: Library | None, problems: list[Problem], tag: str) -> float:
        """Accuracy of one greedy answer per problem: the learning-curve point."""

        async def one(problem: Problem) -> bool:
            params = SamplingParams(n=1, temperature=0.0, max_tokens=self.config.max_tokens, seed=derive_seed(self.config.seed, tag))
            with context(problem=problem.id, with_library=library is not None):
                result = await self._call("validate", lambda: paired(self.student.chat(student_messages(library, problem, self.task), params)))
            return grade(result.text, problem, self.task, []).correct

        outcomes = await gather_or_cancel(*(one(p) for p in problems))
        return sum(outcomes) / len(outcomes)

    def finish(self, state: RunState, started: float) -> Library:
        final = state.best if (self.config.keep_best and state.best is not None) else state.library
        self.ledger.write_into(final, time.perf_counter() - started)
        if self.val_problems:
            final.metrics.with_library = state.best_score if final is state.best else final.metrics.curve[-1].val_accuracy
        final.metrics.curve = state.library.metrics.curve
        final.metrics.extraction = state.extraction
        final.metrics.baseline, final.metrics.task = state.library.metrics.baseline, self.task.name
        return final

    # ------------------------------------------------------------------ state
    def new_state(self) -> RunState:
        library = self.config.new_library(
            ModelInfo(model=self.student.model, backend=self.student.backend),
            ModelInfo(model=self.teacher.model, backend=self.teacher.backend),
            self.source,
            samples=len(self.problems),
            tokenizer=self.counter.name,
        )
        return RunState(fingerprint=self.config.fingerprint(), config=self.config.recorded(), data=self.data, library=library)

    def load_checkpoint(self) -> RunState:
        """The saved state, if it was written by these options over these problems (else one-line ConfigError)."""
        state = RunState.load(self.checkpoint, self.config, self.data, len(self.problems))
        state.config = self.config.recorded()
        self.ledger = Ledger(roles=state.library.cost.roles, prices=self.config.price)
        return state

    async def save(self, state: RunState, started: float) -> None:
        state.wall_s = time.perf_counter() - started
        state.calls_offset = self.calls.offset()  # no await until the state is serialised: the log and the state agree
        self.ledger.write_into(state.library, state.wall_s)
        await self.writer.save(state)

    # ------------------------------------------------------------------ calls and progress
    async def solve(self, problem: Problem, epoch: int) -> Rollout:
        """The teacher solves `problem` on its own (no library)."""
        params = self._params("teacher", epoch, problem.id, "solve")
        with context(problem=problem.id, epoch=epoch + 1):
            return await self._call("solve", lambda: teacher_solution(self.teacher, problem, self.task, params))

    async def _call(self, stage: Stage, make: Callable[[], Awaitable[tuple[Any, ChatResult]]]) -> Any:
        """Await one stage call, keeping the progress counts and the ledger (under the stage's role).

        The call is made here (`make()`), not by the caller: a call cancelled before it started
        (Ctrl-C, a sibling's failure) then leaves no coroutine that was never awaited."""
        s = self.status
        s.in_flight += 1
        self.reporter.update(s)
        try:
            with context(stage=stage):
                value, result = await make()
        except BaseException:
            self.ledger.failure(STAGE_ROLE[stage])
            raise
        finally:
            s.in_flight -= 1
        self.ledger.record(STAGE_ROLE[stage], result)
        s.call_done(stage)
        s.cut_off = self.ledger.roles["student"].truncated
        s.solutions = len(self.solutions.known)
        self.reporter.update(s)
        return value

    def _params(self, role: Role, *parts: object, n: int = 1, json_out: bool = False) -> SamplingParams:
        c = self.config
        temperature = c.temperature if role == "student" else c.teacher_temperature
        return SamplingParams(n=n, temperature=temperature, max_tokens=c.max_tokens_for(role, json_out), seed=derive_seed(c.seed, role, *parts))

    def show(self, state: RunState, batches: list[list[Problem]]) -> None:
        s = self.status
        s.epoch, s.batches, s.batch = state.epoch + 1, len(batches), min(state.batch + 1, len(batches))
        s.done = state.epoch * len(self.problems) + sum(len(b) for b in batches[: state.batch])
        s.rollouts_correct, s.rollouts_total = state.rollouts_correct, state.rollouts_total
        s.items, s.tokens = len(state.library.items), state.library.tokens(self.counter)
        size = len(batches[state.batch]) if state.batch < len(batches) else 0
        s.start_batch(size, per_epoch_solutions=self.config.fresh_teacher_solutions)
        s.solutions = len(self.solutions.known)
        self.reporter.update(s)

"""Run a reproduction: the plan's steps in order, each checkpointed, then the report (and a push).

The orchestrator owns no model code: a step is a unit from `units`, its result goes into the state
file when it finishes, and a step that is done is never run again. Progress goes to a `Display`
(which step, how many remain, the overall ETA from the measured pace against the estimate).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from contextlib import AbstractContextManager
from typing import Any, Protocol

from ted.distill.progress import Reporter
from ted.files import atomic_write
from ted.library import Library
from ted.models.calllog import calls_path
from ted.reproduce import report, units
from ted.reproduce.estimate import Estimator, StepEstimate
from ted.reproduce.plan import BASELINE, PLACEBO, ReproduceConfig, RunDir, Step, Tracker, arms, controls, plan


class Display(Protocol):
    def step(self, index: int, total: int, step: Step, eta_s: float | None) -> None: ...

    def log(self, message: str) -> None: ...

    def reporter(self) -> AbstractContextManager[Reporter]:
        """Where a distillation's progress goes while it runs."""
        ...


def measured_estimator(config: ReproduceConfig) -> Estimator:
    """The cost model with what can be measured offline: question lengths and sizes of local evaluation copies."""
    from ted.tokens import get_counter

    sizes, lengths = {}, []
    counter = get_counter()
    for bench in config.eval_data:
        problems = units.load_eval_problems(config, bench, config.eval_limit)
        sizes[bench] = len(problems)
        lengths += [counter.count(p.question) + sum(counter.count(o) for o in p.options or []) for p in problems]
    if lengths:
        return Estimator(config, question_tokens=round(sum(lengths) / len(lengths)), eval_sizes=sizes)
    return Estimator(config)


def _work(estimate: StepEstimate) -> int:
    """A step's size for the ETA: its estimated calls (a split counts as one)."""
    return max(1, sum(cost.calls for cost in estimate.roles.values()))


class Reproduction:
    def __init__(self, config: ReproduceConfig, command: list[str]) -> None:
        self.config = config
        self.dir = RunDir(config.out)
        self.steps = plan(config)
        self.tracker = Tracker(self.dir, config, self.steps, command)
        self.estimator = measured_estimator(config)
        self.arms = {arm.name: arm for arm in arms(config)}
        self.evaluator = units.Evaluator(config, units.model_args_for(config.student, config.concurrency))

    def estimates(self) -> list[StepEstimate]:
        return self.estimator.steps(self.steps)

    def run_step(self, step: Step, display: Display) -> dict[str, Any]:
        if step.kind == "split":
            return units.split(self.config, self.dir)
        if step.kind == "distill":
            with display.reporter() as reporter:
                return units.distill(self.config, self.dir, self.arms[step.arm or ""], reporter, display.log)
        if step.kind == "attribute":
            return units.attribute(self.config, self.dir, step.arm or "")
        library = None if step.arm in controls(self.config) else self.dir.library(step.arm or "")
        target = self.dir.eval(step.benchmark or "", step.arm or "")
        result = self.evaluator.arm(step.benchmark or "", library, calls=calls_path(target), placebo=step.arm == PLACEBO)
        path = atomic_write(target, json.dumps(result, indent=1) + "\n")
        return {"file": str(path.relative_to(self.dir.root)), **{k: result[k] for k in ("n", "repeats", "calls", "wall_s")}}

    def run(self, resume: bool, display: Display, html: bool = True) -> list[Path]:
        """Every step that is not done, in order; then the report, and the push if asked."""
        self.tracker.open(resume)
        work = {e.step: _work(e) for e in self.estimates()}
        done_work = done_s = 0.0  # estimated calls and seconds of the steps finished by this process: the pace
        for index, step in enumerate(self.steps, 1):
            if self.tracker.state.done(step):
                continue
            remaining = sum(work[s.id] for s in self.tracker.pending())
            display.step(index, len(self.steps), step, remaining * done_s / done_work if done_work else None)
            started = time.perf_counter()
            self.tracker.start(step)
            self.tracker.finish(step, self.run_step(step, display))
            done_work += work[step.id]
            done_s += time.perf_counter() - started
        data = report.build(self.config, self.dir, self.tracker, self.steps, self.estimator)
        written = report.write(data, self.dir, html=html)
        display.log(f"wrote {', '.join(str(p) for p in written)}")
        if self.config.push:
            display.log(self.push(data))
        return written

    def push(self, data: dict[str, Any]) -> str:
        """Publish the best library with its measured scores in its metrics (as `ted eval --record`
        stores them, so the card shows them), the report attached. A refusal (an empty library, a
        bad token) is one line that names the library and says the report is written."""
        from ted.errors import TedError
        from ted.hub import push_library

        name = data["best"]
        best = Library.load(self.dir.library(name))
        rows = {row["name"]: row for row in data["arms"]}
        base, row = rows[BASELINE], rows[name]
        best.metrics.task = data["lm_task"]
        best.metrics.baseline = base["acc"]
        best.metrics.with_library = row["acc"]
        extra = best.metrics.model_extra if best.metrics.model_extra is not None else {}
        extra.update(
            samples=row["n"], reproduce=f"report/{self.dir.report_md.name}",
            stats={
                "task": data["lm_task"], "n": row["n"], "repeats": row["repeats"],
                "baseline": {"acc": base["acc"], "ci95": base["ci95"]}, "with_library": {"acc": row["acc"], "ci95": row["ci95"]},
                "delta": row["delta"], "delta_ci95": row["delta_ci95"], "p_value": row["p_value"],
            },
        )  # fmt: skip
        files = [self.dir.report_md, self.dir.report_json] + sorted(self.dir.root.glob("*.png"))
        try:
            result = push_library(best, self.config.push or "", attachments={f"report/{p.name}": p.read_bytes() for p in files})
        except TedError as err:
            raise type(err)(f"--push {self.config.push}: the best library ({name}) was not published, the report is in {self.dir.report_md}: {err}") from None
        return f"pushed {name} to {result.repo_id}@{result.version} (commit {result.commit[:10]}): {result.url}"

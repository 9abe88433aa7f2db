"""The units of a reproduction: build the training split, distil one library, evaluate one arm.

Each unit reads its inputs from the run folder and returns a small JSON-able result that the
state file keeps; what it writes goes to the paths `RunDir` names. The distillation is
`ted.distill`, the function behind `ted distill` (it checkpoints per batch, so a killed unit
continues with `resume`); the evaluation is lm-eval's `simple_evaluate` on the ted_* tasks,
one arm at a time, so the baseline is scored once however many libraries there are.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

from ted.distill.config import RunConfig
from ted.distill.options import OPTIONS
from ted.distill.progress import Reporter
from ted.errors import ConfigError
from ted.files import atomic_write
from ted.library import Library
from ted.reproduce.options import DISTILL_OPTIONS
from ted.reproduce.plan import Arm, ReproduceConfig, RunDir
from ted.tasks import BenchmarkTask, Problem, get_task
from ted.tasks import registry, rg


# --------------------------------------------------------------------------- split
def eval_source(config: ReproduceConfig, benchmark: str) -> str | None:
    """Where `benchmark`'s evaluation problems come from: the local copy given with --eval-data (None: the
    pinned Hub dataset); for rg:NAME, a spec of its test problems (see `ted.tasks.rg.benchmark_tests`)."""
    given = config.eval_data.get(benchmark)
    if rg.is_spec(benchmark):
        return str(rg.benchmark_tests(benchmark, given, registry.benchmark(benchmark).eval_size))
    return given


def load_eval_problems(config: ReproduceConfig, benchmark: str, limit: int | None = None) -> list[Problem]:
    """The evaluation split of `benchmark` (see `eval_source`)."""
    import datasets

    datasets.disable_progress_bars()
    return get_task(benchmark).load(split=registry.benchmark(benchmark).split, data_files=eval_source(config, benchmark), limit=limit)


def split(config: ReproduceConfig, run_dir: RunDir) -> dict[str, Any]:
    """`ted data sample`: `samples` problems of the pool that share no id, text or image with any evaluated benchmark.

    Every problem of each evaluation split is excluded, not only the `--eval-limit` first ones.
    """
    from ted.tasks.splits import Source, read_source, sample_disjoint, write_jsonl

    pool_task = get_task(config.training_task)
    default = rg.training_pool(config.training_task, config.samples, config.seed) if rg.is_spec(config.training_task) else None
    pool_ref = config.train_from or default or getattr(pool_task, "dataset", None)
    if not pool_ref:
        raise ConfigError(f"--train-task {config.training_task} has no default pool: give --train-from FILE")
    pool = read_source(pool_ref, task=config.training_task if isinstance(pool_task, BenchmarkTask) else None)
    evals = [Source(load_eval_problems(config, bench), getattr(get_task(bench), "dataset", None)) for bench in config.benchmarks]
    chosen = sample_disjoint(pool, evals, config.samples, config.seed)
    write_jsonl(chosen.problems, run_dir.train)
    return {
        "pool": pool_ref, "read": chosen.read, "eligible": chosen.eligible, "excluded": chosen.excluded,
        "excluded_by": dict(sorted(chosen.by.items())), "duplicates": chosen.duplicates, "unreadable": chosen.unreadable,
        "samples": len(chosen.problems), "file": run_dir.train.name,
    }  # fmt: skip


# --------------------------------------------------------------------------- distill
def distill_run(config: ReproduceConfig, run_dir: RunDir, arm: Arm) -> RunConfig:
    """The options of one arm's distillation."""
    run = config.run_config(arm, str(run_dir.train), str(run_dir.library(arm.name)))
    return run.model_copy(update={"name": f"{run_dir.root.name}-{arm.name}"})


def distill_args(config: ReproduceConfig, run_dir: RunDir, arm: Arm) -> list[str]:
    """The same run as a `ted distill` command line (printed in the report, to rerun it by hand)."""
    run = distill_run(config, run_dir, arm)
    names = ("data", "task", "student", "teacher", "out", *(option.name for option in DISTILL_OPTIONS), "compression", "name")
    args = ["distill", *(word for name in names for word in OPTIONS[name].argv(getattr(run, name)))]
    args += OPTIONS["price"].argv([f"{role}={per_in}/{per_out}" for role, (per_in, per_out) in sorted(run.price.items())])
    return args + OPTIONS["api_key_env"].argv(config.api_key_env) + OPTIONS["teacher_api_key_env"].argv(config.teacher_api_key_env)


def distill(config: ReproduceConfig, run_dir: RunDir, arm: Arm, reporter: Reporter, say: Callable[[str], None]) -> dict[str, Any]:
    """`ted.distill` for one arm, with the options `distill_args` prints; a checkpoint left by a
    killed attempt is resumed, a finished library kept."""
    from ted.distill.api import distill as run_distill
    from ted.distill.checkpoint import checkpoint_path

    out = run_dir.library(arm.name)
    if not (out.exists() and not checkpoint_path(out).exists()):
        run = distill_run(config, run_dir, arm)
        library = run_distill(
            run.data, **run.model_dump(exclude={"data"}), resume=True,  # resume starts afresh when there is no checkpoint
            api_key_env=config.api_key_env, teacher_api_key_env=config.teacher_api_key_env, reporter=reporter, say=say,
        )  # fmt: skip
    else:
        library = Library.load(out)
    roles = {role: cost.model_dump(mode="json") for role, cost in library.cost.roles.items()}
    return {
        "library": str(out.relative_to(run_dir.root)),
        "items": len(library.items),
        "tokens": library.tokens(),
        "roles": roles,
        "wall_s": library.cost.wall_s,
        "usd": library.cost.usd,
        "curve": [point.model_dump(mode="json") for point in library.metrics.curve],
    }


# --------------------------------------------------------------------------- eval
class Evaluator:
    """One lm-eval model for the whole run; `arm` scores one library (or none) on one benchmark."""

    def __init__(self, config: ReproduceConfig, model_args: str) -> None:
        self.config, self.model_args = config, model_args
        self._lm: Any = None

    def _model(self) -> Any:
        if self._lm is None:
            try:
                from lm_eval.api.registry import get_model
            except ImportError:
                raise ConfigError("ted reproduce evaluates through lm-eval: pip install 'ted-distill[eval]'") from None
            logging.getLogger("lm_eval").setLevel(logging.ERROR)
            try:
                self._lm = get_model("local-chat-completions").create_from_arg_string(self.model_args, {"batch_size": 1})
            except (ValueError, KeyError) as err:
                raise ConfigError(f"cannot create the lm-eval model from {self.model_args!r}: {err}") from None
        return self._lm

    def gen_kwargs(self) -> str | None:
        return f"max_gen_toks={self.config.eval_max_tokens}" if self.config.eval_max_tokens else None

    def arm(self, benchmark: str, library: Path | None, calls: Path | None = None, placebo: bool = False) -> dict[str, Any]:
        """Per-document correctness for each repeat, plus the counts the report needs; every request into `calls` (written afresh).

        Scored by `ted eval`'s runner (`ted.evaluate.score_run`): every reply graded, mean@k as `ted.stats` defines it."""
        import datasets

        from ted.evaluate import eval_tasks_dir, log_samples, score_run
        from ted.models.calllog import CallLog

        datasets.disable_progress_bars()
        lm_task = registry.benchmark(benchmark).lm_task
        repeats = self.config.repeats
        started = time.perf_counter()
        with CallLog(calls).open() if calls is not None else contextlib.nullcontext() as log:
            scores, results = score_run(
                self._model(), lm_task, eval_tasks_dir(), eval_metadata(self.config, benchmark, library, placebo),
                repeats=repeats, limit=self.config.eval_limit, gen_kwargs=self.gen_kwargs(), apply_chat_template=True,
            )  # fmt: skip
            if log is not None:
                log_samples(log, results["samples"][lm_task], "placebo" if placebo else "baseline" if library is None else "with_library")
        ids = list(scores.verdicts)
        n = len(ids)
        return {
            "task": lm_task,
            "library": str(library) if library else None,
            "placebo": placebo,
            "n": n,
            "repeats": repeats,
            "correct": [[scores.verdicts[i][r] for i in ids] for r in range(repeats)],  # one list per repeat, as the report reads them
            "ids": ids,
            "no_answer": scores.no_answer,
            "calls": n * self.config.repeats,
            "wall_s": round(time.perf_counter() - started, 3),
        }


def eval_metadata(config: ReproduceConfig, benchmark: str, library: Path | None, placebo: bool = False) -> dict[str, Any]:
    """lm-eval's `--metadata` for one arm: the library (empty: the baseline or the placebo), a local copy of
    the data (for rg:NAME, the generator, split, size and seed of its test problems)."""
    metadata: dict[str, Any] = {"library": str(library) if library else ""}
    if placebo:
        metadata["placebo"] = True
    source = eval_source(config, benchmark)
    if rg.is_spec(benchmark):
        metadata |= rg.lm_eval_metadata(rg.parse_spec(str(source), split="test"))
    elif source:
        metadata["data_files"] = source
    if config.system_in_user:
        metadata["system_in_user"] = True
    return metadata


def model_args_for(student: str, concurrency: int) -> str:
    """lm-eval's `--model_args` for the student's OpenAI-compatible endpoint."""
    from ted.models import parse_spec

    backend, model, base_url = parse_spec(student)
    if backend != "openai" or not base_url:
        raise ConfigError(
            f"--student {student}: ted reproduce evaluates through lm-eval's local-chat-completions, "
            "so the student must be an endpoint, openai:MODEL@BASE_URL"
        )
    return f"base_url={base_url.rstrip('/')}/chat/completions,model={model},num_concurrent={concurrency}"


# --------------------------------------------------------------------------- attribute
def attribution_problems(config: ReproduceConfig) -> list[Problem]:
    """`attribute` problems the lessons are measured on: for rg:NAME, its validation split (neither trained
    nor scored on); else the first of the main benchmark's evaluation problems."""
    if rg.is_spec(config.benchmark):
        return get_task(config.benchmark).load(data_files=f"{config.benchmark}?split=validation&n={config.attribute}&seed={config.seed}")
    return load_eval_problems(config, config.benchmark, config.attribute)


def attribute(config: ReproduceConfig, run_dir: RunDir, arm: str) -> dict[str, Any]:
    """`ted attribute` of one arm's library: each lesson's effect stored in the library, the design beside it."""
    import asyncio

    from ted.attribution import attribute as measure, store
    from ted.models import SamplingParams, load_model

    path = run_dir.library(arm)
    library = Library.load(path)
    if not library.items:
        return {"library": str(path.relative_to(run_dir.root)), "effects": [], "note": "the library has no lesson"}
    problems = attribution_problems(config)
    student = load_model(config.student, api_key_env=config.api_key_env, max_concurrency=config.concurrency)
    student.system_in_user = config.system_in_user
    limit = config.eval_max_tokens or registry.benchmark(config.benchmark).max_gen_toks
    params = SamplingParams(temperature=0.0, max_tokens=limit, seed=config.seed)

    async def go() -> Any:
        try:
            return await measure(library, student, get_task(config.benchmark), problems, params, seed=config.seed)
        finally:
            await student.aclose()

    result = asyncio.run(go())
    store(library, result)
    library.save(path)
    target = atomic_write(run_dir.attribution(arm), json.dumps({**result.to_dict(), "design": result.design}, indent=1) + "\n")
    return {"library": str(path.relative_to(run_dir.root)), "file": str(target.relative_to(run_dir.root)), **result.to_dict()}


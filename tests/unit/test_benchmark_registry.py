"""The benchmark registry (`ted.tasks.registry`) against everything that repeats its facts: the task
classes, the lm-eval YAMLs, `ted reproduce`'s plan, split and help. A benchmark added in one place
and not the others fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ted.evaluate import eval_tasks_dir
from ted.reproduce import units
from ted.reproduce.plan import ReproduceConfig, RunDir
from ted.tasks import LM_EVAL_TASKS, TASKS, BenchmarkTask, get_task
from ted.tasks.registry import BENCHMARKS, MAIN_BENCHMARKS, pools_help


@pytest.mark.parametrize("name", BENCHMARKS)
def test_each_benchmark_is_a_task_with_its_lm_eval_task_and_split(name: str) -> None:
    bench = BENCHMARKS[name]
    task = TASKS[bench.name]
    assert issubclass(task, BenchmarkTask)
    assert task.lm_eval_tasks.get(bench.lm_task, "missing") == bench.split
    assert LM_EVAL_TASKS[bench.lm_task] == (bench.name, bench.split)


@pytest.mark.parametrize("name", BENCHMARKS)
def test_each_default_pool_is_a_task_that_can_read_it(name: str) -> None:
    pool = BENCHMARKS[name].pool
    assert pool in TASKS, f"{name}'s default pool {pool!r} is no ted task ({', '.join(TASKS)})"
    assert getattr(get_task(pool), "dataset", None)  # a default pool needs no --train-from


@pytest.mark.parametrize("name", BENCHMARKS)
def test_each_yaml_sets_the_registry_answer_limit(name: str) -> None:
    bench = BENCHMARKS[name]
    folder = eval_tasks_dir()
    limits = [re.search(r"^\s*max_gen_toks:\s*(\d+)", (folder / f).read_text(encoding="utf-8"), re.M) for f in (f"{bench.lm_task}.yaml", "_ted_template_yaml")]
    assert int(next(m for m in limits if m).group(1)) == bench.max_gen_toks


def test_reproduce_help_names_the_main_benchmarks_and_their_pools() -> None:
    import typer
    from typer.main import get_command

    from ted.commands import reproduce

    app = typer.Typer()
    reproduce.register(app)
    command = get_command(app)
    helps = {p.name: p.help or "" for p in command.params}
    assert helps["benchmark"].startswith(f"{', '.join(MAIN_BENCHMARKS[:-1])} or {MAIN_BENCHMARKS[-1]}:")
    assert f"(default: {pools_help()})" in helps["train_task"]


@pytest.mark.parametrize("name", MAIN_BENCHMARKS)
def test_reproduce_splits_each_main_benchmark_from_its_default_pool(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`ted reproduce --benchmark aime` once failed at its first step: its pool was named `dapo`."""
    read: list[tuple[str, str | None]] = []
    monkeypatch.setattr("ted.tasks.splits.read_source", lambda ref, task=None: read.append((ref, task)) or [])
    monkeypatch.setattr(units, "load_eval_problems", lambda config, bench, limit=None: [])

    class Sampled(Exception):
        """The split read its pool and the evaluation splits: what follows is tested elsewhere."""

    def sample(*_: object) -> None:
        raise Sampled

    monkeypatch.setattr("ted.tasks.splits.sample_disjoint", sample)
    config = ReproduceConfig(benchmark=name, student="openai:s@http://127.0.0.1:1/v1", teacher="t", out=str(tmp_path))
    with pytest.raises(Sampled):
        units.split(config, RunDir(tmp_path))
    assert read == [(get_task(BENCHMARKS[name].pool).dataset, BENCHMARKS[name].pool)]

"""One registry of the benchmarks ted evaluates and reproduces: each fact about one benchmark in
one entry, as plain values (the CLI reads it at start-up, before pydantic loads).

An entry names its ted task (loader and scorer), its lm-eval task (`eval_tasks/<lm_task>.yaml`)
and that task's split and answer limit, the paper's training pool (a ted task whose loader reads
it) and the size of the evaluation split on the Hub (for `ted reproduce --dry-run`).
`tests/unit/test_benchmark_registry.py` holds the task classes, the YAMLs, `ted reproduce` and
the CLI's help to it, so adding a benchmark is one entry here (plus its task and YAML).
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Benchmark:
    name: str  # the ted task that loads and scores it (`ted.tasks.get_task`)
    lm_task: str  # the lm-eval task that scores it
    split: str | None  # the split lm-eval scores (None: the dataset's only one)
    max_gen_toks: int  # the upstream answer limit, as the lm-eval task's YAML sets it
    pool: str  # the paper's training pool: the ted task whose loader reads it
    eval_size: int  # rows of the evaluation split on the Hub
    main: bool = True  # one of the paper's main tables (else only a transfer target)

    @property
    def eval_task(self) -> str:
        """What `ted eval --task` takes for it, and reports name it by: its lm-eval task, or rg:NAME."""
        return self.name if self.lm_task == REASONING_GYM.lm_task else self.lm_task


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark("mathvision", "ted_mathvision", "test", 16384, "mathverse", 3040),
        Benchmark("visualpuzzles", "ted_visualpuzzles", None, 4096, "mathverse", 1168),
        Benchmark("aime", "ted_aime25", "test", 32768, "dapo_math", 30),
        Benchmark("aime24", "ted_aime24", "train", 32768, "dapo_math", 30, main=False),
    )
}
LM_TASK_ALIASES: dict[str, str] = {"ted_aime": "ted_aime25"}
"""Older lm-eval task names, still accepted (each has its YAML, `include:`-ing the current one)."""
MAIN_BENCHMARKS: tuple[str, ...] = tuple(name for name, b in BENCHMARKS.items() if b.main)
# Any reasoning-gym generator `rg:NAME` (ted.tasks.rg) is a benchmark too: scored on its test split,
# trained on its train split (disjoint by seed and text). `name` and `pool` are filled in by `benchmark`.
REASONING_GYM = Benchmark("rg:NAME", "ted_rg", "test", 1024, "rg:NAME", 500, main=False)
BY_LM_TASK: dict[str, Benchmark] = {b.lm_task: b for b in BENCHMARKS.values()}


def benchmark(name: str) -> Benchmark:
    """The entry for `name`: one of BENCHMARKS or `rg:NAME` (no options: sizes come from the run's own)."""
    if name in BENCHMARKS:
        return BENCHMARKS[name]
    from ted.tasks import rg

    if rg.is_spec(name):
        if "?" in name:
            raise ValueError(f"{name}: a benchmark is rg:NAME alone; the test set's size and seed go in --eval-data {name}")
        spec = rg.parse_spec(name)
        return replace(REASONING_GYM, name=spec.task_name, pool=spec.task_name)
    raise ValueError(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)} or rg:NAME (a reasoning-gym generator)")


def pools_help() -> str:
    """The default training pools, as `--train-task`'s help says them."""
    pools: dict[str, list[str]] = {}
    for b in BENCHMARKS.values():
        if b.main:
            pools.setdefault(b.pool, []).append(b.name)
    return ", ".join(f"{pool} for {' and '.join(names)}" for pool, names in pools.items())

"""The plan experiments/local-rg.toml, applied: which tasks run (the screen's rules), each run's extra
options, and its size.

`size`: `ted reproduce --dry-run`'s calls and tokens for the planned runs, turned into hours of this
2-core machine at the local models' measured token rates.

The calls and tokens are the dry run's own cost model (ted/reproduce/estimate.py: ted distill's stage
table, the run's limits, the questions measured, `reply-tokens` per answer). The rates are the
local models' measured on a quiet 2-core machine in process (the local-models issue: 0.5B decodes
~25 tok/s and prefills ~104 tok/s, 1.5B ~13 and ~51), times the speed-up of llama-server's 4 slots
(~1.5x, docs/local-models.md). Prefix caching (the shared system prompt and library prefilled once)
is not credited, so prefill is over-counted. Shared cores slow everything by the share others take.

    python experiments/localrg.py size        # the primary's and the secondary's steps, and the total
    python experiments/localrg.py choose      # "PRIMARY SECONDARY" by the screen's rules (exit 1: not decided)
    python experiments/localrg.py options T   # the ted reproduce options task T adds to its config file
"""

from __future__ import annotations

import json
import shlex
import sys
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
RATES = {"student": (104.0, 25.0), "teacher": (51.0, 13.0)}  # (prefill, decode) tokens per second, one stream
SLOTS_SPEEDUP = 1.5
ENDPOINTS = {"student": "openai:qwen2.5-coder-0.5b-instruct@http://127.0.0.1:9/v1", "teacher": "openai:qwen2.5-coder-1.5b-instruct@http://127.0.0.1:9/v1"}


def config_of(path: Path, extra: dict) -> "object":
    """The ReproduceConfig a `ted reproduce --config path` run makes, with the plan's overrides."""
    from ted.reproduce.plan import ReproduceConfig

    table = {k.replace("-", "_"): v for k, v in tomllib.loads(path.read_text())["reproduce"].items()}
    table |= {k.replace("-", "_"): v for k, v in extra.items()}
    table["eval_data"] = {table["benchmark"]: table["eval_data"][0]}
    table.pop("reply_tokens_note", None)
    return ReproduceConfig(**table, **ENDPOINTS)


def steps_of(config: "object") -> list:
    from ted.reproduce.plan import plan as steps

    return steps(config)  # type: ignore[arg-type]


def seconds(roles: dict) -> float:
    return sum((cost.prompt_tokens / RATES[role][0] + cost.completion_tokens / RATES[role][1]) / SLOTS_SPEEDUP for role, cost in roles.items())


def plan() -> dict:
    return tomllib.loads((HERE / "local-rg.toml").read_text())


def choose(screen: Path = HERE / "screen") -> tuple[str, str]:
    """(primary, secondary) by the plan's rules from the screen's answers; SystemExit when the screen is
    incomplete or fewer than two tasks are included."""
    rules = plan()["screen"]
    low, high = 0.15, 0.80  # the inclusion interval the plan states
    accuracy = {}
    for name in rules["candidates"]:
        path = screen / f"{name}.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        if len(rows) < 50:
            raise SystemExit(f"screen incomplete: {name} has {len(rows)} of 50 answers; rerun the screen command in {HERE / 'local-rg.toml'}")
        accuracy[name] = sum(r["correct"] for r in rows) / len(rows)
    included = [n for n in rules["candidates"] if low <= accuracy[n] <= high]
    if len(included) < 2:
        raise SystemExit(f"only {included} within [{low}, {high}] ({accuracy}): no distillation; revise the plan")
    primary = "gsm_symbolic" if "gsm_symbolic" in included else min(included, key=lambda n: abs(accuracy[n] - 0.5))
    rest = [n for n in included if n != primary]
    secondary = min(rest, key=lambda n: (abs(accuracy[n] - 0.5), rules["candidates"].index(n)))
    return primary, secondary


def overrides(task: str, primary: str) -> dict:
    """What the primary task adds to its config file: 3 seeds, 200 problems of its test split, the
    attribution step (the plan's [primary_overrides], for whichever task the screen made primary)."""
    if task != primary:
        return {}
    extra = plan()["primary_overrides"]
    return {"seeds": extra["seeds"], "eval-data": [f"rg:{task}?split=test&n=200&seed=0"], "attribute": extra["attribute"]}


def options(task: str, primary: str) -> list[str]:
    """The same as `ted reproduce` flags."""
    extra = overrides(task, primary)
    return [arg for key, value in extra.items() for arg in (f"--{key}", str(value[0] if isinstance(value, list) else value))]


def size() -> None:
    from ted.reproduce.run import measured_estimator

    p = plan()
    primary, secondary = choose()
    total = 0.0
    for task in (t for t in p["tasks"] if t["name"] in (primary, secondary)):
        extra = overrides(task["name"], primary)
        config = config_of(HERE / task["config"], extra)
        estimator = measured_estimator(config)
        run_s = 0.0
        print(f"{task['name']}{' (primary)' if extra else ''}: {config.out}")
        for step in estimator.steps(steps_of(config)):
            s = seconds(step.roles)
            calls = sum(c.calls for c in step.roles.values())
            tokens = sum(c.prompt_tokens + c.completion_tokens for c in step.roles.values())
            print(f"  {step.step:<40} {calls:>6} calls {tokens:>10,} tokens {s / 60:>7.1f} min")
            run_s += s
        print(f"  {'run total':<40} {run_s / 3600:>34.2f} h")
        total += run_s
    print(f"plan total: {total / 3600:.2f} h on a quiet 2-core machine (rates {RATES}, ×{SLOTS_SPEEDUP} for 4 slots)")


def main() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else "size"
    if command == "size":
        size()
    elif command == "choose":
        print(*choose())
    elif command == "options":
        print(shlex.join(options(sys.argv[2], choose()[0])))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()

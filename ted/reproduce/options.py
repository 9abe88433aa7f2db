"""`ted reproduce`'s options, in one table: the run options it passes on to every distillation
(entries of `ted.distill.options`, worded for a reproduction) and its own.

`ReproduceConfig` (ted.reproduce.plan) takes its fields from these entries and `ted reproduce`
(ted.commands.reproduce) its flags, so a default or a bound is written once. A few flags are text
on the command line and structured in the configuration (`PARSED`: comma lists, `KEY=VALUE`
items): the configuration types those, and a test holds the command line's defaults, parsed,
to the configuration's. Plain dataclasses only: the CLI reads this at start-up.
"""

from __future__ import annotations

from ted.distill.options import OPTIONS, Option
from ted.limits import Strategy

STRATEGIES: tuple[Strategy, ...] = ("teacher", "truncate", "random", "none")  # the paper's ablation; `usage` when asked
MAX_SEEDS = 20

# The run options every arm's distillation takes from the reproduction (RunConfig's names).
DISTILL_OPTIONS: tuple[Option, ...] = (
    OPTIONS["epochs"].but(help="Passes over the training problems per library."),
    OPTIONS["rollouts"],
    OPTIONS["batch_size"],
    OPTIONS["budget_tokens"].but(help="Token budget of each library."),
    OPTIONS["max_items"].but(help="Item budget of each library."),
    OPTIONS["seed"].but(help="Seed of the split and of every distillation."),
    OPTIONS["max_tokens"].but(help="Max new tokens for rollouts and the teacher's solution."),
    OPTIONS["json_max_tokens"].but(help="Max new tokens for the teacher's JSON replies."),
    OPTIONS["temperature"],
    OPTIONS["teacher_temperature"],
    OPTIONS["concurrency"].but(help="Model calls in flight at once."),
    OPTIONS["system_in_user"].but(help="Fold the library into the first user turn (servers whose chat template drops system messages), in distillation and evaluation."),
)

_OWN: tuple[Option, ...] = (
    Option("benchmark", None, "mathvision, visualpuzzles or aime: the benchmark of the main table; or rg:NAME, a reasoning-gym generator (trained on its train split, scored on its test split).", str, required=True),
    Option("student", None, "Student endpoint: openai:MODEL@BASE_URL (lm-eval scores it there too).", str, required=True),
    Option("teacher", None, "Teacher model spec.", str, required=True),
    Option("out", None, "Run folder, e.g. runs/NAME: state, split, libraries, evaluations, report.", str, required=True),
    Option("train_from", None, "Training pool: a local copy in the pool's Hub schema, or a Hub id (default: the paper's pool).", str),
    Option("train_task", None, "Loader and scorer of the pool (default: mathverse for mathvision and visualpuzzles, dapo_math for aime). A benchmark rg:NAME trains on its own train split.", str),
    Option("samples", 100, "Training problems, disjoint from every evaluated benchmark.", ge=1),
    Option("strategies", ",".join(STRATEGIES), "Compression strategies, one library each: teacher,truncate,random,none (the paper's), usage (the paper's priority alone)."),
    Option("seeds", 1, "Distillations per strategy, each with a seed derived from --seed: the report gives every seed's Δ and Δ pooled over seeds.", ge=1, le=MAX_SEEDS),
    Option("seed_strategies", "", "Repeat only these strategies --seeds times (comma-separated; default: all)."),
    Option("placebo", True, "Also evaluate the placebo: the library's frame and citation instruction with no lesson."),
    Option("attribute", 0, "Then measure each lesson of the first library on N problems (ted attribute; rg:NAME: its validation split). 0: no.", ge=0, le=100_000),
    Option("teachers", "", "More teachers, comma-separated: every strategy is distilled with each (the teacher ablation)."),
    Option("transfer_to", "", "Also score every library on these benchmarks (comma-separated; aime24 or rg:NAME too)."),
    Option("repeats", 1, "Evaluate each arm this many times (sampling endpoints differ between repeats).", ge=1),
    Option("eval_data", [], "Local copy of an evaluated benchmark in its Hub schema: PATH (main) or BENCH=PATH; for rg:NAME the test problems as a spec, e.g. rg:NAME?n=300&seed=1.", repeated=True),
    Option("eval_limit", None, "Score only the first N problems of each benchmark.", int, ge=1),
    Option("eval_max_tokens", None, "Max new tokens per evaluation answer (default: the task's).", int, ge=1),
    Option("reply_tokens", None, "For the --dry-run estimate: your models' typical answer length in tokens (default: the assumption --dry-run prints; capped at each call's max tokens).", int, ge=1),
    Option("push", None, "Publish the best library to this Hub dataset, org/name, with its scores and the report.", str),
)

REPRODUCE: tuple[Option, ...] = (*_OWN, *DISTILL_OPTIONS, OPTIONS["price"], OPTIONS["api_key_env"], OPTIONS["teacher_api_key_env"])
"""Every field of `ReproduceConfig`, and a flag of `ted reproduce` each."""
PARSED = ("strategies", "seed_strategies", "teachers", "transfer_to", "eval_data", "price")
"""Text on the command line, lists or maps in the configuration (ted.commands.reproduce parses them)."""

"""The report of a reproduction: `report.json` (the data), `report.md` and `report.html` (the same tables), two PNGs.

Everything in it is computed from the state file and the files the steps wrote, so a resumed run
and an uninterrupted one give the same report except for timings (kept under `timings` and
`wall_s` keys). The paper's numbers sit in their own labelled column (`paper` in the JSON) and are
never mixed into ours.
"""

from __future__ import annotations

import json
import platform
import shlex
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import jinja2

from ted import __version__
from ted.files import atomic_write
from ted.redact import scrub_value
from ted.reproduce import paper
from ted.reproduce.estimate import Estimator
from ted.reproduce.plan import BASELINE, PLACEBO, Arm, ReproduceConfig, RunDir, Step, Tracker, arms, controls, distillation_seed
from ted.reproduce.units import distill_args
from ted.tasks import registry

REPORT_FORMAT = "ted-reproduce-report/1"
CURVE_PNG = "learning_curve"
ACCURACY_PNG = "accuracy"


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _model_name(spec: str) -> str:
    from ted.models import parse_spec

    return parse_spec(spec)[1]


def _by_problem(result: dict[str, Any]) -> list[list[float]]:
    """Per-problem scores, one per repeat (the evaluation file keeps them per repeat)."""
    return [list(scores) for scores in zip(*result["correct"])]


def _versus(control: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """The paired comparison of an arm with a control on the same problems: Δ, its bootstrap interval, McNemar's p."""
    from ted.stats import compare

    comparison = compare(_by_problem(control), _by_problem(result))
    return {"delta": round(comparison.delta, 4), "delta_ci95": [round(x, 4) for x in comparison.delta_ci95], "p_value": round(comparison.p_value, 6)}


def _row(
    benchmark: str, name: str, arm: Arm | None, result: dict[str, Any], base: dict[str, Any], placebo: dict[str, Any] | None,
    distilled: dict[str, Any] | None,
) -> dict[str, Any]:
    from ted.stats import compare

    comparison = compare(_by_problem(base), _by_problem(result))
    row: dict[str, Any] = {
        "name": name,
        "benchmark": benchmark,
        "strategy": arm.strategy if arm else None,
        "teacher": _model_name(arm.teacher) if arm else None,
        "seed": arm.seed if arm else None,
        "acc": round(comparison.with_library.acc, 4),
        "ci95": [round(x, 4) for x in comparison.with_library.ci95],
        **_versus(base, result),
        "vs_placebo": _versus(placebo, result) if placebo is not None and arm is not None else None,
        "n": result["n"],
        "repeats": result["repeats"],
        "no_answer": result["no_answer"],
        "eval_calls": result["calls"],
    }
    if name == BASELINE:
        row.update(delta=None, delta_ci95=None, p_value=None)
    if arm is None:
        row.update(items=0, library_tokens=result.get("library_tokens", 0))
    else:
        assert distilled is not None
        row.update(items=distilled["items"], library_tokens=distilled["tokens"], library=distilled["library"])
    return row


def _pooled(config: ReproduceConfig, rows: list[dict[str, Any]], results: dict[str, dict[str, Any]], bench: str) -> list[dict[str, Any]]:
    """Per arm distilled with several seeds: every seed's Δ, their spread, and Δ̄ with an interval over both
    the evaluation sample and the seed (`ted.stats.pooled`), against the baseline and the placebo."""
    from ted.stats import pooled

    groups: dict[str, list[Arm]] = {}
    for arm in arms(config):
        groups.setdefault(arm.group, []).append(arm)
    out = []
    for group, members in groups.items():
        if len(members) < 2:
            continue
        scores = [_by_problem(results[Step("eval", arm.name, bench).id]) for arm in members]
        by_name = {row["name"]: row for row in rows}
        entry: dict[str, Any] = {
            "group": group, "strategy": members[0].strategy, "arms": [arm.name for arm in members], "seeds": [arm.seed for arm in members],
            "acc": [by_name[arm.name]["acc"] for arm in members], "vs_placebo": None,
        }  # fmt: skip
        for control in controls(config):
            stats = pooled(_by_problem(results[Step("eval", control, bench).id]), scores).to_dict()
            entry[f"vs_{control}"] = {k: [round(x, 4) for x in v] if isinstance(v, list) else round(v, 6) if isinstance(v, float) else v for k, v in stats.items()}
        out.append(entry)
    return out


def _attribution(run_dir: RunDir, steps: list[Step], results: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The attribute step's result with each lesson's text (`ted.attribution`), or None without one."""
    step = next((s for s in steps if s.kind == "attribute"), None)
    if step is None:
        return None
    result = results[step.id]
    if not result.get("effects"):
        return {"arm": step.arm, "effects": [], "note": result.get("note", "")}
    from ted.library import Library

    texts = {item.id: item.text for item in Library.load(run_dir.root / result["library"]).items}
    effects = [{**effect, "text": texts.get(effect["id"], "")} for effect in result["effects"]]
    return {"arm": step.arm, "n": result["n"], "accuracy": result["accuracy"], "method": result["method"], "effects": effects}


def protocol(config: ReproduceConfig) -> list[str]:
    """How this run's loop and arms differ from the paper's, and what the controls are: printed in the report."""
    from ted.limits import MAX_ITEMS

    notes = [
        f"Batch size {config.batch_size}: the problems of a batch are solved against one library snapshot and their "
        + ("operations applied in problem order; B = 1 is the paper's sequential loop." if config.batch_size > 1 else "operations applied before the next problem, as the paper's sequential loop.")
    ]
    if config.placebo:
        notes.append("placebo: the student's system prompt with the library's frame and citation instruction (`Used: [E#]`) and no lesson; "
                     "Δ vs placebo measures the lessons alone, not having a system prompt or the trailer.")  # fmt: skip
    if "teacher" in config.strategies:
        notes.append("teacher: the compressing teacher also sees each lesson's age, the answers that saw it and the extraction verdicts on it; "
                     "the paper's teacher sees usage and s(e) = log(1 + usage) only" + (" (that is the `usage` arm)." if "usage" in config.strategies else "."))  # fmt: skip
    if "none" in config.strategies:
        notes.append(f"none: no compression, but additions stop at {MAX_ITEMS} items (the most a library file may hold); the paper's grows without limit.")
    if config.seeds > 1:
        which = ", ".join(config.seed_strategies or config.strategies)
        notes.append(f"{config.seeds} distillations per arm for {which}, seeds {', '.join(str(distillation_seed(config.seed, k)) for k in range(config.seeds))}; "
                     "the training split is the same for all.")  # fmt: skip
    return notes


def _cost(distilled: dict[str, Any]) -> dict[str, Any]:
    roles = distilled["roles"]
    return {
        role: {k: roles[role][k] for k in ("calls", "generations", "retries", "prompt_tokens", "completion_tokens", "usd", "wall_s")}
        for role in sorted(roles)
    }


def build(config: ReproduceConfig, run_dir: RunDir, tracker: Tracker, steps: list[Step], estimator: Estimator) -> dict[str, Any]:
    """report.json's content from the finished steps."""
    by_arm = {arm.name: arm for arm in arms(config)}
    results = {step.id: tracker.result(step) for step in steps}
    for step in steps:  # the per-document scores live in the evaluation's own file
        if step.kind == "eval":
            results[step.id] = {**json.loads((run_dir.root / results[step.id]["file"]).read_text(encoding="utf-8")), **results[step.id]}
    distilled = {name: results[Step("distill", name).id] for name in by_arm}
    tables: dict[str, list[dict[str, Any]]] = {}
    pooled: dict[str, list[dict[str, Any]]] = {}
    for bench in config.benchmarks:
        base = results[Step("eval", BASELINE, bench).id]
        placebo = results[Step("eval", PLACEBO, bench).id] if config.placebo else None
        rows = [_row(bench, name, None, results[Step("eval", name, bench).id], base, placebo, None) for name in controls(config)]
        rows += [_row(bench, name, arm, results[Step("eval", name, bench).id], base, placebo, distilled[name]) for name, arm in by_arm.items()]
        tables[bench] = rows
        pooled[bench] = _pooled(config, rows, results, bench)
    estimates = {e.step: e.to_dict(config.price) for e in estimator.steps(steps)}
    actual = {}
    for step in steps:
        result = results[step.id]
        if step.kind == "distill":
            actual[step.id] = {"roles": _cost(result), "usd": result["usd"]}
        elif step.kind in ("eval", "attribute"):
            actual[step.id] = {"roles": {"student": {"calls": result.get("calls", 0)}}}
    best = max(by_arm, key=lambda name: next(r["acc"] for r in tables[config.benchmark] if r["name"] == name))
    return {
        "format": REPORT_FORMAT,
        "name": run_dir.root.name,
        "benchmark": config.benchmark,
        "lm_task": registry.benchmark(config.benchmark).eval_task,
        "arms": tables[config.benchmark],
        "transfer": {bench: tables[bench] for bench in config.transfer_to},
        "pooled": pooled,
        "attribution": _attribution(run_dir, steps, results),
        "protocol": protocol(config),
        "best": best,
        "split": results[Step("split").id],
        "cost": {"estimate": estimates, "recorded": actual, "assumptions": estimator.assumptions()},
        "curves": {name: distilled[name]["curve"] for name in by_arm},
        "paper": {
            "source": paper.SOURCE,
            "note": "quoted from the paper, not measured by this run; the paper's students and teacher differ from this run's",
            "student": paper.STUDENTS.get(config.benchmark),
            "accuracy": {bench: paper.ACCURACY[bench] for bench in config.benchmarks if bench in paper.ACCURACY},
            "cost": paper.COST_NOTE,
        },
        "rerun": rerun_commands(config, run_dir, tracker),
        "config": config.recorded(),
        "versions": {
            "ted": __version__, "lm_eval": _version("lm_eval"), "python": platform.python_version(),
            "student": _model_name(config.student), "teachers": [_model_name(t) for t in config.all_teachers],
        },  # fmt: skip
        "timings": {
            "steps": {step.id: tracker.state.steps[step.id].wall_s for step in steps},
            "distill_wall_s": {name: distilled[name]["wall_s"] for name in by_arm},
            "eval_wall_s": {step.id: results[step.id]["wall_s"] for step in steps if step.kind == "eval"},
        },
    }


def rerun_commands(config: ReproduceConfig, run_dir: RunDir, tracker: Tracker) -> dict[str, Any]:
    """The command that made this run, and the commands of its steps to run them by hand."""
    from ted.evaluate import eval_tasks_dir
    from ted.reproduce.units import eval_metadata, model_args_for

    model_args = model_args_for(config.student, config.concurrency)
    evals = []
    for bench in config.benchmarks:
        for name in (*controls(config), *(arm.name for arm in arms(config))):
            meta = eval_metadata(config, bench, None if name in controls(config) else run_dir.library(name), placebo=name == PLACEBO)
            command = [
                "lm_eval", "--model", "local-chat-completions", "--model_args", model_args,
                "--include_path", str(eval_tasks_dir()), "--tasks", registry.benchmark(bench).lm_task,
                "--apply_chat_template", "--metadata", json.dumps(meta), "--log_samples", "--output_path", "results",
            ]  # fmt: skip
            if config.eval_limit:
                command += ["--limit", str(config.eval_limit)]
            if config.eval_max_tokens:
                command += ["--gen_kwargs", f"max_gen_toks={config.eval_max_tokens}"]
            evals.append(shlex.join(command))
    return {
        "reproduce": shlex.join(tracker.state.command),
        "distill": [shlex.join(["ted", *distill_args(config, run_dir, arm)]) for arm in arms(config)],
        "eval": evals,
    }


# --------------------------------------------------------------------------- writing
def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _ci(pair: list[float] | None) -> str:
    return "" if not pair else f" [{pair[0]:.3f}, {pair[1]:.3f}]"


def _delta(row: dict[str, Any]) -> str:
    return "–" if row["delta"] is None else f"{row['delta']:+.3f}{_ci(row['delta_ci95'])}"


def _usd(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}" if value >= 1 else f"{value:.4f}"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("ted", "templates"), undefined=jinja2.StrictUndefined, autoescape=False)
    env.filters.update(
        pct=_pct, ci=_ci, delta=_delta, p=lambda v: "–" if v is None else f"{v:.3g}", usd=_usd, signed=lambda v: f"{v:+.3f}",
        pooled=lambda g: "–" if not g else f"{g['delta']:+.3f}{_ci(g['ci95'])}",
    )  # fmt: skip
    return env


def write(report: dict[str, Any], run_dir: RunDir, html: bool = True) -> list[Path]:
    """Write report.json, the two charts, report.md and (html) report.html; return the paths.

    Rendered from the scrubbed data only, so the Markdown and HTML cannot hold what the JSON does not."""
    from ted import charts

    report = scrub_value(report)  # no credential in an endpoint URL reaches a report (or the Hub, with --push)
    written = [atomic_write(run_dir.report_json, json.dumps(report, indent=2, ensure_ascii=False) + "\n")]
    images = {}
    curve = charts.learning_curves({name: points for name, points in report["curves"].items()})
    if curve is not None:
        images["curve"] = atomic_write(run_dir.chart(CURVE_PNG), curve).name
    rows = report["arms"]
    paper_row = report["paper"]["accuracy"].get(report["benchmark"], {})
    images["accuracy"] = atomic_write(
        run_dir.chart(ACCURACY_PNG),
        charts.arm_accuracy(
            f"{report['lm_task']}: accuracy per arm (95% CI)",
            [r["name"] for r in rows],
            [r["acc"] for r in rows],
            [r["ci95"] for r in rows],
            [paper_row.get(r["name"]) for r in rows],
        ),
    ).name
    written += [run_dir.root / name for name in images.values()]
    env = _environment()
    context = {"r": report, "images": images, "bench_names": {b: registry.benchmark(b).eval_task for b in report["transfer"]}}
    written.append(atomic_write(run_dir.report_md, env.get_template("reproduce_report.md.j2").render(**context)))
    if html:
        env.autoescape = True
        written.append(atomic_write(run_dir.report_html, env.get_template("reproduce_report.html.j2").render(**context)))
    return written


def command_line() -> list[str]:
    """This process's `ted reproduce …` command line, as the user typed it (modulo quoting)."""
    return ["ted", *sys.argv[1:]]

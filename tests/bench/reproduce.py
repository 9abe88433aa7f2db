"""`ted reproduce` at full size against the simulator: wall time, and the --dry-run estimate against the record.

A benchmark, not a test (minutes): `python -m ted.cli reproduce` in a subprocess, 100 training
problems × 3 epochs × 5 rollouts × 4 strategies, then the baseline and the four libraries scored
through lm-eval on a 30-problem AIME-schema set — every model call goes over HTTP to
`tests.sim.Simulator` (a simulated OpenAI-compatible server, fixed latency per call), the
student and the teacher as two model names on it.

The estimate is the one `--dry-run` prints (the report keeps it next to what the run recorded);
it is made with `--reply-tokens` set to the simulator's reply length, as a user would set it
from their models, and once more with the default assumption. Errors are (estimate − recorded)
/ recorded, per step and in total. Evaluation tokens are not returned by lm-eval, so for the
evaluations only calls are compared.

    python -m tests.bench.reproduce                 # full size
    python -m tests.bench.reproduce --samples 10 --epochs 1 --strategies teacher,none   # a smoke run
    KEEP=DIR python -m tests.bench.reproduce    # also keep the run folder (report.md, state.json, …) in DIR
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.sim import Simulator, write_problems

EVAL_PROBLEMS = 30


def _error(estimate: float, recorded: float) -> str:
    return "–" if not recorded else f"{(estimate - recorded) / recorded:+.1%}"


def _tokens(roles: dict) -> int:
    return sum(r.get("prompt_tokens", 0) + r.get("completion_tokens", 0) for r in roles.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rollouts", type=int, default=5)
    parser.add_argument("--strategies", default="teacher,truncate,random,none")
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per simulated call")
    parser.add_argument("--reply-tokens", type=int, default=200, help="the simulator's solve reply length (its tokens_per_reply)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder, Simulator(args.latency, tokens_per_reply=args.reply_tokens) as sim:
        root = Path(folder)
        write_problems(root / "pool.jsonl", args.samples + 40, seed=1)
        rows = [json.loads(line) for line in write_problems(root / "eval.jsonl", EVAL_PROBLEMS, seed=2).read_text().splitlines()]
        (root / "aime.jsonl").write_text("".join(json.dumps({"problem": r["question"], "answer": r["answer"], "id": r["id"]}) + "\n" for r in rows))
        command = [
            sys.executable, "-m", "ted.cli", "reproduce", "--benchmark", "aime",
            "--student", sim.spec("sim-student"), "--teacher", sim.spec("sim-teacher"), "--out", str(root / "runs" / "sim"),
            "--train-from", str(root / "pool.jsonl"), "--train-task", "generic", "--samples", str(args.samples),
            "--epochs", str(args.epochs), "--rollouts", str(args.rollouts), "--strategies", args.strategies,
            "--eval-data", str(root / "aime.jsonl"), "--eval-max-tokens", "1024", "--reply-tokens", str(args.reply_tokens),
            "--no-html",
        ]  # fmt: skip
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "LM_HARNESS_CACHE_PATH": str(root / "lm_cache")}
        started = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=root)
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            sys.exit(f"ted reproduce failed:\n{proc.stderr[-3000:]}")
        report = json.loads((root / "runs" / "sim" / "report.json").read_text())
        if os.environ.get("KEEP"):
            import shutil
            shutil.copytree(root / "runs", os.environ["KEEP"], dirs_exist_ok=True)
        stats = sim.stats()

    from ted.reproduce.estimate import Estimator
    from ted.reproduce.plan import ReproduceConfig, plan

    assumed = report["cost"]["assumptions"]
    config = ReproduceConfig(**{**report["config"], "reply_tokens": None})
    default = {e.step: e.to_dict({}) for e in Estimator(config, question_tokens=assumed["question_tokens"], eval_sizes=assumed["eval_sizes"]).steps(plan(config))}
    estimate, recorded = report["cost"]["estimate"], report["cost"]["recorded"]
    print(f"ted reproduce against the simulator ({args.latency} s per call): {args.samples} samples × {args.epochs} epochs × "
          f"{args.rollouts} rollouts × {len(args.strategies.split(','))} strategies, eval {EVAL_PROBLEMS} problems × {len(args.strategies.split(',')) + 1} arms")
    print(f"wall {wall:.1f} s for the whole process; simulator saw {stats.total_requests} requests, {stats.total_choices} generations\n")
    print("| step | role | wall s | calls est. / recorded (error) | tokens est. / recorded (error) | tokens est. at the default reply length (error) |")
    print("|---|---|---|---|---|---|")
    sums: dict[str, dict[str, int]] = {}
    for step, est in estimate.items():
        if step == "split":
            continue
        for role, e in est["roles"].items():
            r = recorded[step]["roles"].get(role, {})
            line = f"| {step} | {role} | {report['timings']['steps'][step]:.1f} | {e['calls']:,} / {r.get('calls', 0):,} ({_error(e['calls'], r.get('calls', 0))}) |"
            into = sums.setdefault(role, dict.fromkeys(("ce", "cr", "te", "tr", "td"), 0))
            into["ce"] += e["calls"]
            into["cr"] += r.get("calls", 0)
            if step.startswith("distill"):
                te, tr, td = _tokens({role: e}), _tokens({role: r}), _tokens({role: default[step]["roles"][role]})
                into["te"], into["tr"], into["td"] = into["te"] + te, into["tr"] + tr, into["td"] + td
                line += f" {te:,} / {tr:,} ({_error(te, tr)}) | {td:,} ({_error(td, tr)}) |"
            else:
                line += " not returned by lm-eval | |"
            print(line)
    for role, t in sums.items():
        print(f"| total (distillation tokens) | {role} | | {t['ce']:,} / {t['cr']:,} ({_error(t['ce'], t['cr'])}) "
              f"| {t['te']:,} / {t['tr']:,} ({_error(t['te'], t['tr'])}) | {t['td']:,} ({_error(t['td'], t['tr'])}) |")
    print(f"\nsteps' wall s summed: {sum(report['timings']['steps'].values()):.1f}")


if __name__ == "__main__":
    main()

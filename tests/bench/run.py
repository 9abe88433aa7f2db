"""`make bench`: how close `ted distill` runs to its critical-path bound, against the simulator.

Every run is the real thing end to end except the model: `python -m ted.cli distill` in a
subprocess (the CLI code path a user runs, interpreter start-up included), through ted's OpenAI
backend and the `openai` client, over HTTP to `tests.sim.Simulator` (a simulated OpenAI-compatible
server in this process's background thread) with a fixed per-call latency.

The bound. Inside a batch the calls form dependent rounds: rollouts ∥ teacher solution →
structuring → extraction, then one round per compression call that actually happened. With a
fixed latency L no schedule beats `levels × L`, where levels = 3 × batches + compression calls and
batches = epochs × ceil(problems / B). (The issue's shorthand ceil(300 / B) equals this for
B = 1 and 4; for B = 16 and 64 batches do not straddle epochs, so the true count is a little
higher and the bound is honest.)

The latency, 0.2 s fixed by default, is the upper end of what keeps B=1 (about 950 dependent
rounds) to a few minutes. Real API calls take seconds, so the fixed costs (interpreter start-up,
client CPU per call, a checkpoint per batch) weigh far more here than in real use; the printed
projection adds them to `levels × L` for realistic L. The simulated models: ~300-token solve
replies, student right 60% of the time, teacher 95%, one new lesson per problem (sometimes an
update too), and a teacher that compresses to 70% of the budget when asked.

Columns: `wall` is the whole `ted distill` process; `run` is the distillation loop as ted records
it (`cost.wall_s`: the loop from start to end, without interpreter start-up and imports);
calls are generations (a request with n = 5 counts 5, as the issue counts rollouts); requests
are HTTP requests. Overhead per call is the 0-latency run time / calls, and `cpu` is the ted
process's CPU time / calls (steadier than wall on a shared machine). Peak RSS is the ted
process's (`wait4`). Ratios are measured side by side in one invocation: this machine is shared.

    python -m tests.bench.run                   # the full benchmark (a few minutes)
    python -m tests.bench.run --quick           # a smoke run (seconds)
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ted.library import Library
from tests.sim import Simulator, Stats, write_problems

PROJECTED_LATENCIES = (2.0, 10.0, 30.0)  # a short hosted reply, a typical reasoning reply, a long one


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


@dataclass
class Run:
    """One `ted distill` invocation and what it cost."""

    label: str
    problems: int
    epochs: int
    batch: int
    latency: float
    wall_s: float
    run_s: float
    cpu_s: float
    peak_rss_mb: float
    stats: Stats

    @property
    def batches(self) -> int:
        return self.epochs * math.ceil(self.problems / self.batch)

    @property
    def levels(self) -> int:
        return 3 * self.batches + self.stats.requests["compress"]

    @property
    def bound_s(self) -> float:
        return self.levels * self.latency

    @property
    def steps(self) -> int:
        return self.problems * self.epochs

    @property
    def calls(self) -> int:
        return self.stats.total_choices


def distill(
    workdir: Path, data: Path, sim: Simulator, *, label: str, problems: int, epochs: int, rollouts: int, batch: int,
    concurrency: int, max_tokens: int,
) -> Run:
    """Run `ted distill` once in a subprocess against `sim` and measure it."""
    out = workdir / f"{label}.json"
    command = [
        sys.executable, "-m", "ted.cli", "distill",
        "--data", str(data), "--student", sim.spec("sim-student"), "--teacher", sim.spec("sim-teacher"),
        "--out", str(out), "--force", "--yes", "--epochs", str(epochs), "--rollouts", str(rollouts),
        "--batch-size", str(batch), "--concurrency", str(concurrency), "--max-tokens", str(max_tokens),
    ]  # fmt: skip
    env = dict(os.environ, NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost", COLUMNS="120")
    env.pop("OPENAI_API_KEY", None)  # a local URL needs no key; never send a real one to the simulator
    sim.reset_stats()
    log_path = workdir / f"{label}.log"
    with open(log_path, "wb") as log:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
        raise SystemExit(f"bench: `ted distill` ({label}) exited with {process.returncode}:\n{tail}")
    lib = Library.load(out)  # validated: a bench run must write a real library
    return Run(
        label=label, problems=problems, epochs=epochs, batch=batch, latency=sim.latency.mean, wall_s=wall,
        run_s=lib.cost.wall_s, cpu_s=usage.ru_utime + usage.ru_stime, peak_rss_mb=usage.ru_maxrss / 1024,
        stats=sim.stats(),
    )  # fmt: skip


def table(runs: list[Run]) -> list[str]:
    """A Markdown table (pasteable into the README)."""
    head = ("run", "B", "wall s", "run s", "bound s", "wall/bound", "run/bound", "calls/problem·epoch", "requests/problem·epoch",
            "peak in flight", "cpu ms/call", "peak RSS MB")  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in runs:
        bound, wall_ratio, run_ratio = (
            (f"{r.bound_s:.1f}", f"{r.wall_s / r.bound_s:.2f}", f"{r.run_s / r.bound_s:.2f}") if r.latency else ("–", "–", "–")
        )
        cells = (r.label, str(r.batch), f"{r.wall_s:.1f}", f"{r.run_s:.1f}", bound, wall_ratio, run_ratio,
                 f"{r.calls / r.steps:.2f}", f"{r.stats.total_requests / r.steps:.2f}", str(r.stats.peak_in_flight),
                 f"{1000 * r.cpu_s / r.calls:.2f}", f"{r.peak_rss_mb:.0f}")  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rollouts", type=int, default=5)
    parser.add_argument("--batch-sizes", default="1,4,16,64", help="comma-separated; the target batch size must be among them")
    parser.add_argument("--target-batch", type=int, default=16, help="the batch size the targets are checked at")
    parser.add_argument("--latency", type=float, default=0.2, help="fixed seconds per simulated call (B=1 takes ~1000 of them)")
    parser.add_argument("--tokens", type=int, default=300, help="about this many tokens per simulated solve reply")
    parser.add_argument("--memory-problems", type=int, default=1000, help="0-latency run size compared with --problems for RSS")
    parser.add_argument("--concurrency", type=int, default=256, help="ted's --concurrency (calls in flight); B=64 needs 128")
    parser.add_argument("--ttft", action=argparse.BooleanOptionalAction, default=True, help="also measure prefix-cache TTFT with llama_cpp.server")
    parser.add_argument("--quick", action="store_true", help="smoke run: 12 problems, 1 epoch, B=1,4, 0.05 s, no TTFT")
    parser.add_argument("--workdir", type=Path, help="keep libraries and logs here (default: a temp dir)")
    args = parser.parse_args(argv)
    if args.quick:
        args.problems, args.epochs, args.batch_sizes, args.target_batch = 12, 1, "1,4", 4
        args.latency, args.memory_problems, args.ttft = 0.05, 36, False
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    if args.target_batch not in sizes or 1 not in sizes:
        parser.error("--batch-sizes must include 1 and --target-batch")

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ted-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    data = write_problems(workdir / "problems.jsonl", args.problems)
    many = write_problems(workdir / "problems-many.jsonl", args.memory_problems)
    common = dict(epochs=args.epochs, rollouts=args.rollouts, concurrency=args.concurrency, max_tokens=1024)
    print(f"bench: {args.problems} problems × {args.epochs} epochs × {args.rollouts} rollouts, latency {args.latency}s fixed, "
          f"~{args.tokens} tokens per solve reply; {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}; files in {workdir}", flush=True)  # fmt: skip

    runs: list[Run] = []
    with Simulator(latency=args.latency, tokens_per_reply=args.tokens) as sim:
        for batch in sizes:
            runs.append(distill(workdir, data, sim, label=f"B={batch}", problems=args.problems, batch=batch, **common))
            print(f"  {runs[-1].label}: {runs[-1].wall_s:.1f}s", flush=True)
    with Simulator(latency=0.0, tokens_per_reply=args.tokens) as sim:
        zero = distill(workdir, data, sim, label="0-latency", problems=args.problems, batch=args.target_batch, **common)
        big = distill(workdir, many, sim, label=f"0-latency ×{args.memory_problems}", problems=args.memory_problems,
                      batch=args.target_batch, **common)  # fmt: skip
    runs += [zero, big]

    print()
    print("\n".join(table(runs)))
    by_batch = {r.batch: r for r in runs if r.latency}
    target, sequential = by_batch[args.target_batch], by_batch[1]
    ratio = target.wall_s / target.bound_s
    speedup = sequential.wall_s / target.wall_s
    calls = target.calls / target.steps
    overhead_ms = 1000 * zero.run_s / zero.calls
    rss_ratio = big.peak_rss_mb / zero.peak_rss_mb
    print()
    checks = [
        (f"wall/bound at B={args.target_batch} (whole process)", f"{ratio:.2f}", "≤ 1.25", ratio <= 1.25),
        (f"run/bound at B={args.target_batch} (loop only)", f"{target.run_s / target.bound_s:.2f}", "≤ 1.25", target.run_s / target.bound_s <= 1.25),
        (f"B={args.target_batch} vs B=1 speed-up (wall)", f"{speedup:.1f}×", "≥ 10×", speedup >= 10),
        ("calls per problem per epoch", f"{calls:.2f}", f"≤ {args.rollouts + 3.5:.1f}", calls <= args.rollouts + 3.5),
        ("framework overhead per call (0-latency run s / calls)", f"{overhead_ms:.2f} ms", "≤ 2 ms", overhead_ms <= 2),
        (f"peak RSS {args.memory_problems} vs {args.problems} problems", f"{rss_ratio:.2f}×", "≤ 1.2×", rss_ratio <= 1.2),
    ]  # fmt: skip
    for name, value, goal, ok in checks:
        print(f"  {'met ' if ok else 'MISS'}  {name}: {value} (target {goal}{'; meant for the full run' if args.quick else ''})")
    print()
    print("Projection (not measured): wall ≈ levels × L + the overhead measured above (wall − bound), which does not grow with L.")
    print("| seconds per call L | " + " | ".join(f"B={b}" for b in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    for seconds in PROJECTED_LATENCIES:
        cells = [_duration(by_batch[b].levels * seconds + by_batch[b].wall_s - by_batch[b].bound_s) for b in sizes]
        print(f"| {seconds:g} s | " + " | ".join(cells) + " |")
    if args.ttft:
        from tests.bench.ttft import measure_ttft

        print()
        for line in measure_ttft(workdir):
            print(line, flush=True)
    print()
    print(f"bench: wall/bound={ratio:.2f} speedup_b16_vs_b1={speedup:.1f} calls_per_problem_epoch={calls:.1f} overhead_ms_per_call={overhead_ms:.1f}")


if __name__ == "__main__":
    main()

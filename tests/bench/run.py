"""`make bench`: how close `ted distill` runs to its critical-path bound, against the simulator.

Every run is the real thing end to end except the model: `python -m ted.cli distill` in a
subprocess (the CLI code path a user runs, interpreter start-up included), through ted's OpenAI
backend and the `openai` client, over HTTP to `tests.sim.Simulator` (a simulated OpenAI-compatible
server in this process's background thread) with a fixed per-call latency.

The bound. Inside a batch the calls form dependent rounds: rollouts [∥ teacher solution] →
structuring → extraction, then one round per compression call that actually happened. Each round
takes its role's latency (the simulator counts the seconds each stage slept; a round lasts the
mean of its stage, which the slowest call of a batch can only exceed, so the bound stays a lower
bound up to that spread). The teacher's solution sits in a batch's first round when it is asked
per epoch (`--fresh-teacher-solutions`); solved once per run, ahead of the batches, only the first
batch waits for it. So

    bound = L_probe + batches × (L_struct + L_extract) + Σ_batches first round + compress calls × L_compress,
    first round = max(L_student, L_solve) where solutions are asked, else L_student,

with batches = epochs × ceil(problems / B), and L_probe the round before any of them: ted's
system-message probe (`ted.system_probe`, two requests side by side, the student's latency), on
which the first paid call waits by design. With equal fixed latencies L this is `levels × L`,
levels = 1 + 3 × batches + compression calls.

The runs: B = 1, 4, 16, 64 with both roles at one fixed latency (0.2 s: the upper end of what keeps
B=1, about 950 dependent rounds, to a few minutes); then at the target B a slow teacher, 4× the
student's latency (0.2 s / 0.8 s for a solve-sized reply, both growing with the generated tokens:
half of it fixed, half per token), once as ted runs by default and once with
`--fresh-teacher-solutions` (the per-epoch solutions ted asked for before); then two 0-latency runs
for the framework's own cost. Real API calls take seconds, so the fixed costs (interpreter
start-up, client CPU per call, a checkpoint per batch) weigh far more here than in real use; the
printed projection adds them to the bound for realistic per-role latencies. The simulated models:
~300-token solve replies, student right 60% of the time, teacher 95%, one new lesson per problem
(sometimes an update too), and a teacher that compresses to 70% of the budget when asked.

Columns: `wall` is the whole `ted distill` process; `run` is the distillation loop as ted records
it (`cost.wall_s`: the loop from start to end, without interpreter start-up and imports);
calls are generations (a request with n = 5 counts 5, as the issue counts rollouts); requests
are HTTP requests. Overhead per call is the 0-latency run time / calls, and `cpu` is the ted
process's CPU time / calls (steadier than wall on a shared machine). Peak RSS is the ted
process's (`wait4`). `help_cpu_s` and `show_cpu_s` are the CPU seconds (user + system, the whole
process) of `ted --help` and `ted show LIB`, median of 5. Ratios are measured side by side in one
invocation: this machine is shared.

    python -m tests.bench.run                   # the full benchmark (a few minutes)
    python -m tests.bench.run --quick           # a smoke run (seconds)
"""

from __future__ import annotations

import argparse
import compileall
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import ted
from ted.library import Library
from tests.sim import Latency, Simulator, Stats, write_problems

# (student, teacher) seconds per solve-sized reply: a short hosted reply, a reasoning student with a
# frontier reasoning teacher, a long-thinking pair
PROJECTED_LATENCIES = ((2.0, 8.0), (10.0, 40.0), (30.0, 120.0))
TEACHER_STAGES = ("teacher_solve", "structure", "extract", "compress")
SLOW_TEACHER = 4.0  # the slow-teacher runs: the teacher's latency per reply, in student latencies
CPU_RUNS = 5  # help_cpu_s / show_cpu_s: median of this many processes


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


def bound(batches: int, compress_calls: int, latency: Callable[[str], float], fresh: bool) -> float:
    """The critical path of a run (see the module docstring): each dependent round at its role's latency."""
    first = max(latency("student"), latency("teacher_solve"))
    waited = batches if fresh else 1  # solved once, ahead of the batches: only the first batch waits for its solutions
    rest = latency("structure") + latency("extract")
    probe = latency("chat")  # the simulator's stage for any prompt that is not one of ted's templates, as the probe's is
    return probe + batches * rest + waited * first + (batches - waited) * latency("student") + compress_calls * latency("compress")


@dataclass
class Run:
    """One `ted distill` invocation and what it cost."""

    label: str
    problems: int
    epochs: int
    batch: int
    fresh: bool
    wall_s: float
    run_s: float
    cpu_s: float
    peak_rss_mb: float
    stats: Stats
    library: Path

    @property
    def batches(self) -> int:
        return self.epochs * math.ceil(self.problems / self.batch)

    @property
    def compress_calls(self) -> int:
        return self.stats.requests["compress"]

    @property
    def bound_s(self) -> float:
        return bound(self.batches, self.compress_calls, self.stats.mean_latency, self.fresh)

    @property
    def timed(self) -> bool:
        return self.stats.mean_latency("student") > 0

    @property
    def steps(self) -> int:
        return self.problems * self.epochs

    @property
    def calls(self) -> int:
        return self.stats.total_choices

    @property
    def teacher_requests(self) -> int:
        return sum(self.stats.requests[stage] for stage in TEACHER_STAGES)


def distill(
    workdir: Path, data: Path, sim: Simulator, *, label: str, problems: int, epochs: int, rollouts: int, batch: int,
    concurrency: int, max_tokens: int, fresh: bool = False,
) -> Run:
    """Run `ted distill` once in a subprocess against `sim` and measure it."""
    out = workdir / f"{label}.json"
    command = [
        sys.executable, "-m", "ted.cli", "distill",
        "--data", str(data), "--student", sim.spec("sim-student"), "--teacher", sim.spec("sim-teacher"),
        "--out", str(out), "--force", "--yes", "--epochs", str(epochs), "--rollouts", str(rollouts),
        "--batch-size", str(batch), "--concurrency", str(concurrency), "--max-tokens", str(max_tokens),
        *(["--fresh-teacher-solutions"] if fresh else []),
    ]  # fmt: skip
    sim.reset_stats()
    log_path = workdir / f"{label}.log"
    with open(log_path, "wb") as log:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=_env(cache_of(out)))
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
        raise SystemExit(f"bench: `ted distill` ({label}) exited with {process.returncode}:\n{tail}")
    lib = Library.load(out)  # validated: a bench run must write a real library
    return Run(
        label=label, problems=problems, epochs=epochs, batch=batch, fresh=fresh, wall_s=wall, run_s=lib.cost.wall_s,
        cpu_s=usage.ru_utime + usage.ru_stime, peak_rss_mb=usage.ru_maxrss / 1024, stats=sim.stats(), library=out,
    )  # fmt: skip


def cache_of(library: Path) -> Path:
    """Each run's own ted cache (token counts), empty at its start: every run pays what a first run on a
    new machine pays (loading the tokenizer), and `ted show` of its library then finds what it wrote."""
    return library.with_suffix(".cache")


def _env(cache: Path) -> dict[str, str]:
    env = dict(os.environ, NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost", COLUMNS="120", TED_CACHE=str(cache))
    env.pop("OPENAI_API_KEY", None)  # a local URL needs no key; never send a real one to the simulator
    return env


def compile_ted() -> None:
    """Write ted's bytecode, as pip does when it installs the wheel: a checkout run with
    PYTHONDONTWRITEBYTECODE set (or a fresh clone) would otherwise compile every module it imports in
    every measured process."""
    compileall.compile_dir(str(Path(ted.__file__).parent), quiet=1)


def cpu_seconds(*args: str, cache: Path) -> float:
    """CPU seconds (user + system) of the whole `ted ARGS` process, median of CPU_RUNS (after one uncounted run)."""
    subprocess.run([sys.executable, "-m", "ted.cli", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(cache), check=False)
    samples = []
    for _ in range(CPU_RUNS):
        process = subprocess.Popen([sys.executable, "-m", "ted.cli", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(cache))
        _, status, usage = os.wait4(process.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"bench: `ted {' '.join(args)}` failed")
        samples.append(usage.ru_utime + usage.ru_stime)
    return statistics.median(samples)


def role_latency(seconds: float, tokens: int) -> Latency:
    """`seconds` for a solve-sized reply (`tokens`), half fixed and half per generated token."""
    return Latency(seconds / 2, per_token=seconds / 2 / tokens)


def table(runs: list[Run]) -> list[str]:
    """A Markdown table (pasteable into the README)."""
    head = ("run", "B", "wall s", "run s", "bound s", "wall/bound", "run/bound", "calls/problem·epoch", "teacher requests/problem·epoch",
            "peak in flight", "cpu ms/call", "peak RSS MB")  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in runs:
        bound_s, wall_ratio, run_ratio = (
            (f"{r.bound_s:.1f}", f"{r.wall_s / r.bound_s:.2f}", f"{r.run_s / r.bound_s:.2f}") if r.timed else ("–", "–", "–")
        )
        cells = (r.label, str(r.batch), f"{r.wall_s:.1f}", f"{r.run_s:.1f}", bound_s, wall_ratio, run_ratio,
                 f"{r.calls / r.steps:.2f}", f"{r.teacher_requests / r.steps:.2f}", str(r.stats.peak_in_flight),
                 f"{1000 * r.cpu_s / r.calls:.2f}", f"{r.peak_rss_mb:.0f}")  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def projection(equal: dict[int, Run], now: Run) -> list[str]:
    """Wall ≈ the bound at real per-role latencies + the overhead each run measured (wall − bound), which does not grow with L."""
    sizes = sorted(equal)
    head = ["student / teacher s per reply", *(f"B={b}" for b in sizes), f"B={now.batch} per-epoch solutions"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for student, teacher in PROJECTED_LATENCIES:
        def latency(stage: str) -> float:
            return teacher if stage in TEACHER_STAGES else student

        runs = [equal[b] for b in sizes] + [now]
        cells = [_duration(bound(r.batches, r.compress_calls, latency, r.fresh) + r.wall_s - r.bound_s) for r in runs]
        lines.append(f"| {student:g} s / {teacher:g} s | " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rollouts", type=int, default=5)
    parser.add_argument("--batch-sizes", default="1,4,16,64", help="comma-separated; the target batch size must be among them")
    parser.add_argument("--target-batch", type=int, default=16, help="the batch size the targets are checked at")
    parser.add_argument("--latency", type=float, default=0.2, help="the student's seconds per call (B=1 takes ~1000 of them)")
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

    compile_ted()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ted-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    data = write_problems(workdir / "problems.jsonl", args.problems)
    many = write_problems(workdir / "problems-many.jsonl", args.memory_problems)
    common = dict(problems=args.problems, epochs=args.epochs, rollouts=args.rollouts, concurrency=args.concurrency, max_tokens=1024)
    slow = args.latency * SLOW_TEACHER
    print(f"bench: {args.problems} problems × {args.epochs} epochs × {args.rollouts} rollouts, latency {args.latency}s fixed for both roles, "
          f"then a slow teacher ({args.latency}s / {slow:g}s per ~{args.tokens}-token reply, half of it per token); "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, "
          f"Python {platform.python_version()}; files in {workdir}", flush=True)  # fmt: skip

    runs: list[Run] = []
    with Simulator(latency=args.latency, tokens_per_reply=args.tokens) as sim:
        for batch in sizes:
            runs.append(distill(workdir, data, sim, label=f"B={batch}", batch=batch, **common))
            print(f"  {runs[-1].label}: {runs[-1].wall_s:.1f}s", flush=True)
    equal = {r.batch: r for r in runs}
    student, teacher = role_latency(args.latency, args.tokens), role_latency(slow, args.tokens)
    with Simulator(latency=student, teacher_latency=teacher, tokens_per_reply=args.tokens) as sim:
        ahead = distill(workdir, data, sim, label=f"slow teacher B={args.target_batch}", batch=args.target_batch, **common)
        print(f"  {ahead.label}: {ahead.wall_s:.1f}s", flush=True)
        now = distill(workdir, data, sim, label=f"slow teacher B={args.target_batch} per-epoch solutions", batch=args.target_batch,
                      fresh=True, **common)  # fmt: skip
        print(f"  {now.label}: {now.wall_s:.1f}s", flush=True)
    runs += [ahead, now]
    with Simulator(latency=0.0, tokens_per_reply=args.tokens) as sim:
        zero = distill(workdir, data, sim, label="0-latency", batch=args.target_batch, **common)
        big = distill(workdir, many, sim, label=f"0-latency ×{args.memory_problems}", batch=args.target_batch,
                      **dict(common, problems=args.memory_problems))  # fmt: skip
    runs += [zero, big]
    help_cpu = cpu_seconds("--help", cache=workdir / "help.cache")
    shown = equal[args.target_batch].library
    show_cpu = cpu_seconds("show", str(shown), cache=cache_of(shown))  # after its distill, as a user runs it

    print()
    print("\n".join(table(runs)))
    target, sequential = equal[args.target_batch], equal[1]
    ratio = target.wall_s / target.bound_s
    speedup = sequential.wall_s / target.wall_s
    calls = target.calls / target.steps
    teacher_requests = target.teacher_requests / target.steps
    overhead_ms = 1000 * zero.run_s / zero.calls
    rss_ratio = big.peak_rss_mb / zero.peak_rss_mb
    slow_ratio = ahead.wall_s / ahead.bound_s
    slow_speedup = now.wall_s / ahead.wall_s
    slow_ceiling = now.bound_s / ahead.bound_s  # the most that solving ahead can give, by the bench's own latency model
    slow_vs_ceiling = slow_speedup / slow_ceiling
    print()
    checks = [
        (f"wall/bound at B={args.target_batch} (whole process)", f"{ratio:.2f}", "≤ 1.25", ratio <= 1.25),
        (f"run/bound at B={args.target_batch} (loop only)", f"{target.run_s / target.bound_s:.2f}", "≤ 1.25", target.run_s / target.bound_s <= 1.25),
        (f"B={args.target_batch} vs B=1 speed-up (wall)", f"{speedup:.1f}×", "≥ 10×", speedup >= 10),
        ("calls per problem per epoch", f"{calls:.2f}", f"≤ {args.rollouts + 2.5:.1f}", calls <= args.rollouts + 2.5),
        ("teacher requests per problem per epoch", f"{teacher_requests:.2f}", "≤ 2.5", teacher_requests <= 2.5),
        ("framework overhead per call (0-latency run s / calls)", f"{overhead_ms:.2f} ms", "≤ 2 ms", overhead_ms <= 2),
        (f"peak RSS {args.memory_problems} vs {args.problems} problems", f"{rss_ratio:.2f}×", "≤ 1.2×", rss_ratio <= 1.2),
        (f"slow teacher ({SLOW_TEACHER:g}×): wall/bound at B={args.target_batch}", f"{slow_ratio:.2f}", "≤ 1.15", slow_ratio <= 1.15),
        ("slow teacher: solutions once vs per epoch (wall), over the bounds' ratio",
         f"{slow_speedup:.2f}× of a {slow_ceiling:.2f}× ceiling = {slow_vs_ceiling:.2f}", "≥ 0.95 of the ceiling", slow_vs_ceiling >= 0.95),
        (f"`ted --help` CPU s (median of {CPU_RUNS})", f"{help_cpu:.3f}", "≤ 0.15", help_cpu <= 0.15),
        (f"`ted show LIB` CPU s (median of {CPU_RUNS})", f"{show_cpu:.3f}", "≤ 0.35", show_cpu <= 0.35),
    ]  # fmt: skip
    for name, value, goal, ok in checks:
        print(f"  {'met ' if ok else 'MISS'}  {name}: {value} (target {goal}{'; meant for the full run' if args.quick else ''})")
    print()
    print("Projection (not measured): wall ≈ the bound at these per-role latencies (teacher stages at the teacher's, one latency per reply)")
    print("+ the overhead each run measured above (wall − bound), which does not grow with latency.")
    print("\n".join(projection(equal, now)))
    if args.ttft:
        from tests.bench.ttft import measure_ttft

        print()
        for line in measure_ttft(workdir):
            print(line, flush=True)
    print()
    print(
        f"bench: wall/bound={ratio:.2f} speedup_b16_vs_b1={speedup:.1f} calls_per_problem_epoch={calls:.2f} "
        f"overhead_ms_per_call={overhead_ms:.2f} teacher_requests_per_problem_epoch={teacher_requests:.2f} "
        f"slow_teacher_wall/bound={slow_ratio:.2f} slow_teacher_speedup_vs_now={slow_speedup:.2f} slow_teacher_vs_ceiling={slow_vs_ceiling:.2f} "
        f"help_cpu_s={help_cpu:.3f} show_cpu_s={show_cpu:.3f}"
    )


if __name__ == "__main__":
    main()

"""`make bench-real`: the local models on this machine's CPU, through llama.cpp's own llama-server.

Measured in one run, side by side (the machine may be shared: compare only figures from one run):

- `decode_tok_s_1`: the student (`local`) generating alone, one sequence (the server's own timing).
- `decode_tok_s_agg`: the student's 4 slots generating at once: all tokens / the wall time of the
  four requests sent together; `parallel_speedup` = that over `decode_tok_s_1`.
- `prefill_tok_s`: the student reading a ~950-token prompt with nothing cached.
- a small `ted distill` (student `local`, teacher `local:teacher`, demo-style problems) run twice:
  through managed llama-servers (ted's default), then in process with one thread as ted ran
  before (`TED_LOCAL_ENGINE=process TED_LOCAL_THREADS=1`). `demo_s` is the first's wall time
  (the whole `ted distill` process); the second's is printed beside it, with the ratio.
- with `--unprimed`, the served distillation again without primes (`TED_LOCAL_PRIME=0`): what
  priming saves, side by side.
- the served distillation again with one thread per server (`TED_LOCAL_THREADS=1`) instead of all
  cores for each: the thread split, measured.
- `prefix_reuse`: of the served run's prompt tokens, the share the servers took from their prompt
  cache (`cost.roles[*].cached_prompt_tokens / prompt_tokens`, read from each reply's `timings`),
  primes included (`ted.distill.prime`: 1-token requests that put a batch's shared prompt heads in
  the cache first; their prompt tokens count like any other). Printed beside the share of the
  stages' own requests alone (`prime_usage()`) and `prefix_ceiling`: what an ideal cache could
  serve of the same run (`prefix_ceiling()`).
- `distill_wall/bound`: the served run's loop time (`cost.wall_s`) over its work priced at the
  rates measured here: per role, uncached prompt tokens / prefill rate + generated tokens /
  aggregate decode rate, summed over both roles, since both share the same cores.

    python -m tests.bench.real [--problems 2] [--skip-inprocess] [--skip-split] [--unprimed]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from ted.library import Library
from ted.models.calllog import calls_path, read_log
from ted.models.server import ManagedServer

SLOTS = 4
DECODE_TOKENS = 48
WORDS = "apple river stone cloud seven market bright north table window garden silver".split()


def complete(server: ManagedServer, prompt: str, n_predict: int, cache: bool = False) -> dict:
    """One `/completion` request (llama-server's native endpoint, which returns `timings`)."""
    body = {"prompt": prompt, "n_predict": n_predict, "temperature": 0, "ignore_eos": True, "cache_prompt": cache}
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}/completion", json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=900) as reply:
            return json.load(reply)
    except urllib.error.HTTPError as err:
        sys.exit(f"bench-real: llama-server refused a request: {err.code} {err.read()[:300]!r}")


def rates(server: ManagedServer) -> dict[str, float]:
    """Decode alone, decode over all slots together, and prefill, of one server."""
    complete(server, "Warm up.", 4)
    one = complete(server, "Count slowly from one to one hundred:", DECODE_TOKENS)["timings"]
    decode_1 = one["predicted_n"] / one["predicted_ms"] * 1000
    prompts = [f"Write a story about the {WORDS[i]} and the {WORDS[-1 - i]}:" for i in range(SLOTS)]
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(SLOTS) as pool:
        replies = list(pool.map(lambda p: complete(server, p, DECODE_TOKENS), prompts))
    wall = time.perf_counter() - started
    decode_agg = sum(r["timings"]["predicted_n"] for r in replies) / wall
    long_prompt = " ".join(f"{WORDS[i % len(WORDS)]} {i}" for i in range(200))  # ~950 tokens, a fresh prefix
    read = complete(server, long_prompt, 1)["timings"]
    prefill = read["prompt_n"] / read["prompt_ms"] * 1000
    return {"decode_1": decode_1, "decode_agg": decode_agg, "prefill": prefill}


def distill(workdir: Path, data: Path, label: str, env: dict[str, str], problems: int) -> tuple[float, Library]:
    """`ted distill` as a user runs it, in a subprocess; returns (wall s, the library it wrote)."""
    out = workdir / f"{label}.json"
    command = [
        sys.executable, "-m", "ted.cli", "distill", "--data", str(data), "--student", "local", "--teacher", "local:teacher",
        "--out", str(out), "--epochs", "1", "--rollouts", "2", "--batch-size", str(problems),
        "--max-tokens", "160", "--json-max-tokens", "256", "--force", "--yes",
    ]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"bench-real: the {label} distillation failed: {done.stderr.strip()[-1500:]}")
    print(f"{label}: {wall:.1f} s wall; {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ''}", flush=True)
    return wall, Library.load(out)


def prefix_ceiling(library: Path) -> float:
    """The share of the run's prompt text an ideal cache could serve: for each call, its longest common
    prefix with any earlier prompt of the same model, over all prompt text (in characters, from the run's
    call log). `prefix_reuse` can approach this, not exceed it: the rest is text no earlier call had."""
    seen: dict[str, list[str]] = {}
    shared = total = 0
    for row in read_log(calls_path(library)):
        if not row or not row.get("messages"):
            continue
        text = "".join(f"<{m.get('role')}>{json.dumps(m.get('text'))}" for m in row["messages"])
        earlier = seen.setdefault(row.get("role", ""), [])
        shared += max((len(os.path.commonprefix([text, other])) for other in earlier), default=0)
        total += len(text)
        earlier.append(text)
    return shared / total if total else 0.0


def prime_usage(library: Path) -> tuple[int, int, int]:
    """(requests, prompt tokens, of those cached) of the run's primes (stage "prime" in its call log)."""
    usages = [row.get("usage") or {} for row in read_log(calls_path(library)) if row and row.get("stage") == "prime"]
    return len(usages), sum(u.get("prompt_tokens") or 0 for u in usages), sum(u.get("cached_prompt_tokens") or 0 for u in usages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=2)
    parser.add_argument("--skip-inprocess", action="store_true", help="leave out the in-process one-thread distillation")
    parser.add_argument("--skip-split", action="store_true", help="leave out the served run with one thread per server")
    parser.add_argument("--unprimed", action="store_true", help="add the served run without primes (TED_LOCAL_PRIME=0)")
    args = parser.parse_args()
    measured = {}
    for spec in ("local", "local:teacher"):
        with ManagedServer(spec, parallel=SLOTS, ctx_per_slot=2048) as server:
            measured[spec] = rates(server)
        r = measured[spec]
        print(f"{spec}: decode {r['decode_1']:.1f} tok/s alone, {r['decode_agg']:.1f} tok/s over {SLOTS} slots; prefill {r['prefill']:.1f} tok/s", flush=True)

    with tempfile.TemporaryDirectory(prefix="ted-bench-real-") as tmp:
        workdir = Path(tmp)
        data = workdir / "problems.jsonl"
        subprocess.run([sys.executable, "-m", "ted.demo", str(data), "--n", str(args.problems)], check=True, capture_output=True)
        served_s, served = distill(workdir, data, "served", {"TED_LOCAL_ENGINE": "server"}, args.problems)
        ceiling = prefix_ceiling(workdir / "served.json")
        primes, primed_prompt, primed_cached = prime_usage(workdir / "served.json")
        unprimed = None
        if args.unprimed:
            unprimed_s, unprimed_lib = distill(workdir, data, "served-unprimed", {"TED_LOCAL_ENGINE": "server", "TED_LOCAL_PRIME": "0"}, args.problems)
            unprimed = (unprimed_s, unprimed_lib, prefix_ceiling(workdir / "served-unprimed.json"))
        split_s = None
        if not args.skip_split:  # the two servers with one thread each instead of all cores each
            split_s, _ = distill(workdir, data, "served-1+1-threads", {"TED_LOCAL_ENGINE": "server", "TED_LOCAL_THREADS": "1"}, args.problems)
        inproc_s = None
        if not args.skip_inprocess:
            inproc_s, _ = distill(workdir, data, "in-process-1-thread", {"TED_LOCAL_ENGINE": "process", "TED_LOCAL_THREADS": "1"}, args.problems)

    roles = {"student": measured["local"], "teacher": measured["local:teacher"]}
    prompt = sum(c.prompt_tokens for c in served.cost.roles.values())
    cached = sum(c.cached_prompt_tokens for c in served.cost.roles.values())
    bound = sum(
        (c.prompt_tokens - c.cached_prompt_tokens) / roles[role]["prefill"] + c.completion_tokens / roles[role]["decode_agg"]
        for role, c in served.cost.roles.items()
        if role in roles
    )
    student = measured["local"]
    if unprimed is not None:
        unprimed_s, unprimed_lib, unprimed_ceiling = unprimed
        u_prompt = sum(c.prompt_tokens for c in unprimed_lib.cost.roles.values())
        u_cached = sum(c.cached_prompt_tokens for c in unprimed_lib.cost.roles.values())
        print(
            f"priming: served {served_s:.1f} s (loop {served.cost.wall_s:.1f} s) vs without primes {unprimed_s:.1f} s (loop {unprimed_lib.cost.wall_s:.1f} s); "
            f"without primes {u_cached:,} of {u_prompt:,} prompt tokens from the cache ({u_cached / u_prompt if u_prompt else 0:.2f}), prefix_ceiling {unprimed_ceiling:.2f}"
        )
    if split_s is not None:
        print(f"thread split: each server on all {os.cpu_count()} cores {served_s:.1f} s vs one thread each {split_s:.1f} s")
    if inproc_s is not None:
        print(f"distillation: served {served_s:.1f} s vs in process, one thread {inproc_s:.1f} s: {inproc_s / served_s:.2f}× (target ≥ 2×)")
    stages_prompt, stages_cached = prompt - primed_prompt, cached - primed_cached
    print(
        f"served run: {prompt:,} prompt tokens, {cached:,} from the cache; {primes} primes read {primed_prompt:,} of them "
        f"({primed_cached:,} cached); the stages' own requests {stages_cached:,} of {stages_prompt:,} "
        f"({stages_cached / stages_prompt if stages_prompt else 0:.2f}); an ideal cache's share {ceiling:.2f} (prefix_ceiling); "
        f"bound {bound:.1f} s; loop {served.cost.wall_s:.1f} s"
    )
    print(
        f"real: decode_tok_s_1={student['decode_1']:.1f} decode_tok_s_agg={student['decode_agg']:.1f} "
        f"parallel_speedup={student['decode_agg'] / student['decode_1']:.2f} prefill_tok_s={student['prefill']:.1f} "
        f"prefix_reuse={cached / prompt if prompt else 0:.2f} distill_wall/bound={served.cost.wall_s / bound:.2f} demo_s={served_s:.1f}"
    )


if __name__ == "__main__":
    main()

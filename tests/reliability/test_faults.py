"""Endpoint faults: `ted distill` against the simulator failing a fifth of its calls, and a total outage.

The simulator is a real OpenAI-compatible HTTP server (tests/sim); `ted` runs as a subprocess and
talks to it through the real `openai` client, so retries, backoff, Retry-After and timeouts are the
production code paths. The fault mix is the simulator's: 429 with Retry-After, 500, 503, connection
reset, a hang past the client's timeout, a 200 with a cut-off JSON body, a 200 with no choices,
truncated content, and a solve reply with no final answer.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from ted.distill.checkpoint import checkpoint_path
from ted.distill.config import derive_seed
from ted.library import Library
from ted.models.calllog import calls_path
from ted.tasks.data import load_problems
from tests.reliability.common import clean_env, ted_command
from tests.reliability.conftest import Deterministic
from tests.reliability.simulated import RecordingSimulator, comparable, distill_args, start_ted
from tests.sim import FAULTS, write_problems
from tests.sim.server import CONTENT_FAULTS

pytestmark = pytest.mark.integration

PROBLEMS, EPOCHS = 50, 2
OPTIONS = ("--epochs", str(EPOCHS), "--rollouts", "2", "--batch-size", "10", "--budget-tokens", "300", "--max-items", "5",
           "--max-tokens", "64", "--json-max-tokens", "512", "--request-timeout", "1", "--max-retries", "6")  # fmt: skip


def test_distill_survives_a_fifth_of_calls_failing(tmp_path: Path) -> None:
    data = write_problems(tmp_path / "problems.jsonl", PROBLEMS)
    out = tmp_path / "lib" / "library.json"
    sim = RecordingSimulator(0.005, failure_rate=0.2, seed=3, retry_after=0.05, hang_s=5.0, tokens_per_reply=40)
    with sim:
        started = time.perf_counter()
        proc = subprocess.run(ted_command(*distill_args(sim, data, out, *OPTIONS)), cwd=tmp_path, env=clean_env(),
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        elapsed = time.perf_counter() - started
        stats = sim.stats()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr

    # Every kind of fault in the mix was met.
    kinds = Counter()
    for (_, kind), count in stats.faults.items():
        kinds[kind] += count
    assert set(kinds) == set(FAULTS), kinds

    # The library is valid and within budget, and the run left nothing else behind.
    library = Library.load(out)
    assert library.fits() and library.items
    assert sorted(p.name for p in out.parent.iterdir()) == sorted([calls_path(out).name, "library.json"])
    assert not checkpoint_path(out).exists()

    # Every problem was solved by the teacher exactly once per run (the solution is reused in every
    # epoch): one usable teacher solution each, identified by the seed the pipeline derives from
    # (epoch 0, problem), and no other; every problem of every epoch was processed (the curve's steps).
    problems = load_problems(str(data))
    expected = {derive_seed(0, "teacher", 0, p.id, "solve") for p in problems}
    solved = sim.usable("teacher_solve")
    assert set(solved) == expected
    assert set(solved.values()) == {1}
    assert [point.step for point in library.metrics.curve] == [PROBLEMS * (e + 1) for e in range(EPOCHS)]

    # The ledger counts every retry: one per request that got no usable reply (each injected transport
    # fault, and any reply the client gave up waiting for), one per re-ask of an unusable JSON reply.
    roles = library.cost.roles
    transport = sum(count for kind, count in kinds.items() if kind not in CONTENT_FAULTS)
    assert sim.unusable() >= transport
    assert roles["student"].retries + roles["teacher"].retries == sim.unusable() + sim.usable_reasks()
    assert roles["student"].failures == roles["teacher"].failures == 0
    print(f"\n{PROBLEMS} problems x {EPOCHS} epochs, {stats.total_requests} requests, faults {dict(kinds)}, "
          f"retries {roles['student'].retries + roles['teacher'].retries}, {elapsed:.1f}s")  # fmt: skip


def test_persistent_outage_ends_the_run_with_a_resumable_checkpoint(deterministic: Deterministic, tmp_path: Path) -> None:
    out = tmp_path / "library.json"
    ckpt = checkpoint_path(out)
    bounds = ("--request-timeout", "1", "--max-retries", "2")  # not part of the run's identity: resume may change them
    sim = deterministic.sim
    calm = sim.weights, sim.failure_rate
    proc = start_ted(deterministic.args(out, *bounds), cwd=tmp_path)
    try:
        deadline = time.perf_counter() + 120
        while not ckpt.exists() and proc.poll() is None and time.perf_counter() < deadline:
            time.sleep(0.01)
        assert ckpt.exists(), "no checkpoint before the outage"
        sim.weights, sim.failure_rate = {"503": 1.0, "reset": 1.0, "timeout": 1.0}, 1.0  # every call fails from now on
        outage = time.perf_counter()
        _, stderr = proc.communicate(timeout=120)
        stopped_in = time.perf_counter() - outage
    finally:
        sim.weights, sim.failure_rate = calm
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode != 0 and "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0] == stderr.strip().splitlines()[-1], stderr[-2000:]
    assert sim.base_url in errors[0] and "rerun with --resume" in errors[0]
    print(f"\noutage: stopped {stopped_in:.1f}s after it began: {errors[0]}")
    assert stopped_in < 30  # bounded: 3 tries of at most 1 s each, with backoff, then stop
    assert json.loads(ckpt.read_text(encoding="utf-8"))["batch"] >= 1 and not out.exists()

    resumed = start_ted(deterministic.args(out, "--resume"), cwd=tmp_path)  # the endpoint is back
    _, stderr = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, stderr[-2000:]
    assert comparable(out) == deterministic.reference

"""Endpoint faults: `ted distill` against the simulator failing a fifth of its calls, and a total outage.

The simulator is a real OpenAI-compatible HTTP server (tests/sim); `ted` runs as a subprocess and
talks to it through the real `openai` client, so retries, backoff, Retry-After and timeouts are the
production code paths. The fault mix is the simulator's: 429 with Retry-After, 500, 503, connection
reset, a hang past the client's timeout, a 200 with a cut-off JSON body, a 200 with no choices,
truncated content, and a solve reply with no final answer.
"""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from ted.distill.pipeline import checkpoint_path, derive_seed
from ted.library import Library
from ted.tasks.data import load_problems
from tests.reliability.common import clean_env, ted_command
from tests.reliability.simulated import RecordingSimulator, distill_args
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
    assert sorted(p.name for p in out.parent.iterdir()) == ["library.json"]
    assert not checkpoint_path(out).exists()

    # Every problem of every epoch was processed exactly once: one usable teacher solution each,
    # identified by the seed the pipeline derives from (epoch, problem), and no other.
    problems = load_problems(str(data))
    expected = {derive_seed(0, "teacher", epoch, p.id, "solve") for epoch in range(EPOCHS) for p in problems}
    solved = sim.usable("teacher_solve")
    assert set(solved) == expected
    assert set(solved.values()) == {1}
    assert [point["step"] for point in library.metrics.curve] == [PROBLEMS * (e + 1) for e in range(EPOCHS)]

    # The ledger counts every retry: one per transport fault, one per re-ask of an unusable JSON reply.
    roles = library.cost.roles
    transport = sum(count for kind, count in kinds.items() if kind not in CONTENT_FAULTS)
    assert roles["student"].retries + roles["teacher"].retries == transport + sim.usable_reasks()
    assert roles["student"].failures == roles["teacher"].failures == 0
    print(f"\n{PROBLEMS} problems x {EPOCHS} epochs, {stats.total_requests} requests, faults {dict(kinds)}, "
          f"retries {roles['student'].retries + roles['teacher'].retries}, {elapsed:.1f}s")  # fmt: skip

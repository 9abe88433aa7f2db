"""No destroyed or shared outputs: one run per `--out`, and `--out` never an input, even with --force."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from ted.run_guard import lock_path
from tests.reliability.common import assert_one_line_error, clean_env, ted, ted_command, tree_digest
from tests.reliability.simulated import RecordingSimulator, distill_args
from tests.sim import write_problems

pytestmark = pytest.mark.integration

OPTIONS = ("--epochs", "1", "--rollouts", "2", "--batch-size", "2", "--budget-tokens", "250", "--max-items", "4", "--max-tokens", "64")


def test_a_second_run_on_the_same_out_is_refused_and_a_stale_lock_is_taken_over(tmp_path: Path) -> None:
    data = write_problems(tmp_path / "problems.jsonl", 6)
    out = tmp_path / "lib" / "library.json"
    with RecordingSimulator(0.2, seed=1, tokens_per_reply=40) as sim:
        first = subprocess.Popen(ted_command(*distill_args(sim, data, out, *OPTIONS)), cwd=tmp_path, env=clean_env(),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        try:
            started = time.perf_counter()
            while not lock_path(out).exists():
                assert first.poll() is None and time.perf_counter() - started < 60, "the first run never took the lock"
                time.sleep(0.05)
            second = ted(*distill_args(sim, data, out, *OPTIONS, "--force"), cwd=tmp_path)
            line = assert_one_line_error(second, f"PID {first.pid}", "another ted run", "choose another --out")
            _, stderr = first.communicate(timeout=180)
        finally:
            if first.poll() is None:
                first.kill()
        assert first.returncode == 0, stderr[-2000:]
        assert not lock_path(out).exists()  # released at the end
        # A lock left by a run that was killed: its PID is gone, so the next run takes over.
        dead = subprocess.Popen(["true"])
        dead.wait()
        lock_path(out).write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename}))
        again = ted(*distill_args(sim, data, out, *OPTIONS, "--force"), cwd=tmp_path, timeout=180)
        assert again.returncode == 0 and f"PID {dead.pid}" in again.stderr, again.stderr[-2000:]
        assert not lock_path(out).exists()
    print(f"\nrace: {line}")


@pytest.mark.parametrize("target", ["data", "val", "data-folder-spelling"])
def test_out_that_is_an_input_is_refused_even_with_force(tmp_path: Path, target: str) -> None:
    data = write_problems(tmp_path / "problems.jsonl", 4)
    val = write_problems(tmp_path / "val.jsonl", 2, seed=9)
    out = {"data": data, "val": val, "data-folder-spelling": tmp_path / "sub" / ".." / "problems.jsonl"}[target]
    (tmp_path / "sub").mkdir()
    before = tree_digest(tmp_path)
    with RecordingSimulator(0.0, seed=1) as sim:
        proc = ted(*distill_args(sim, data, out, "--val-data", str(val), "--force", *OPTIONS), cwd=tmp_path)
        assert sim.seen == []  # refused before any call
    assert_one_line_error(proc, "would overwrite the", "input", "--force never overwrites inputs")
    assert tree_digest(tmp_path) == before

"""Crashes: SIGKILL at ten moments of one run, Ctrl-C, and a total outage, each followed by `--resume`.

`ted distill` runs as a subprocess against the deterministic simulator; nothing in `ted` knows it is
being tested. Kills are triggered from outside: by the simulator when a given kind of call arrives
(so the process dies with that call in flight), by a watcher that sees a checkpoint being written
(its temporary file), or after a random delay. Meanwhile another thread parses every file in the
output folder over and over: at no moment may one be torn. After the last resume the library must
equal the one of an uninterrupted run (items, history, next_id, learning curve).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ted.distill.checkpoint import checkpoint_path
from ted.files import remove_stale_temps
from ted.library import Library
from ted.models.calllog import calls_path
from tests.reliability.common import REPO
from tests.reliability.conftest import Deterministic
from tests.reliability.simulated import comparable, start_ted

pytestmark = pytest.mark.integration

RNG = random.Random(20261123)
# (kind, detail): kill on the n-th request of a stage, on the n-th checkpoint write seen, or after a delay.
# The teacher's solutions are asked once per run, all at its start, and kept in the checkpoint: only
# a run without one asks for them, so the kill during a solution comes first.
KILLS: list[tuple[str, object]] = [
    ("request", ("teacher_solve", 4)),  # solutions in flight, before the first checkpoint
    ("request", ("student", 4)),  # rollouts of the second batch
    ("request", ("compress", 2)),  # a compression
    ("checkpoint", 2),  # while the second checkpoint is written
    ("after", round(RNG.uniform(0.1, 0.6), 2)),
    ("request", ("extract", 5)),
    ("request", ("structure", 4)),
    ("checkpoint", 1),
    ("after", round(RNG.uniform(0.1, 0.6), 2)),
    ("request", ("compress", 1)),
]


class Watcher(threading.Thread):
    """Parses every file in `folder` continuously; counts checkpoint writes caught in progress."""

    def __init__(self, folder: Path) -> None:
        super().__init__(daemon=True)
        self.folder = folder
        self.parsed = 0
        self.errors: list[str] = []
        self.writes_seen: set[str] = set()  # names of temporary files seen: each is one write in progress
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                paths = list(self.folder.iterdir())
            except FileNotFoundError:
                paths = []
            for path in paths:
                if path.name.endswith((".lock", ".calls.jsonl")):  # the run's lock (a PID) and its call log (lines): not libraries
                    continue
                if path.name.endswith(".tmp"):  # a write in progress, never read by ted
                    self.writes_seen.add(path.name)
                    continue
                try:
                    raw = path.read_bytes()
                except FileNotFoundError:
                    continue  # replaced or removed between the listing and the read
                try:
                    payload = json.loads(raw)
                    Library.from_dict(payload["library"] if path.name.endswith(".checkpoint.json") else payload)
                    self.parsed += 1
                except Exception as err:  # noqa: BLE001  (any failure to parse is the finding)
                    self.errors.append(f"{path.name}: {type(err).__name__}: {err}")
            time.sleep(0.0005)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=10)


@dataclass
class Kill:
    """Kills `proc` when its trigger fires; `fired` says what was happening at that moment."""

    proc: subprocess.Popen[str]
    kind: str
    detail: object
    fired: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    first_request: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fire(self, what: str) -> None:
        with self.lock:
            if self.fired is None and self.proc.poll() is None:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.fired = what

    def on_request(self, stage: str) -> None:
        with self.lock:
            self.first_request = self.first_request or time.perf_counter()
            self.counts[stage] = self.counts.get(stage, 0) + 1
            count = self.counts[stage]
        if self.kind == "request" and self.detail == (stage, count):
            self.fire(f"{stage} request {count} in flight")


def run_with_kill(env: Deterministic, out: Path, kind: str, detail: object, resume: bool) -> Kill:
    proc = start_ted(env.args(out, *(["--resume"] if resume else [])), cwd=out.parent)
    kill = Kill(proc, kind, detail)
    env.sim.on_request = kill.on_request
    ckpt = checkpoint_path(out)
    pattern = f".{ckpt.name}.*.tmp"
    start, stale = inode_of(ckpt), {p.name for p in out.parent.glob(pattern)}  # left by the previous kill
    tmps: set[str] = set()
    inodes: set[int] = set()
    try:
        while proc.poll() is None and kill.fired is None:
            if kind == "after" and kill.first_request and time.perf_counter() - kill.first_request >= float(detail):  # type: ignore[arg-type]
                kill.fire(f"{detail}s after the first request")
            if kind == "checkpoint":
                # A write shows as its temp file; one too quick to catch shows as the checkpoint's new inode.
                tmps |= {p.name for p in out.parent.glob(pattern)} - stale
                inode = inode_of(ckpt)
                if inode is not None and inode != start:
                    inodes.add(inode)
                if len(tmps) >= int(detail):  # type: ignore[call-overload]
                    kill.fire(f"checkpoint write {detail} in progress")
                elif len(inodes) >= int(detail):  # type: ignore[call-overload]
                    kill.fire(f"checkpoint write {detail} just done")
            time.sleep(0.0002 if kind == "checkpoint" else 0.005)
        proc.communicate(timeout=120)
    finally:
        env.sim.on_request = None
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return kill


def inode_of(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


def position(out: Path) -> tuple[int, int] | None:
    """(epoch, batch) of the checkpoint on disk, or None before the first one."""
    ckpt = checkpoint_path(out)
    if not ckpt.exists():
        return None
    payload = json.loads(ckpt.read_text(encoding="utf-8"))
    return payload["epoch"], payload["batch"]


def test_ten_sigkills_then_resume_equal_an_uninterrupted_run(deterministic: Deterministic, tmp_path: Path) -> None:
    out = tmp_path / "run" / "library.json"
    out.parent.mkdir()
    watcher = Watcher(out.parent)
    watcher.start()
    moments: list[str] = []
    try:
        for number, (kind, detail) in enumerate(KILLS):
            kill = run_with_kill(deterministic, out, kind, detail, resume=number > 0)
            assert kill.fired, f"kill {number + 1} ({kind} {detail}) never fired: the run ended first ({kill.proc.returncode}); {moments}"
            assert kill.proc.returncode == -signal.SIGKILL
            torn = sorted(p.name for p in out.parent.glob("*.tmp"))  # a write the kill cut short
            moments.append(f"{kill.fired}{' (left ' + ', '.join(torn) + ')' if torn else ''} -> checkpoint at {position(out)}")
        final = start_ted(deterministic.args(out, "--resume"), cwd=out.parent)
        _, stderr = final.communicate(timeout=180)
    finally:
        watcher.stop()
    print("\n" + "\n".join(moments) + f"\nwatcher: {watcher.parsed} parses of the output folder's files, {len(watcher.errors)} failures")
    assert final.returncode == 0, stderr[-3000:]
    assert watcher.errors == []
    assert watcher.parsed > 100  # the watcher did look, many times
    assert comparable(out) == deterministic.reference
    assert sorted(p.name for p in out.parent.iterdir()) == sorted([calls_path(out).name, "library.json"])  # no checkpoint, no temporary files left
    assert len({m.rsplit(" at ", 1)[1] for m in moments}) >= 4  # the kills landed across the run, not in one spot


def test_ctrl_c_stops_cleanly_keeps_the_checkpoint_and_resume_finishes(deterministic: Deterministic, tmp_path: Path) -> None:
    out = tmp_path / "library.json"
    proc = start_ted(deterministic.args(out), cwd=tmp_path)
    interrupted: list[float] = []

    def interrupt_mid_batch(stage: str) -> None:  # Ctrl-C with a checkpoint on disk and calls in flight
        if stage == "student" and not interrupted and position(out) is not None:
            interrupted.append(time.perf_counter())
            os.kill(proc.pid, signal.SIGINT)

    deterministic.sim.on_request = interrupt_mid_batch
    try:
        _, stderr = proc.communicate(timeout=120)
    finally:
        deterministic.sim.on_request = None
    stopped_in = time.perf_counter() - interrupted[0]
    assert proc.returncode not in (0, -signal.SIGINT), stderr[-2000:]  # exited by itself, non-zero
    assert "Traceback" not in stderr
    assert "never awaited" not in stderr and "during asyncio.run() shutdown" not in stderr, stderr[-2000:]  # in-flight calls cancelled and awaited
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0] == stderr.strip().splitlines()[-1]
    assert "interrupted" in errors[0] and "--resume" in errors[0] and str(checkpoint_path(out)) in errors[0]
    print(f"\nCtrl-C: exited {stopped_in:.2f}s after SIGINT: {errors[0]}")
    assert stopped_in < 10
    assert position(out) is not None and not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([checkpoint_path(out).name, calls_path(out).name])

    resumed = start_ted(deterministic.args(out, "--resume"), cwd=tmp_path)
    _, stderr = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, stderr[-2000:]
    assert comparable(out) == deterministic.reference
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([calls_path(out).name, "library.json"])


def test_ctrl_c_before_the_first_checkpoint_says_nothing_was_saved(deterministic: Deterministic, tmp_path: Path) -> None:
    out = tmp_path / "library.json"
    proc = start_ted(deterministic.args(out), cwd=tmp_path)

    def interrupt_first_call(stage: str) -> None:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGINT)
            deterministic.sim.on_request = None

    deterministic.sim.on_request = interrupt_first_call
    try:
        _, stderr = proc.communicate(timeout=120)
    finally:
        deterministic.sim.on_request = None
    assert proc.returncode not in (0, -signal.SIGINT) and "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "interrupted" in errors[0] and "nothing" in errors[0] and "--resume" not in errors[0]
    assert {p.name for p in tmp_path.iterdir()} <= {calls_path(out).name}  # at most the calls that were made, on record


def test_a_kill_in_the_middle_of_a_write_leaves_the_old_file_whole(tmp_path: Path) -> None:
    """The mechanism under every checkpoint and library write, killed mid-write for certain: a write
    of 300 MB through `atomic_write` is slow enough to be caught with its temp file half full."""
    target = tmp_path / "library.json"
    old = Library(name="old")
    old.add("Check the units of the final answer against the question.", 1)
    old.save(target)
    before = target.read_bytes()
    writer = subprocess.Popen(
        [sys.executable, "-c", "import sys; from pathlib import Path; from ted.files import atomic_write; "
         "atomic_write(Path(sys.argv[1]), b'{' * 300_000_000)", str(target)],  # fmt: skip
        cwd=REPO,
    )
    try:
        deadline = time.perf_counter() + 60
        while not any(p.stat().st_size > 0 for p in tmp_path.glob(".library.json.*.tmp")):
            assert writer.poll() is None and time.perf_counter() < deadline, "the write ended before it could be interrupted"
            time.sleep(0.001)
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    torn = list(tmp_path.glob(".library.json.*.tmp"))
    assert len(torn) == 1 and 0 < torn[0].stat().st_size < 300_000_000  # the kill did land mid-write
    assert target.read_bytes() == before and Library.load(target).name == "old"
    assert remove_stale_temps(target) == torn and sorted(p.name for p in tmp_path.iterdir()) == ["library.json"]

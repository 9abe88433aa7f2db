"""Guards around a run's output: one writer per `--out`, and never an input overwritten.

Two `ted distill` runs with the same `--out` would share one checkpoint (the last writer wins)
and both report success. A lock file next to the output, held with `flock` for the life of the
run, refuses the second run with one line naming the owner (PID and host, written in the file).
The kernel releases the lock when its process dies, however it dies, so a lock left by a killed
run, a run in a container that is gone, or a PID the system has since reused is simply taken over:
no PID is ever guessed at. (`filelock` truncates the file on every attempt, which would erase the
owner's name before the refusal could show it.) Separately, an `--out` (or its checkpoint) that
resolves to an input file of the run is refused even with `--force`: `--force` overwrites a
previous output, never data.
"""

from __future__ import annotations

import atexit
import errno
import fcntl
import json
import os
import socket
from collections.abc import Iterable
from pathlib import Path

from ted.errors import ConfigError
from ted.files import open_in_place


def lock_path(out: Path) -> Path:
    return out.with_name(out.name + ".lock")


class RunLock:
    """An exclusive lock on `out`, held until `release()` (also called at interpreter exit)."""

    def __init__(self, out: Path) -> None:
        self.path = lock_path(out)
        self.out = out
        self.held = False
        self.stale_pid: int | None = None  # the PID of a run that is gone, whose lock file was taken over
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        for _ in range(3):
            fd = open_in_place(self.path, os.O_RDWR | os.O_CREAT, ConfigError, "run's lock")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                owner = _owner(fd)
                os.close(fd)
                if err.errno not in (errno.EAGAIN, errno.EACCES):  # ENOLCK: a file system without locks
                    raise ConfigError(f"cannot lock {self.path} ({err.strerror}); choose an --out on a local disk") from None
                who = f"PID {owner[0]}" + ("" if owner[1] == socket.gethostname() else f" on {owner[1]}") if owner else "a process"
                raise ConfigError(
                    f"another ted run ({who}) is writing {self.out} and still running (it holds the lock {self.path}); "
                    "wait for it to finish or choose another --out"
                ) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the owner removed the file between our open and our lock: try the new one
                os.close(fd)
                continue
            previous = _owner(fd)
            self.stale_pid = previous[0] if previous else None
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode(), 0)
            self._fd, self.held = fd, True
            atexit.register(self.release)
            return self
        raise ConfigError(f"cannot take the lock {self.path}: another run keeps recreating it; choose another --out")

    def release(self) -> None:
        if self.held and self._fd is not None:
            self.held = False
            self.path.unlink(missing_ok=True)  # while still locked: a waiting run then locks a fresh file
            os.close(self._fd)
            self._fd = None


def _owner(fd: int) -> tuple[int, str] | None:
    """(PID, host) written in a lock file, or None for an empty or unreadable one."""
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
        return int(data["pid"]), str(data["host"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _same(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def refuse_inputs_as_output(outputs: Iterable[Path], inputs: dict[str, str | None]) -> None:
    """Refuse (even with --force) when an output path resolves to an input file of the run."""
    outputs = list(outputs)
    for option, value in inputs.items():
        if not value:
            continue
        source = Path(value).expanduser()
        for out in outputs:
            if _same(out, source) or out.resolve() == source.resolve():
                raise ConfigError(
                    f"--out {outputs[0]} would overwrite the {option} input {value}; choose another --out (--force never overwrites inputs)"
                )

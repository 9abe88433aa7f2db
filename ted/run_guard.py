"""Guards around a run's output: one writer per `--out`, and never an input overwritten.

Two `ted distill` runs with the same `--out` would share one checkpoint (the last writer wins)
and both report success. An exclusive lock file next to the output, holding the owner's PID and
host, refuses the second run with one line; a lock left by a killed run is recognised because its
PID is gone, and taken over. Separately, an `--out` (or its checkpoint) that resolves to an input
file of the run is refused even with `--force`: `--force` overwrites a previous output, never data.
"""

from __future__ import annotations

import atexit
import json
import os
import socket
from collections.abc import Iterable
from pathlib import Path

from ted.errors import ConfigError


def lock_path(out: Path) -> Path:
    return out.with_name(out.name + ".lock")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


class RunLock:
    """An exclusive lock on `out`, held until `release()` (also called at interpreter exit)."""

    def __init__(self, out: Path) -> None:
        self.path = lock_path(out)
        self.out = out
        self.held = False
        self.stale_pid: int | None = None  # the PID of a killed run whose lock was taken over

    def acquire(self) -> RunLock:
        me = json.dumps({"pid": os.getpid(), "host": socket.gethostname()})
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                if owner is not None and (owner[1] != socket.gethostname() or _alive(owner[0])):
                    where = "" if owner[1] == socket.gethostname() else f" on {owner[1]}"
                    raise ConfigError(
                        f"another ted run (PID {owner[0]}{where}) is writing {self.out} (lock {self.path}); "
                        "wait for it to finish or choose another --out"
                    ) from None
                self.stale_pid = owner[0] if owner else None
                self.path.unlink(missing_ok=True)  # a killed run's lock (its PID is gone), or an unreadable one
                continue
            with os.fdopen(fd, "w") as handle:
                handle.write(me)
            self.held = True
            atexit.register(self.release)
            return self
        raise ConfigError(f"cannot take the lock {self.path}: another run keeps recreating it; choose another --out")

    def _owner(self) -> tuple[int, str] | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return int(data["pid"]), str(data["host"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def release(self) -> None:
        if self.held:
            self.held = False
            owner = self._owner()
            if owner is not None and owner[0] == os.getpid():
                self.path.unlink(missing_ok=True)


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

"""Files ted writes: whole or not at all, and where its caches live; files it reads: regular and bounded.

The bottom layer, so the library, the tokenizer cache and the checkpoint all write the same way.
"""

from __future__ import annotations

import errno
import glob
import json
import math
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any, BinaryIO


_UMASK = os.umask(0o022)  # read once, at import (setting it is the only way to read it, and is not thread-safe)
os.umask(_UMASK)


def cache_dir() -> Path:
    """Where ted keeps what it can rebuild (the assembled bundled model, token counts): $TED_CACHE, else
    the platform's user cache folder (platformdirs: ~/.cache/ted or $XDG_CACHE_HOME/ted on Linux,
    ~/Library/Caches/ted on macOS, %LOCALAPPDATA%\\ted\\Cache on Windows)."""
    if os.environ.get("TED_CACHE"):
        return Path(os.environ["TED_CACHE"])
    from platformdirs import user_cache_path  # only when no TED_CACHE is set

    return user_cache_path("ted", appauthor=False)


def open_regular(path: Path, error: type[Exception], what: str | None = None) -> BinaryIO:
    """`path` opened for reading, refused with `error` unless it is a regular file: a FIFO would block
    for ever, a device (`/dev/zero`) never ends. `what` names the file in the message (default: its path)."""
    what = what or str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO opens at once instead of waiting for a writer
    except FileNotFoundError:
        raise error(f"{what}: no such file") from None
    except OSError as err:
        raise error(f"{what}: cannot read it ({err.strerror or err})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file (a FIFO, a device or a socket)"
        raise error(f"{what}: {kind}; give a regular file")
    return os.fdopen(fd, "rb")


def open_in_place(path: Path, flags: int, error: type[Exception], what: str) -> int:
    """A file ted keeps writing in place (the run lock, the call log), opened without following a link
    and only if it is a regular file. A link planted where ted writes (a shared run folder, a cloned
    repository: `library.json.lock -> ~/.bashrc`) would have ted truncate the file it points to; a FIFO
    or a folder there would hang or crash the run. `what` says what the file is, for the message."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise error(f"{path} is a symbolic link; ted writes its {what} there itself, never through a link: remove it") from None
        raise error(f"cannot open {path}, the {what} ({err.strerror or err}); remove it or choose another --out") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise error(f"{path} is not a regular file; ted writes its {what} there: remove it or choose another --out")
    return fd


def read_capped(path: Path, cap: int, error: type[Exception], what: str | None = None) -> bytes:
    """The bytes of `path`, a regular file (`open_regular`) of at most `cap` bytes; a bigger one is
    refused with `error` before it is read."""
    what = what or str(path)
    with open_regular(path, error, what) as handle:
        data = handle.read(cap + 1)
    if len(data) > cap:
        raise error(f"{what}: over the {cap:,}-byte cap for such a file; is it the right file?")
    return data


def nesting(value: object) -> int:
    """How deeply `value` (parsed JSON or TOML) nests lists and dicts, counted without recursion: a
    file nested hundreds deep parses, then breaks every recursive walk over it (validation, scrubbing)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def parse_json(raw: str | bytes, error: type[Exception], origin: str, max_nesting: int) -> Any:
    """Parse untrusted JSON strictly: one meaning or none. A key given twice (which value counts?),
    NaN and Infinity (not JSON, and they poison every sum), a number too big for a float, and
    nesting deeper than `max_nesting` are refused with `error`, not silently taken."""

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [key for key, _ in pairs]
        if len(set(keys)) != len(keys):
            twice = next(key for key in keys if keys.count(key) > 1)
            raise ValueError(f"the key {twice!r} appears twice in one object")
        return dict(pairs)

    def finite(text: str) -> float:
        number = float(text)
        if not math.isfinite(number):
            raise ValueError(f"the number {text[:20]} is too large")
        return number

    def constant(name: str) -> Any:
        raise ValueError(f"{name} is not a JSON number")

    too_deep = error(f"{origin}: JSON nested too deeply (over {max_nesting} levels); is it the right file?")
    try:
        data = json.loads(raw, object_pairs_hook=unique, parse_float=finite, parse_constant=constant)
    except json.JSONDecodeError as err:
        raise error(f"{origin}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})") from None
    except ValueError as err:
        raise error(f"{origin}: not valid JSON ({err})") from None
    except RecursionError:
        raise too_deep from None
    if nesting(data) > max_nesting:
        raise too_deep
    return data


def make_folder(path: Path) -> Path:
    """`mkdir -p path`, naming the file in the way: mkdir says only "File exists" when `--out x/y`
    meets a file, a FIFO or /dev/null where a folder should be."""
    blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise NotADirectoryError(errno.ENOTDIR, f"{blocker} is there and is not a folder")
    path.mkdir(parents=True, exist_ok=True)
    return path


def atomic_write(path: Path, text: str | bytes) -> Path:
    """Write `text` to `path` via a temp file in the same folder, fsync, then `os.replace`."""
    make_folder(path.parent)
    data = text.encode("utf-8") if isinstance(text, str) else text
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # as any file the user writes (mkstemp's 0600 made outputs unreadable to others)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def remove_stale_temps(*paths: Path) -> list[Path]:
    """Delete the temp files `atomic_write` leaves next to each of `paths` when its process is killed mid-write."""
    stale = [temp for path in paths if path.parent.is_dir() for temp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp")]
    for temp in stale:
        temp.unlink(missing_ok=True)
    return stale


def write_folder(out: Path, files: dict[str, str | bytes]) -> Path:
    """Write several files as one: into a temp folder next to `out`, then renamed into place.

    A full or read-only disk fails while writing the temp folder, which is removed: `out` is left
    as it was, never half-written. A new `out` appears by one rename; into an existing folder each
    file is moved by its own rename (same file system: no copy, no space needed).
    """
    out = Path(out)
    make_folder(out.parent)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"{out} is there and is not a folder")
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        for name, data in files.items():
            target = staging / name
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as handle:
                handle.write(data.encode("utf-8") if isinstance(data, str) else data)
                handle.flush()
                os.fsync(handle.fileno())
        if not out.exists():
            os.replace(staging, out)
            return out
        for name in files:
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / name, out / name)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return out

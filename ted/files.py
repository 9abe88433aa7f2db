"""Files ted writes: whole or not at all, and where its caches live.

The bottom layer, so the library, the tokenizer cache and the checkpoint all write the same way.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from pathlib import Path


def cache_dir() -> Path:
    """Where ted keeps what it can rebuild (the assembled bundled model, token counts): $TED_CACHE, else ~/.cache/ted."""
    return Path(os.environ.get("TED_CACHE") or Path.home() / ".cache" / "ted")


def atomic_write(path: Path, text: str | bytes) -> Path:
    """Write `text` to `path` via a temp file in the same folder, fsync, then `os.replace`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode("utf-8") if isinstance(text, str) else text
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
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
    out.parent.mkdir(parents=True, exist_ok=True)
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

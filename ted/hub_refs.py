"""Library references and versions: what a reference string names, and how version tags sort.

A library reference is one string, resolved the same way everywhere (`ted show`, `ted chat`,
`ted diff`, the eval tasks, the Space) by `ted.hub.load_library(ref)`:

* a local path that exists: a `library.json` file, or a folder holding one;
* `org/name`: the newest version of the Hub dataset (the highest `vN` / `vX.Y.Z` tag);
* `org/name@v2`: that version (any tag, branch or full commit sha of the repo).

The rule: a string is a local path only if it exists on disk. `org/name` is a Hub reference
unless a folder `org/name` exists here. A string that looks like a path (starts with `.`, `/`, `~`,
or ends in `.json`) but does not exist is reported as a missing file, never sent to the Hub.
Anything else must be a well-formed Hub id: letters, digits, `-`, `_`, `.`; no `..`, `--`, empty
or dot segments, no backslashes; so a reference can never walk out of the Hub cache. Callers that
take references from strangers (the Space) pass `allow_local=False`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ted.errors import LibraryError
from ted.repo_ids import check_repo_id, check_revision

_VERSION_RE = re.compile(r"^v(\d{1,9})(?:\.(\d{1,9}))?(?:\.(\d{1,9}))?\Z", re.ASCII)


@dataclass(frozen=True)
class LibraryRef:
    """A parsed library reference: a local file, or a Hub dataset and an optional version."""

    kind: Literal["local", "hub"]
    path: Path | None = None
    repo_id: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        if self.kind == "local":
            return str(self.path)
        return f"{self.repo_id}@{self.version}" if self.version else str(self.repo_id)



def parse_ref(ref: str | os.PathLike[str], *, allow_local: bool = True) -> LibraryRef:
    """Classify a reference (see the module docstring for the rule). Raises `LibraryError`."""
    if isinstance(ref, os.PathLike):
        ref = os.fspath(ref)
    text = ref
    if not text.strip():
        raise LibraryError("empty library reference: give a library.json, a folder, or org/name[@version]")
    if allow_local and Path(text).expanduser().exists():
        return LibraryRef("local", path=Path(text).expanduser())
    if text != text.strip():  # `org/name@v1\n` pasted with its newline: refused, never trimmed into another reference
        raise LibraryError(f"{text!r}: a reference with spaces or a newline around it; give it exactly (org/name[@version] or a path)")
    if text.startswith((".", "/", "~")) or text.endswith(".json") or "\\" in text:
        if not allow_local:
            raise LibraryError(f"{text!r}: local paths are not accepted here; give a Hub reference org/name[@version]")
        raise LibraryError(f"{text}: no such file or folder (a Hub reference looks like org/name or org/name@v2)")
    repo_part, _, version = text.partition("@")
    if ".." in text or "//" in text:
        raise LibraryError(f"{text!r}: '..' and empty segments are not allowed in a Hub reference (path traversal)")
    check_repo_id(repo_part)
    if "@" in text:
        check_revision(version)
    return LibraryRef("hub", repo_id=repo_part, version=version or None)


def version_key(tag: str) -> tuple[int, int, int] | None:
    """Sort key of a version tag (`v3` < `v10`, `v1.2.0` < `v1.10.0`), or None if not a version."""
    match = _VERSION_RE.match(tag)
    if not match:
        return None
    major, minor, patch = (int(g) if g else 0 for g in match.groups())
    return major, minor, patch


def next_version(tags: list[str]) -> str:
    """`v1` for a new repo, else one more than the highest major version: v2 → v3, v1.4.0 → v2."""
    majors = [key[0] for key in map(version_key, tags) if key is not None]
    return f"v{max(majors, default=0) + 1}"


def newest_version(tags: list[str]) -> str | None:
    versions = [t for t in tags if version_key(t) is not None]
    return max(versions, key=lambda t: version_key(t) or (0, 0, 0)) if versions else None

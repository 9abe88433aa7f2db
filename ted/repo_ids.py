"""What a Hub dataset id and a version tag may look like: checked before any request, and by the
card (which names the training data's Hub id only when it is one). Its own module, so the card and
the Hub client both use it without importing each other."""

from __future__ import annotations

import re

from ted.errors import LibraryError

_NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?\Z")
_REVISION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")


def check_repo_id(repo_id: str) -> str:
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(_NAME_RE.match(p) and "--" not in p and ".." not in p for p in parts):
        raise LibraryError(
            f"{repo_id!r} is neither an existing local path nor a Hub dataset id like org/name "
            "(letters, digits, '-', '_', '.'; no '..' or '--')"
        )
    return repo_id


def check_revision(version: str) -> str:
    if not _REVISION_RE.match(version) or ".." in version:
        raise LibraryError(f"{version!r} is not a valid version: use a tag like v2 or v1.0.0")
    return version

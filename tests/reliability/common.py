"""Shared helpers of the reliability tests: run `ted` as a user does, fingerprint folders, check errors."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from tests.support import CHECKOUT, assert_one_line_error, run_ted, ted_command

__all__ = ["REPO", "assert_one_line_error", "clean_env", "ted", "ted_command", "tree_digest"]

REPO = CHECKOUT


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a `ted` subprocess: no Hub or OpenAI settings leak in from the machine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_", "OPENAI_", "TED_"))}
    env.update(NO_COLOR="1", COLUMNS="200", PYTHONUNBUFFERED="1", HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_OFFLINE="0",
               HF_HUB_DISABLE_XET="1")  # the local Hub has no Xet storage
    env.update(extra or {})
    return env


def ted(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 120, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `ted ARGS` in `cwd` with a clean environment and wait for it."""
    return run_ted(*args, cwd=cwd, env=clean_env(env), timeout=timeout, input=input)


def tree_digest(*roots: Path) -> dict[str, str]:
    """sha256 of every file (and a marker for every folder) under `roots`: equal digests, nothing changed."""
    digest: dict[str, str] = {}
    for root in roots:
        if not root.exists():
            digest[str(root)] = "absent"
            continue
        for path in sorted(root.rglob("*")):
            if path.is_dir():
                digest[str(path)] = "dir"
            elif path.is_file():
                digest[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digest

"""Shared helpers of the reliability tests: run `ted` as a user does, fingerprint folders, check errors."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a `ted` subprocess: no Hub or OpenAI settings leak in from the machine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_", "OPENAI_", "TED_"))}
    env.update(NO_COLOR="1", COLUMNS="200", PYTHONUNBUFFERED="1", HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_OFFLINE="0",
               HF_HUB_DISABLE_XET="1")  # the local Hub has no Xet storage
    env.update(extra or {})
    return env


def ted_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "ted.cli", *args]


def ted(*args: str, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `ted ARGS` in `cwd` and wait for it."""
    return subprocess.run(ted_command(*args), cwd=cwd, env=clean_env(env), capture_output=True, text=True, timeout=timeout)


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


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *phrases: str) -> str:
    """A user error: non-zero exit, exactly one line on stderr (`error: …`), no traceback, the expected words."""
    assert proc.returncode != 0, f"exit 0 for bad input; stdout: {proc.stdout[-500:]}"
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-3000:]
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
    return lines[0]

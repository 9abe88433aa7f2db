"""What CLI and server tests share: run `ted` as a user does, check a user error, find a free port.

    proc = run_ted("show", "missing.json", cwd=tmp_path)
    assert_one_line_error(proc, "missing.json")
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path


def ted_command(*args: str) -> list[str]:
    """`ted ARGS` as a subprocess command line (this interpreter, so the checkout's code runs)."""
    return [sys.executable, "-m", "ted.cli", *args]


def run_ted(
    *args: str, cwd: Path | str | None = None, env: Mapping[str, str] | None = None, timeout: float = 120, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `ted ARGS` and wait for it; `env` None inherits this process's environment."""
    return subprocess.run(
        ted_command(*args), cwd=cwd, env=None if env is None else dict(env), input=input, capture_output=True, text=True, timeout=timeout
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *phrases: str) -> str:
    """A user error: non-zero exit, exactly one line on stderr (`error: …`), no traceback, the expected words."""
    assert proc.returncode != 0, f"exit 0 for bad input; stdout: {proc.stdout[-500:]}"
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-3000:]
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
    return lines[0]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_gradio_config(process: subprocess.Popen, port: int, timeout: float = 120) -> dict:
    """Poll a Gradio app started as `process` until it serves `/config`; fail if it exits or never comes up."""
    import json
    import time
    import urllib.request

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=2) as response:
                return json.load(response)
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"the Gradio app did not serve on port {port} within {timeout:.0f} s")

"""What CLI and server tests share: run `ted` as a user does, check a user error, find a free port
(the bundled model's `llama_cpp.server` is `tests.support.llama`), build a small library, and name
the checkout (`CHECKOUT`, computed here once).

    proc = run_ted("show", "missing.json", cwd=tmp_path)
    assert_one_line_error(proc, "missing.json")

    proc = run_ted("eval", …, cwd=tmp_path, env=lm_eval_env(tmp_path), timeout=600)
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ted.library import Library


CHECKOUT = Path(__file__).resolve().parents[2]


def ted_command(*args: str) -> list[str]:
    """`ted ARGS` as a subprocess command line (this interpreter; `ted_env` makes it run this checkout's code)."""
    return [sys.executable, "-m", "ted.cli", *args]


def ted_env(env: Mapping[str, str] | None) -> dict[str, str]:
    """The environment of a `ted` subprocess: `env` (None: this process's), importing `ted` from this
    checkout when no PYTHONPATH says otherwise, whichever checkout an editable install points at."""
    return {"PYTHONPATH": str(CHECKOUT), **(os.environ if env is None else env)}


def run_ted(
    *args: str, cwd: Path | str | None = None, env: Mapping[str, str] | None = None, timeout: float = 120, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `ted ARGS` and wait for it; `env` None inherits this process's environment."""
    return subprocess.run(ted_command(*args), cwd=cwd, env=ted_env(env), input=input, capture_output=True, text=True, timeout=timeout)


def start_ted(*args: str, cwd: Path | str | None = None, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
    """Start `ted ARGS` without waiting (a server, or a run to interrupt): stderr piped as text, stdout discarded."""
    return subprocess.Popen(ted_command(*args), cwd=cwd, env=ted_env(env), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def environ(*unset: str, **extra: str) -> dict[str, str]:
    """This process's environment without the variables named in `unset`, with `extra` added."""
    return {**{k: v for k, v in os.environ.items() if k not in unset}, **extra}


def lm_eval_env(cwd: Path | str, **extra: str) -> dict[str, str]:
    """For a `ted` command that runs lm-eval: offline, its request cache in `cwd`, and no library or
    data folder taken from the machine's TED_LIBRARY / TED_DATA_DIR."""
    cache = str(Path(cwd) / "lm_cache")
    return environ("TED_LIBRARY", "TED_DATA_DIR", LM_HARNESS_CACHE_PATH=cache, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", COLUMNS="200", **extra)


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
        if process.poll() is not None:
            output = process.stderr.read() if process.stderr else ""
            raise AssertionError(output.decode(errors="replace") if isinstance(output, bytes) else output)
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=2) as response:
                return json.load(response)
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"the Gradio app did not serve on port {port} within {timeout:.0f} s")


def make_library(texts: Iterable[str], *, save: Path | None = None, step: int = 1, **fields: Any) -> Library:
    """A library holding `texts` as lessons (each added at `step`), with `fields` of the file
    (name, budget, …); written to `save` too when given. The one way tests build a small library."""
    from ted.library import Library

    library = Library(**fields)
    for text in texts:
        library.add(text, step=step)
    if save is not None:
        library.save(save)
    return library

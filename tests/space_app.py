"""Start the Space the way a user does (`python space/app.py`) for the integration and browser tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.processes import stop

REPO = Path(__file__).resolve().parent.parent
APP = REPO / "space" / "app.py"
STARTUP_TIMEOUT_S = 180
_RUNNING = re.compile(rb"Running on local URL:\s+(http://\S+)")


@contextmanager
def running_space(env: dict[str, str], log_path: Path) -> Iterator[str]:
    """Run space/app.py on 127.0.0.1 with `env` added; yield the URL it reports, stop it after.

    Gradio picks the first free port from 7860 up and prints it, as it does for a user.
    """
    full_env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1", **env}
    full_env.pop("GRADIO_SERVER_PORT", None)
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, str(APP)], cwd=REPO, env=full_env, stdout=log, stderr=subprocess.STDOUT)
    try:
        started = time.perf_counter()
        while not (running := _RUNNING.search(log_path.read_bytes())):
            if process.poll() is not None or time.perf_counter() - started > STARTUP_TIMEOUT_S:
                tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
                pytest.fail(f"space/app.py did not come up:\n{tail}")
            time.sleep(0.3)
        yield running.group(1).decode().rstrip("/")
    finally:
        stop(process)


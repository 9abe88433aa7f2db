"""Shared fixtures.

`llama_server`: a real OpenAI-compatible `llama_cpp.server` serving the bundled Gemma 3 270M on
127.0.0.1, started once per test session. Use it for any integration test that needs an
OpenAI-compatible endpoint (the OpenAI backend, lm-eval's `local-chat-completions`, the CLI):

    def test_x(llama_server):
        model = load_model(llama_server.spec)          # "openai:gemma-3-270m@http://127.0.0.1:PORT/v1"
        url, name = llama_server                       # or unpack base URL and served model name

The server uses the Gemma turn format with the system prompt folded into the first user turn
(`ted.models.llama_cpp.GEMMA_CHAT_CONFIG`): llama.cpp's own "gemma" format drops system
messages, which would silently drop a TED library. It ignores `n` (returns one choice) and
serves any model name as its one model. Streaming requests are not cut short by concurrent
requests (`--interrupt_requests False`). Its log is in the session's temp dir, and the last
lines are shown if it fails to start.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import pytest

from tests import support
from tests.processes import stop

# huggingface_hub sends LFS-mode files through Xet whenever hf_xet is installed; the local Hub
# server (tests/integration/hub_server.py) has no Xet CAS, so tests take the LFS path the Hub also
# accepts. Set before huggingface_hub is imported (it reads the switch at import time).
os.environ.setdefault("HF_HUB_DISABLE_XET", "1")

SERVED_MODEL = "gemma-3-270m"
STARTUP_TIMEOUT_S = 120


class LlamaServer(NamedTuple):
    base_url: str  # http://127.0.0.1:PORT/v1
    model: str  # the name the server reports in /v1/models

    @property
    def spec(self) -> str:
        """The ted model spec that reaches this server through the OpenAI backend."""
        return f"openai:{self.model}@{self.base_url}"


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for "server unreachable" tests)."""
    return support.free_port()


def _served_models(base_url: str) -> list[str] | None:
    try:
        with urllib.request.urlopen(f"{base_url}/models", timeout=2) as response:
            return [m["id"] for m in json.load(response)["data"]]
    except (OSError, ValueError, KeyError):
        return None


@contextmanager
def serve_llama(workdir: Path, *chat_format: str) -> Iterator[LlamaServer]:
    """`python -m llama_cpp.server` with the bundled model and the given `--chat_format …` arguments."""
    from ted.models.llama_cpp import bundled_model_path

    port = support.free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    command = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", bundled_model_path(),
        "--model_alias", SERVED_MODEL,
        *chat_format,
        "--n_ctx", "4096",
        "--interrupt_requests", "False",
        "--host", "127.0.0.1",
        "--port", str(port),
    ]  # fmt: skip
    log_path = workdir / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        started = time.perf_counter()
        while (models := _served_models(base_url)) is None:
            if process.poll() is not None or time.perf_counter() - started > STARTUP_TIMEOUT_S:
                tail = "\n".join(Path(log_path).read_text(errors="replace").splitlines()[-20:])
                pytest.fail(f"llama_cpp.server did not come up on port {port}:\n{tail}")
            time.sleep(0.2)
        print(f"\nllama_cpp.server up in {time.perf_counter() - started:.1f}s at {base_url}", file=sys.stderr)
        yield LlamaServer(base_url, models[0])
    finally:
        stop(process)


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """Start `python -m llama_cpp.server` with the bundled model; yield its URL and model name."""
    from ted.models.llama_cpp import GEMMA_CHAT_CONFIG

    workdir = tmp_path_factory.mktemp("llama_server")
    chat_config = workdir / "gemma_chat_config.json"
    chat_config.write_text(json.dumps(GEMMA_CHAT_CONFIG))
    with serve_llama(workdir, "--chat_format", "hf-tokenizer-config", "--hf_tokenizer_config_path", str(chat_config)) as server:
        yield server

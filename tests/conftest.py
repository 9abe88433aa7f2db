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

import os
from collections.abc import Iterator

import pytest

from tests import support
from tests.support.llama import LlamaServer, gemma_chat_format, serve_llama

# huggingface_hub sends LFS-mode files through Xet whenever hf_xet is installed; the local Hub
# server (tests/integration/hub_server.py) has no Xet CAS, so tests take the LFS path the Hub also
# accepts. Set before huggingface_hub is imported (it reads the switch at import time).
os.environ.setdefault("HF_HUB_DISABLE_XET", "1")


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for "server unreachable" tests)."""
    return support.free_port()


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """Start `python -m llama_cpp.server` with the bundled model; yield its URL and model name."""
    workdir = tmp_path_factory.mktemp("llama_server")
    with serve_llama(workdir, *gemma_chat_format(workdir)) as server:
        yield server

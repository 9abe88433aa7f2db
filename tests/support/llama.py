"""A real `llama_cpp.server` serving the bundled Gemma 3 270M on 127.0.0.1: the one start-up that the
`llama_server` fixture (tests/conftest.py), the system-probe tests and the TTFT bench share.

    with serve_llama(workdir, *gemma_chat_format(workdir)) as server:
        model = load_model(server.spec)
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from tests.processes import stop
from tests.support import free_port

SERVED_MODEL = "gemma-3-270m"


class LlamaServer(NamedTuple):
    base_url: str  # http://127.0.0.1:PORT/v1
    model: str  # the name the server reports in /v1/models

    @property
    def spec(self) -> str:
        """The ted model spec that reaches this server through the OpenAI backend."""
        return f"openai:{self.model}@{self.base_url}"


def assert_portable(system_info: str) -> None:
    """llama.cpp's system-info line (`CPU : SSE3 = 1 | AVX2 = 1 | …`, as `llama_print_system_info` and
    llama-server's log print it) shows a portable build: no AVX-512, AMX or AVX-VNNI; AVX2/FMA/F16C on x86-64."""
    import platform

    features = dict(part.strip().rsplit(" = ", 1) for part in system_info.split("|") if " = " in part)
    enabled = {name.split(":")[-1].strip() for name, value in features.items() if value.strip() == "1"}
    assert not {name for name in enabled if name.startswith(("AMX", "AVX512", "AVX_VNNI"))}, system_info
    if platform.machine() == "x86_64":
        assert {"AVX2", "FMA", "F16C"} <= enabled, system_info


def gemma_chat_format(workdir: Path) -> list[str]:
    """The server arguments for the Gemma turn format with the system prompt folded into the first user turn
    (`ted.models.llama_cpp.GEMMA_CHAT_CONFIG`; llama.cpp's own "gemma" format drops system messages)."""
    from ted.models.llama_cpp import GEMMA_CHAT_CONFIG

    config = workdir / "gemma_chat_config.json"
    config.write_text(json.dumps(GEMMA_CHAT_CONFIG))
    return ["--chat_format", "hf-tokenizer-config", "--hf_tokenizer_config_path", str(config)]


def _served_models(base_url: str) -> list[str] | None:
    try:
        with urllib.request.urlopen(f"{base_url}/models", timeout=2) as response:
            return [m["id"] for m in json.load(response)["data"]]
    except (OSError, ValueError, KeyError):
        return None


@contextmanager
def serve_llama(
    workdir: Path, *chat_format: str, n_ctx: int = 4096, interrupt_requests: bool = False, timeout: float = 120
) -> Iterator[LlamaServer]:
    """`python -m llama_cpp.server` with the bundled model and the given `--chat_format …` arguments, up
    within `timeout` seconds (else the last lines of its log, `workdir/server.log`, are raised); stopped after.
    By default a request does not cut a concurrent stream short (`--interrupt_requests False`)."""
    from ted.models.local import model_path

    port = free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    command = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", model_path("local:tiny"),
        "--model_alias", SERVED_MODEL,
        *chat_format,
        "--n_ctx", str(n_ctx),
        "--interrupt_requests", str(interrupt_requests),
        "--host", "127.0.0.1",
        "--port", str(port),
    ]  # fmt: skip
    log_path = workdir / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        started = time.perf_counter()
        while (models := _served_models(base_url)) is None:
            if process.poll() is not None or time.perf_counter() - started > timeout:
                tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-20:])
                raise RuntimeError(f"llama_cpp.server did not come up on port {port} (log: {log_path}):\n{tail}")
            time.sleep(0.2)
        print(f"\nllama_cpp.server up in {time.perf_counter() - started:.1f}s at {base_url}", file=sys.stderr)
        yield LlamaServer(base_url, models[0])
    finally:
        stop(process)

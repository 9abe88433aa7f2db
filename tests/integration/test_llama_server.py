"""llama.cpp's own llama-server, as ted builds and starts it: portable, parallel, keeps the system message.

The binary is the one `make` builds into the wheelhouse (scripts/llama-wheel --server); the model is
`local:tiny` (the 270M Gemma, with ted's template). No speed is asserted here: `make bench-real` measures.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest

from ted.models import load_model
from ted.models.base import Message, SamplingParams
from ted.models.local import model_path
from ted.models.native import portable_cmake_args
from ted.models.server import ManagedServer, server_binary
from ted.system_probe import system_kept
from tests.processes import stop
from tests.support import free_port
from tests.support.llama import assert_portable

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server() -> Iterator[ManagedServer]:
    assert server_binary() is not None, "llama-server is not built: run `make test` (scripts/llama-wheel --server)"
    with ManagedServer("local:tiny", parallel=2, ctx_per_slot=1024, threads=2) as running:
        yield running


def test_built_with_the_portable_flags() -> None:
    binary = server_binary()
    assert binary is not None, "llama-server is not built: run `make test` (scripts/llama-wheel --server)"
    assert (binary.parent / "CMAKE_ARGS").read_text().strip() == portable_cmake_args()
    # The CPU features in force, as llama.cpp prints them at start-up (at trace verbosity, before loading the model).
    starting = subprocess.Popen([str(binary), "--model", model_path("local:tiny"), "--port", str(free_port()), "--host", "127.0.0.1", "-lv", "5"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        info = next(line for line in starting.stdout if "system_info" in line)  # type: ignore[union-attr]
    finally:
        stop(starting)
    assert_portable(info)


def _slots_busy(server: ManagedServer) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/slots", timeout=5) as reply:
        return sum(1 for slot in json.load(reply) if slot.get("is_processing"))


def test_two_requests_in_flight_are_answered_together(server: ManagedServer) -> None:
    model = load_model(server.openai_spec)
    params = SamplingParams(max_tokens=16, temperature=0)
    busy: list[int] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            busy.append(_slots_busy(server))
            time.sleep(0.02)

    async def both() -> list[str]:
        try:
            replies = await asyncio.gather(
                model.chat([Message("user", "Count: 1, 2, 3,")], params), model.chat([Message("user", "List colours: red, blue,")], params)
            )
            return [r.text for r in replies]
        finally:
            await model.aclose()

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        texts = asyncio.run(both())
    finally:
        done.set()
        watcher.join()
    assert all(text.strip() for text in texts)
    assert max(busy) == 2  # both slots decoding at one moment: continuous batching, not a queue


def test_keeps_the_system_message(server: ManagedServer) -> None:
    model = load_model(server.openai_spec)

    async def probe() -> bool | None:
        try:
            return await system_kept(model)
        finally:
            await model.aclose()

    assert asyncio.run(probe()) is True


def test_ted_serve_prints_the_spec_and_stops_its_server_on_ctrl_c() -> None:
    import signal
    import subprocess
    import sys

    from ted.models import parse_spec

    # Ctrl-C as from a terminal: a suite started in the background (`make test &`, nohup) hands its
    # children SIGINT ignored, and Python then never turns it into KeyboardInterrupt.
    serving = subprocess.Popen([sys.executable, "-m", "ted.cli", "serve", "local:tiny", "--parallel", "2", "--ctx", "512", "--threads", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    try:
        line = serving.stdout.readline()  # type: ignore[union-attr]
        spec = line.split()[1]
        _, model, base_url = parse_spec(spec)
        assert line.startswith("local:tiny") and model == "gemma-3-270m-q4_k_m", line
        with urllib.request.urlopen(f"{base_url}/models", timeout=10) as reply:
            assert model in json.dumps(json.load(reply))
    finally:
        serving.send_signal(signal.SIGINT)
        serving.wait(timeout=30)
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{base_url}/models", timeout=5)


def test_primed_heads_serve_two_requests_sent_together() -> None:
    """`ted.distill.prime` on the real server: two requests sharing a primed head, sent together, both
    take it from the cache (one from the primed slot, one from the RAM copy the next prime's start
    made); unprimed, neither does."""
    from ted.distill import prime

    words = "apple river stone cloud seven market bright north table window garden silver".split()

    def text(seed: int, n: int) -> str:
        return " ".join(f"{words[(i * seed) % len(words)]}{i % 7}" for i in range(n))

    heads = {stage: [Message("user", f"{stage} instructions\n{text(seed, 150)}")] for stage, seed in (("structure", 5), ("extract", 7))}
    params = SamplingParams(max_tokens=4, temperature=0)

    async def wave(model, primed: bool) -> list[int]:  # type: ignore[no-untyped-def]
        model.primes_prefixes = primed
        primes = prime.start(model, model, lambda role, result: None, None, list(heads.items()))
        await primes.ready("extract")
        head = heads["structure"][0].text
        replies = await asyncio.gather(*(model.chat([Message("user", f"{head}\n{text(11 + i, 40)}")], params) for i in range(2)))
        await model.aclose()
        return [r.usage.cached_prompt_tokens or 0 for r in replies]

    for primed in (False, True):
        with ManagedServer("local:tiny", parallel=4, ctx_per_slot=1024, threads=2) as fresh:
            cached = asyncio.run(wave(load_model(fresh.openai_spec), primed))
        head_tokens = 150 * 2  # at least two tokens a word here
        assert all(c >= head_tokens for c in cached) if primed else all(c < head_tokens for c in cached), (primed, cached)

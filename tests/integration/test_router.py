"""Scale past one machine through the serving engine: `ted distill` against a router in front of replicas.

The engines distribute (SGLang's router, vLLM data parallel behind one URL); ted keeps enough calls
in flight (`--concurrency`, one limiter per endpoint) and must stay correct when replies come back in
any order. Here two simulator instances (a simulator, not a model) answer behind a tiny round-robin
proxy, one fast and one slow with jittered latency, so replies overtake each other; the library must
equal the one a single server gives.
"""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import threading
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.reliability.common import clean_env, ted_command
from tests.reliability.simulated import comparable, distill_args
from tests.sim import Latency, Simulator, write_problems

pytestmark = pytest.mark.integration

OPTIONS = ("--epochs", "2", "--rollouts", "3", "--batch-size", "4", "--concurrency", "8", "--max-tokens", "256")


class RoundRobin:
    """An HTTP proxy on 127.0.0.1 sending each request to the next replica; it records completion order."""

    def __init__(self, replicas: list[str]) -> None:
        self.replicas = itertools.cycle(replicas)
        self.order: list[int] = []  # arrival number of each request, in the order their replies went back
        self.arrivals = 0
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> RoundRobin:
        self._thread.start()
        self._ready.wait(30)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)

    def _serve(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        runner = web.AppRunner(app, access_log=None)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        self.port = runner.addresses[0][1]
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    async def _forward(self, request: web.Request) -> web.Response:
        number, self.arrivals = self.arrivals, self.arrivals + 1
        target = next(self.replicas) + request.path_qs
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("content-type", "authorization")}
        async with aiohttp.ClientSession() as session:
            async with session.request(request.method, target, data=await request.read(), headers=headers) as reply:
                body = await reply.read()
                self.order.append(number)
                return web.Response(body=body, status=reply.status, content_type=reply.content_type)


def distill(spec_sim: Simulator, base_url: str, data: Path, out: Path) -> Path:
    args = distill_args(spec_sim, data, out, *OPTIONS)
    args = [a.replace(spec_sim.base_url, base_url) for a in args]
    proc = subprocess.run(ted_command(*args), cwd=out.parent, env=clean_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_a_router_in_front_of_two_replicas_gives_the_single_server_library(tmp_path: Path) -> None:
    data = write_problems(tmp_path / "problems.jsonl", 8, seed=3)
    with Simulator(0.0, seed=4, tokens_per_reply=40) as single:
        reference = comparable(distill(single, single.base_url, data, tmp_path / "single.json"))
    fast = Simulator(0.0, seed=4, tokens_per_reply=40)
    slow = Simulator(Latency(0.05, dist="uniform", spread=1.0), seed=4, tokens_per_reply=40)
    with fast, slow, RoundRobin([f"http://127.0.0.1:{fast.port}", f"http://127.0.0.1:{slow.port}"]) as router:
        routed = comparable(distill(fast, f"http://127.0.0.1:{router.port}/v1", data, tmp_path / "routed.json"))
        served = fast.stats().total_requests, slow.stats().total_requests
        peak = max(fast.stats().peak_in_flight, slow.stats().peak_in_flight)
    assert routed == reference
    assert min(served) > 10  # both replicas did real work
    assert router.order != sorted(router.order)  # replies came back in another order than the requests went out
    assert peak > 1  # ted kept several calls in flight through the one endpoint

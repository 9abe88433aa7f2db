"""The simulator (tests/sim) with a record of what it answered, and runs of `ted distill` against it.

`RecordingSimulator` notes every request as it arrives (stage, seed, whether it is a JSON re-ask)
and whether the reply it sent was usable: HTTP 200, a JSON body, at least one choice. Transport
faults (429, 5xx, reset, hang, broken body, empty choices) are unusable replies; content faults
(truncated content, no final answer) are usable ones the pipeline has to cope with.
An optional `on_request(stage)` callback runs as each request arrives: the crash tests use it
to kill `ted` while a given kind of call is in flight. With `leak_auth`, every error reply quotes
the request's Authorization header, the worst a careless server or proxy does with a key.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from tests.reliability.common import clean_env, ted_command
from tests.sim import Simulator
from tests.sim.replies import JSON_STAGES, stage_of


@dataclass(frozen=True)
class Seen:
    stage: str
    seed: int | None
    reask: bool  # a JSON stage's second try (the pipeline's re-ask with the validation error)
    usable: bool


class RecordingSimulator(Simulator):
    def __init__(
        self, *args: object, on_request: Callable[[str], None] | None = None, leak_auth: bool = False, **kwargs: object
    ) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.on_request = on_request
        self.leak_auth = leak_auth
        self.seen: list[Seen] = []
        self.credentials: set[str] = set()  # Authorization headers and query strings received: what the live request carried
        self._record_lock = threading.Lock()

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = json.loads(await request.read())  # aiohttp keeps the body: the server reads it again
        stage = stage_of(body.get("messages") or [])
        with self._record_lock:
            self.credentials.update(filter(None, (request.headers.get("Authorization"), request.query_string)))
        if self.on_request is not None:
            self.on_request(stage)
        reask = stage in JSON_STAGES and len(body["messages"]) > 1
        usable = False
        try:
            response = await super()._chat(request)
            delivered = request.transport is not None and not request.transport.is_closing()  # the client may have given up
            if delivered and response.status == 200 and isinstance(response, web.Response) and response.text:
                try:
                    usable = bool(json.loads(response.text).get("choices"))
                except ValueError:
                    usable = False
            if self.leak_auth and response.status >= 400:
                leak = f"upstream failed for credentials {request.headers.get('Authorization')}"
                keep = {k: v for k, v in response.headers.items() if k.lower().startswith("retry-after")}
                return web.json_response({"error": {"message": leak, "type": "server_error"}}, status=response.status, headers=keep)
            return response
        finally:  # a reset or a hang ends in CancelledError: recorded as unusable
            with self._record_lock:
                self.seen.append(Seen(stage, body.get("seed"), reask, usable))

    def clear(self) -> None:
        with self._record_lock:
            self.seen.clear()
        self.reset_stats()

    def usable(self, stage: str) -> Counter[int | None]:
        """Seeds of the usable replies of one stage, with how many times each was answered."""
        with self._record_lock:
            return Counter(s.seed for s in self.seen if s.stage == stage and s.usable)

    def unusable(self) -> int:
        """Requests that got no usable reply: each one the client had to send again."""
        with self._record_lock:
            return sum(1 for s in self.seen if not s.usable)

    def usable_reasks(self) -> int:
        with self._record_lock:
            return sum(1 for s in self.seen if s.reask and s.usable)


def distill_args(sim: Simulator, data: Path, out: Path, *extra: str) -> list[str]:
    """`ted distill` against the simulator: student and teacher are two model names on it."""
    return ["distill", "--data", str(data), "--student", sim.spec("sim-student"), "--teacher", sim.spec("sim-teacher"), "--out", str(out), *extra]


def start_ted(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`ted ARGS` in the background, with Ctrl-C (SIGINT) as a terminal would deliver it.

    A command that a non-interactive shell starts with `&` (a CI script, `nohup`) runs with SIGINT
    ignored, and its children inherit that: the Ctrl-C tests then saw `ted` finish with exit 0.
    The child gets SIGINT's default back, so the tests measure ted, not how pytest was started."""
    return subprocess.Popen(
        ted_command(*args), cwd=cwd, env=clean_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def comparable(library_file: Path) -> dict[str, object]:
    """What must be equal between an interrupted-and-resumed run and an uninterrupted one."""
    data = json.loads(library_file.read_text(encoding="utf-8"))
    return {key: data[key] for key in ("items", "history", "next_id", "metrics")}

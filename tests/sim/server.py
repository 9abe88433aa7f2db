"""A simulated OpenAI-compatible server for benchmarks and fault injection (a simulator, not a model).

It speaks real HTTP (aiohttp) on 127.0.0.1: `POST /v1/chat/completions` with `n`, usage fields and
`finish_reason`, and `GET /v1/models`. Replies are valid for every TED stage (see `replies`).
What it adds over a real server is control:

- latency per call and per role, counted from the request's arrival: fixed seconds, or a `Latency` distribution (uniform,
  exponential, lognormal), plus optional seconds per generated token (of the longest choice: n choices decode side by side); `teacher_latency` gives the
  teacher's stages (solve, structure, extract, compress) their own (a frontier model is slower),
  and the seconds each stage slept are counted, so a benchmark can compute its bound per role;
- faults at `failure_rate`, drawn from a mix (`FAULTS`): 429 with Retry-After, 500, 503,
  connection reset, a hang longer than the client's timeout, an invalid JSON body, truncated JSON
  in the content, empty `choices`, a solve reply with no final answer;
- counters per stage (requests, choices, faults) and the peak number of requests in flight;
- thinking models: `reasoning="field"` sends the reasoning in `message.reasoning_content` (vLLM and
  SGLang reasoning parsers, DeepSeek-style APIs), `reasoning="think"` inline as `<think>…</think>`;
  a reply cut at `max_tokens` ends with `finish_reason="length"` (`long_rate` makes some long);
- a context window: `max_model_len` refuses a prompt plus `max_tokens` that exceed it, with vLLM's
  HTTP 400 and message, and reports it in `/v1/models` unless `report_context=False`.

Determinism: everything is derived from a hash of the request body and `seed`, never from arrival
order. Content (and content faults: truncation, no answer) depends on the request alone; transport
faults (429, 5xx, reset, hang, bad body, empty choices) also on how many times that same body was
seen, so a client's retry of a failed request can succeed. Choice i of a request with seed s is
the same text as choice 0 of the same request with seed s + i, so a client that fills in missing
samples itself (as ted's OpenAI backend does for servers that ignore `n`) gets identical replies.

    with Simulator(latency=0.1, failure_rate=0.05, seed=1) as sim:
        model = load_model(sim.spec("sim-student"))
        ...
        sim.stats().requests["student"]

Standalone: `python -m tests.sim --port 8000 --latency 0.2`.
"""

from __future__ import annotations

import asyncio
import json
import math
import socket
import struct
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from statistics import NormalDist
from typing import Literal

from aiohttp import web

from tests.sim.replies import SOLVE_STAGES, Behaviour, Reply, digest, estimate_tokens, message_text, reply, stage_of, unit

FAULTS = ("429", "500", "503", "reset", "timeout", "bad_json_body", "truncated_content", "empty_choices", "no_answer")
CONTENT_FAULTS = frozenset({"truncated_content", "no_answer"})
STUDENT_STAGES = frozenset({"student", "chat"})  # every other stage is the teacher's
# Fields that do not change what a choice says: the choice's identity is the rest plus its seed.
_NOT_CONTENT = ("n", "seed", "stream", "stream_options", "user")


@dataclass(frozen=True)
class Latency:
    """Seconds before a successful reply: `mean` shaped by `dist`, plus `per_token` per token of its longest choice.

    `spread` is the relative half-width for `uniform` and sigma for `lognormal` (mean preserved).
    """

    mean: float = 0.0
    dist: Literal["fixed", "uniform", "exponential", "lognormal"] = "fixed"
    spread: float = 0.5
    per_token: float = 0.0

    def sample(self, u: float, completion_tokens: int) -> float:
        u = min(max(u, 1e-12), 1 - 1e-12)
        if self.dist == "fixed":
            base = self.mean
        elif self.dist == "uniform":
            base = self.mean * (1 + self.spread * (2 * u - 1))
        elif self.dist == "exponential":
            base = -self.mean * math.log(1 - u)
        elif self.dist == "lognormal":
            base = self.mean * math.exp(self.spread * NormalDist().inv_cdf(u) - self.spread**2 / 2)
        else:
            raise ValueError(f"unknown latency distribution {self.dist!r}")
        return max(0.0, base) + self.per_token * completion_tokens


@dataclass
class Stats:
    """What the simulator saw. `choices` counts generations (a request with n=5 adds 5)."""

    requests: Counter[str] = field(default_factory=Counter)
    choices: Counter[str] = field(default_factory=Counter)
    faults: Counter[tuple[str, str]] = field(default_factory=Counter)
    peak_in_flight: int = 0
    budgets: list[tuple[str, int, int]] = field(default_factory=list)  # (stage, prompt tokens, max_tokens) per answered request
    cut_off: Counter[str] = field(default_factory=Counter)  # choices that ended with finish_reason "length"
    latency_s: Counter[str] = field(default_factory=Counter)  # seconds slept before successful replies, per stage
    replies: Counter[str] = field(default_factory=Counter)  # successful replies per stage (what latency_s is over)

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    @property
    def total_choices(self) -> int:
        return sum(self.choices.values())

    def mean_latency(self, stage: str) -> float:
        """Seconds one successful reply of `stage` took on average (0 when there was none)."""
        return self.latency_s[stage] / self.replies[stage] if self.replies[stage] else 0.0


def _as_latency(value: float | Latency) -> Latency:
    return value if isinstance(value, Latency) else Latency(float(value))


def _error(status: int, message: str, kind: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response({"error": {"message": message, "type": kind, "code": None}}, status=status, headers=headers)


class Simulator:
    """The server, run on a free 127.0.0.1 port in a background thread; a context manager."""

    def __init__(
        self,
        latency: float | Latency = 0.0,
        *,
        teacher_latency: float | Latency | None = None,
        failure_rate: float = 0.0,
        faults: Sequence[str] | Mapping[str, float] = FAULTS,
        seed: int = 0,
        tokens_per_reply: int = 200,
        student_accuracy: float = 0.6,
        teacher_accuracy: float = 0.95,
        compress_target: float = 0.7,
        retry_after: float = 1.0,
        hang_s: float = 60.0,
        honour_n: bool = True,
        models: Sequence[str] | None = None,
        port: int = 0,
        reasoning: Literal["field", "think"] | None = None,
        long_rate: float = 0.0,
        max_model_len: int | None = None,
        report_context: bool = True,
        keep_requests: bool = False,
    ) -> None:
        weights = dict(faults) if isinstance(faults, Mapping) else {kind: 1.0 for kind in faults}
        unknown = sorted(set(weights) - set(FAULTS))
        if unknown:
            raise ValueError(f"unknown fault kinds {unknown}; choose from {', '.join(FAULTS)}")
        if not 0.0 <= failure_rate <= 1.0:
            raise ValueError("failure_rate is a probability between 0 and 1")
        self.latency = _as_latency(latency)
        self.teacher_latency = self.latency if teacher_latency is None else _as_latency(teacher_latency)
        self.failure_rate = failure_rate
        self.weights = {kind: w for kind, w in weights.items() if w > 0}
        self.seed = seed
        self.behaviour = Behaviour(
            tokens_per_reply, student_accuracy, teacher_accuracy, compress_target, thinking=reasoning is not None, long_rate=long_rate
        )
        self.reasoning = reasoning
        self.max_model_len = max_model_len
        self.report_context = report_context
        self.keep_requests = keep_requests
        self._bodies: list[tuple[str, dict]] = []
        self.retry_after = retry_after
        self.hang_s = hang_s
        self.honour_n = honour_n
        self.models = tuple(models) if models else None
        self.port = port
        self._stats = Stats()
        self._in_flight = 0
        self._seen: Counter[int] = Counter()  # body hash → times seen (transport faults depend on it)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def spec(self, model: str) -> str:
        """The ted model spec that reaches this simulator through the OpenAI backend."""
        return f"openai:{model}@{self.base_url}"

    def start(self) -> Simulator:
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._open())
            except BaseException as err:  # reported to the starting thread
                failure.append(err)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=serve, name="ted-simulator", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    async def _open(self) -> None:
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._list_models)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=0.2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, backlog=2048)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop = self._thread = self._runner = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stats(self) -> Stats:
        """A snapshot of the counters (safe to read while the server runs)."""
        with self._lock:
            s = self._stats
            return Stats(Counter(s.requests), Counter(s.choices), Counter(s.faults), s.peak_in_flight, list(s.budgets), Counter(s.cut_off),
                         Counter(s.latency_s), Counter(s.replies))  # fmt: skip

    def requests_seen(self) -> list[tuple[str, dict]]:
        """(stage, request body) of every request, in arrival order (with `keep_requests=True`)."""
        with self._lock:
            return list(self._bodies)

    def reset_stats(self) -> None:
        with self._lock:
            self._stats = Stats()

    # ------------------------------------------------------------------ faults
    def _draw(self, kinds: list[str], u: float) -> str | None:
        """A fault from `kinds` with probability failure_rate × their share of the mix, else None."""
        total = sum(self.weights.values())
        share = [(kind, self.weights[kind]) for kind in kinds if kind in self.weights]
        threshold = self.failure_rate * sum(w for _, w in share) / total if total else 0.0
        if u >= threshold:
            return None
        for kind, weight in share:
            threshold_k = self.failure_rate * weight / total
            if u < threshold_k:
                return kind
            u -= threshold_k
        return share[-1][0]

    def _count_fault(self, stage: str, kind: str) -> None:
        with self._lock:
            self._stats.faults[stage, kind] += 1

    def _content_fault(self, stage: str, key: str, choice: Reply) -> Reply:
        kinds = ["truncated_content"] + (["no_answer"] if stage in SOLVE_STAGES else [])
        fault = self._draw(kinds, unit(self.seed, "content", key))
        if fault is None:
            return choice
        self._count_fault(stage, fault)
        if fault == "truncated_content":
            return replace(choice, text=choice.text[: max(1, len(choice.text) // 2)], truncated_by_length=False)
        kept = [line for line in choice.text.splitlines() if not line.startswith(("Answer:", "Used:"))]
        return replace(choice, text="\n".join(kept))

    def _message(self, choice: Reply) -> dict:
        """The wire message of one choice, with its reasoning where this server's thinking model puts it."""
        if self.reasoning == "field":
            return {"role": "assistant", "content": choice.text or None, "reasoning_content": choice.reasoning or None}
        if self.reasoning == "think" and choice.reasoning:
            closed = "" if choice.truncated_by_length and not choice.text else f"</think>\n\n{choice.text}"
            return {"role": "assistant", "content": f"<think>\n{choice.reasoning}{closed}"}
        return {"role": "assistant", "content": choice.text}

    @staticmethod
    def _reset(request: web.Request) -> None:
        """Close the connection with a TCP RST, as a crashed proxy would."""
        transport = request.transport
        if transport is None:
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()

    # ------------------------------------------------------------------ handlers
    async def _list_models(self, request: web.Request) -> web.Response:
        names = self.models or ("sim",)
        context = {"max_model_len": self.max_model_len} if self.max_model_len and self.report_context else {}
        data = [{"id": m, "object": "model", "owned_by": "ted-sim", **context} for m in names]
        return web.json_response({"object": "list", "data": data})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        # A reply is due its latency after the request arrived, not after the simulator's own work on
        # it: that work runs on this one thread, and a burst of 16 rollout requests queued behind it
        # (~30 ms, docs/performance.md). Yielding once lets requests that came in together all take
        # their arrival time first.
        arrival = asyncio.get_running_loop().time()
        await asyncio.sleep(0)
        raw = await request.read()
        try:
            body = json.loads(raw)
            messages = body["messages"]
            assert isinstance(messages, list) and all(isinstance(m, dict) for m in messages)
        except (ValueError, KeyError, TypeError, AssertionError):
            return _error(400, "the body must be JSON with a list of messages", "invalid_request_error")
        if body.get("stream"):
            return _error(400, "the simulator does not stream; send stream=false", "invalid_request_error")
        model = str(body.get("model", ""))
        if self.models is not None and model not in self.models:
            return _error(404, f"The model `{model}` does not exist", "invalid_request_error")
        stage = stage_of(messages)
        n = max(1, int(body.get("n") or 1)) if self.honour_n else 1
        body_hash = digest(body)
        with self._lock:
            if self.keep_requests:
                self._bodies.append((stage, body))
            attempt = self._seen[body_hash]
            self._seen[body_hash] += 1
            self._stats.requests[stage] += 1
            self._in_flight += 1
            self._stats.peak_in_flight = max(self._stats.peak_in_flight, self._in_flight)
        try:
            return await self._answer(request, body, messages, stage, model, n, body_hash, attempt, arrival)
        finally:
            with self._lock:
                self._in_flight -= 1

    async def _answer(
        self, request: web.Request, body: dict, messages: list[dict], stage: str, model: str, n: int, body_hash: int, attempt: int,
        arrival: float,
    ) -> web.StreamResponse:
        transport_kinds = [kind for kind in FAULTS if kind not in CONTENT_FAULTS]
        fault = self._draw(transport_kinds, unit(self.seed, "transport", body_hash, attempt))
        if fault is not None:
            self._count_fault(stage, fault)
        if fault == "429":
            headers = {"Retry-After": str(max(1, math.ceil(self.retry_after))), "retry-after-ms": str(int(self.retry_after * 1000))}
            return _error(429, "Rate limit reached (simulated); retry after the delay", "rate_limit_error", headers)
        if fault in ("500", "503"):
            return _error(int(fault), f"simulated HTTP {fault}", "server_error")
        if fault == "reset":
            self._reset(request)
            raise asyncio.CancelledError
        if fault == "timeout":
            await asyncio.sleep(self.hang_s)

        content = digest({k: v for k, v in body.items() if k not in _NOT_CONTENT})
        first_seed = int(body.get("seed") or 0)
        max_tokens = int(body.get("max_completion_tokens") or body.get("max_tokens") or 4096)
        prompt_tokens = sum(estimate_tokens(message_text(m)) for m in messages)
        if self.max_model_len is not None and prompt_tokens + max_tokens > self.max_model_len:
            return _error(400, (
                f"This model's maximum context length is {self.max_model_len} tokens. However, you requested "
                f"{prompt_tokens + max_tokens} tokens ({prompt_tokens} in the messages, {max_tokens} in the completion). "
                "Please reduce the length of the messages or completion."
            ), "BadRequestError")  # fmt: skip
        with self._lock:
            self._stats.budgets.append((stage, prompt_tokens, max_tokens))
        choices = []
        for i in range(n):
            key = f"{self.seed}:{content}:{first_seed + i}"
            choice = self._content_fault(stage, key, reply(stage, messages, key, max_tokens, self.behaviour))
            choices.append(choice)
        lengths = [estimate_tokens(c.text) + estimate_tokens(c.reasoning) for c in choices]
        completion_tokens = sum(lengths)
        latency = self.latency if stage in STUDENT_STAGES else self.teacher_latency
        # A serving engine decodes the n choices of one request side by side, in one batch: the
        # request takes as long as its longest choice, not their sum.
        seconds = latency.sample(unit(self.seed, "latency", body_hash, attempt), max(lengths, default=0))
        payload = {
            "id": f"simcmpl-{body_hash:016x}",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "system_fingerprint": "ted-simulator",
            "choices": []
            if fault == "empty_choices"
            else [
                {
                    "index": i,
                    "message": self._message(c),
                    "finish_reason": "length" if c.truncated_by_length else "stop",
                    "logprobs": None,
                }
                for i, c in enumerate(choices)
            ],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens},
        }
        text = json.dumps(payload)  # before the wait: replies due together are not serialised one after another
        if fault == "bad_json_body":
            text = text[: len(text) // 2]
        await asyncio.sleep(max(0.0, arrival + seconds - asyncio.get_running_loop().time()))
        with self._lock:
            self._stats.choices[stage] += 0 if fault == "empty_choices" else len(choices)
            self._stats.cut_off[stage] += 0 if fault == "empty_choices" else sum(c.truncated_by_length for c in choices)
            self._stats.latency_s[stage] += seconds
            self._stats.replies[stage] += 1
        return web.Response(text=text, content_type="application/json")

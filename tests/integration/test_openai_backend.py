"""The OpenAI-compatible backend against a real llama_cpp.server (the `llama_server` fixture).

Failures a real server will not produce on demand (429 with Retry-After, 401, 404) come from
`Simulator`, a scripted OpenAI-compatible HTTP server: fault injection, not a stand-in for the
real protocol tests above it.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import BaseModel

from ted.errors import ModelError
from ted.models import Message, SamplingParams, chat_json, load_model

pytestmark = pytest.mark.integration

SECRET = "sk-test-secret-0123456789"
QUESTION = [Message("user", "Name a colour.")]


def run(model: Any, call: Any) -> Any:
    """Await `call` in a loop of its own, then close `model`'s connections, which belong to that loop."""

    async def closing() -> Any:
        try:
            return await call
        finally:
            await model.aclose()

    return asyncio.run(closing())


# --------------------------------------------------------------------------- real server
def test_plain_chat_counts_usage_and_keeps_the_system_prompt(llama_server) -> None:
    model = load_model(llama_server.spec)
    params = SamplingParams(max_tokens=8, temperature=0)
    plain = run(model, model.chat(QUESTION, params))
    with_system = run(model, model.chat([Message("system", "Lesson E1: check units. " * 10), *QUESTION], params))

    assert isinstance(plain.text, str) and plain.text.strip()
    assert (plain.requests, plain.retries) == (1, 0)
    assert plain.usage.prompt_tokens > 0
    assert 1 <= plain.usage.completion_tokens <= 8
    # The library lives in the system prompt: the server must not drop it.
    assert with_system.usage.prompt_tokens >= plain.usage.prompt_tokens + 50


def test_n_samples_are_filled_in_when_the_server_returns_one(llama_server) -> None:
    model = load_model(llama_server.spec)
    result = run(model, model.chat(QUESTION, SamplingParams(n=3, max_tokens=8, temperature=0.9, seed=1)))

    assert len(result.texts) == 3
    assert result.requests == 3
    assert result.usage.completion_tokens >= 3
    assert len(set(result.texts)) > 1  # distinct seeds, distinct samples


class Verdict(BaseModel):
    answer: str
    confidence: int


def test_json_schema_output_is_validated(llama_server) -> None:
    model = load_model(llama_server.spec)
    ask = [Message("user", "What is 2+2? Reply in JSON with an answer and a confidence from 0 to 10.")]
    verdict, result = run(model, chat_json(model, ask, Verdict, SamplingParams(max_tokens=48, temperature=0)))

    assert isinstance(verdict, Verdict)
    # llama.cpp rejects OpenAI's json_schema form; the backend fell back to its json_object + schema:
    # the same request sent again in another form, a retry (a resumed run learns the form again).
    assert (result.requests, result.retries) == (1, 1)
    again, result = run(model, chat_json(model, ask, Verdict, SamplingParams(max_tokens=48, temperature=0)))
    assert isinstance(again, Verdict) and result.requests == 1  # the accepted form was remembered


def test_stream_yields_pieces_of_the_same_reply(llama_server) -> None:
    model = load_model(llama_server.spec)
    params = SamplingParams(max_tokens=12, temperature=0)

    async def collect() -> list[str]:
        return [piece async for piece in model.stream(QUESTION, params)]

    pieces = run(model, collect())
    assert len(pieces) > 1
    assert "".join(pieces) == run(model, model.chat(QUESTION, params)).text


def test_llama_server_serves_any_model_name_as_its_own(llama_server) -> None:
    """llama_cpp.server falls back to its one model for unknown names instead of a 404."""
    model = load_model(f"openai:no-such-model@{llama_server.base_url}")
    result = run(model, model.chat(QUESTION, SamplingParams(max_tokens=4, temperature=0)))
    assert result.text and result.usage.completion_tokens >= 1


# --------------------------------------------------------------------------- user errors
def test_unreachable_endpoint_is_one_line_without_the_key(monkeypatch: pytest.MonkeyPatch, free_port: int) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    url = f"http://127.0.0.1:{free_port}/v1"
    model = load_model(f"openai:m@{url}", max_retries=1)
    with pytest.raises(ModelError) as caught:
        run(model, model.chat(QUESTION, SamplingParams(max_tokens=4)))

    message = str(caught.value)
    assert message == f"cannot reach {url}: connection refused; is the server running?"
    assert SECRET not in repr(model)


def test_missing_key_for_a_remote_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("TEAM_KEY", raising=False)
    with pytest.raises(ModelError, match=r"missing API key for https://api\.example\.com/v1: set \$OPENAI_API_KEY"):
        load_model("openai:gpt-x@https://api.example.com/v1")
    with pytest.raises(ModelError, match=r"set \$TEAM_KEY"):
        load_model("openai:gpt-x@https://api.example.com/v1", api_key_env="TEAM_KEY")
    # A local server needs no key.
    assert load_model("openai:m@http://localhost:1/v1").model == "m"


# --------------------------------------------------------------------------- simulator
def completion(text: str, n: int = 1) -> dict[str, Any]:
    return {
        "id": "sim",
        "object": "chat.completion",
        "created": 0,
        "model": "sim-model",
        "choices": [
            {"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"} for i in range(n)
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }


class Simulator:
    """A scripted OpenAI-compatible server: each chat request gets the next scripted reply.

    A reply is (status, headers, body); the last one repeats. Requests are recorded with the
    time they arrived, their headers and their JSON body.
    """

    def __init__(self, replies: list[tuple[int, dict[str, str], dict[str, Any]]], models: tuple[str, ...] = ("sim-model",)):
        self.replies = replies
        self.models = models
        self.seen: list[tuple[float, dict[str, str], dict[str, Any]]] = []
        simulator = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _send(self, status: int, headers: dict[str, str], body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._send(200, {}, {"object": "list", "data": [{"id": m, "object": "model"} for m in simulator.models]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                simulator.seen.append((time.monotonic(), dict(self.headers), body))
                reply = simulator.replies[min(len(simulator.seen), len(simulator.replies)) - 1]
                self._send(*reply)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> Simulator:
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    yield


def test_429_is_retried_after_retry_after(keyed: None) -> None:
    busy = (429, {"Retry-After": "1"}, {"error": {"message": "slow down", "type": "rate_limit"}})
    with Simulator([busy, (200, {}, completion("blue"))]) as sim:
        model = load_model(f"openai:sim-model@{sim.base_url}")
        start = time.perf_counter()
        result = run(model, model.chat(QUESTION, SamplingParams(max_tokens=4)))
        elapsed = time.perf_counter() - start

    assert result.text == "blue"
    assert result.retries == 1 and result.requests == 1
    assert elapsed >= 0.95
    (first, _, _), (second, headers, _) = sim.seen
    assert second - first >= 0.95
    assert headers.get("x-stainless-retry-count") == "1"


def test_missing_samples_get_their_own_seeds(keyed: None) -> None:
    with Simulator([(200, {}, completion("red"))]) as sim:
        model = load_model(f"openai:sim-model@{sim.base_url}")
        result = run(model, model.chat(QUESTION, SamplingParams(n=3, max_tokens=4, seed=7)))

    assert result.texts == ["red"] * 3 and result.requests == 3
    assert result.usage.prompt_tokens == 15
    bodies = [body for _, _, body in sim.seen]
    assert (bodies[0]["n"], bodies[0]["seed"]) == (3, 7)
    assert sorted(b["seed"] for b in bodies[1:]) == [8, 9] and all("n" not in b for b in bodies[1:])


def test_wrong_model_name_lists_the_served_models(keyed: None) -> None:
    missing = (404, {}, {"error": {"message": "The model `gpt-x` does not exist", "type": "invalid_request_error"}})
    with Simulator([missing], models=("alpha", "beta")) as sim:
        model = load_model(f"openai:gpt-x@{sim.base_url}")
        with pytest.raises(ModelError) as caught:
            run(model, model.chat(QUESTION, SamplingParams(max_tokens=4)))
    assert str(caught.value) == f"model 'gpt-x' not found at {sim.base_url}; the server lists: alpha, beta"
    assert len(sim.seen) == 1  # a 404 is not retried


def test_rejected_key_is_reported_without_echoing_it(keyed: None) -> None:
    denied = (401, {}, {"error": {"message": f"Incorrect API key provided: {SECRET}", "type": "invalid_request_error"}})
    with Simulator([denied]) as sim:
        model = load_model(f"openai:sim-model@{sim.base_url}")
        with pytest.raises(ModelError) as caught:
            run(model, model.chat(QUESTION, SamplingParams(max_tokens=4)))
    message = str(caught.value)
    assert "rejected the API key" in message and "$OPENAI_API_KEY" in message
    assert SECRET not in message and "\n" not in message

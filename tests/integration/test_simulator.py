"""The simulator (tests/sim) over real HTTP: `ted distill` end to end through the OpenAI backend,
determinism, latency and concurrency, and every fault mode as a client sees it.

The simulator stands in for a model server in benchmarks and fault tests; these tests make sure
what it claims to do is what happens on the wire, so results built on it can be trusted.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from ted import prompts
from ted.library import Library
from tests.sim import FAULTS, Latency, Simulator, write_problems
from tests.support import environ, run_ted

pytestmark = pytest.mark.integration

STAGES = {"student", "teacher_solve", "structure", "extract", "compress"}


def solve_body(question: str = "Compute 21 + 34.", seed: int = 1, n: int = 1) -> dict:
    system = prompts.render("solve", library="## Experience library\n\n[E1] Check the sign of every term before answering.")
    return {
        "model": "sim",
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": question}],
        "seed": seed,
        "n": n,
        "max_tokens": 512,
    }


def structure_body() -> dict:
    traces = [{"label": "student attempt 1", "text": "21 plus 34.\nAnswer: 55", "truncated": False},
              {"label": "teacher", "text": "Answer: 55", "truncated": False}]
    prompt = prompts.render("structure", question="Compute 21 + 34.", traces=traces, has_images=False)
    return {"model": "sim", "messages": [{"role": "user", "content": prompt}]}


def post(sim: Simulator, body: dict, timeout: float = 10.0) -> httpx.Response:
    return httpx.post(f"{sim.base_url}/chat/completions", json=body, timeout=timeout)


def test_distill_cli_through_the_openai_backend_writes_a_library_within_budget(tmp_path) -> None:
    data = write_problems(tmp_path / "problems.jsonl", 6)
    out = tmp_path / "library.json"
    with Simulator(latency=0.01, tokens_per_reply=80, seed=3) as sim:
        result = run_ted(
            "distill", "--data", str(data), "--student", sim.spec("sim-student"),
            "--teacher", sim.spec("sim-teacher"), "--out", str(out), "--epochs", "1", "--rollouts", "3",
            "--batch-size", "3", "--budget-tokens", "150", "--max-items", "3",
            env=environ("OPENAI_API_KEY"), timeout=300,
        )  # fmt: skip
        stats = sim.stats()
    assert result.returncode == 0, result.stderr[-2000:]

    lib = Library.load(out)
    assert 0 < len(lib.items) <= 3 and lib.fits()
    assert all(item.text.startswith("When ") for item in lib.items)  # the simulated teacher's lessons
    assert any(entry.op == "merge" for entry in lib.history)  # over budget after batch 2: compressed
    assert sum(item.usage for item in lib.items) > 0  # batch 2's rollouts cited batch 1's lessons
    # Every request was recognised as its stage; n=3 was honoured in one request per problem.
    assert set(stats.requests) == STAGES | {"chat"} and stats.requests["chat"] == 2  # "chat": the system-message probe's pair
    assert [stats.requests[s] for s in ("student", "teacher_solve", "structure", "extract")] == [6, 6, 6, 6]
    assert stats.choices["student"] == 18 and stats.requests["compress"] >= 1
    # ted's cost ledger agrees with what the server saw.
    assert lib.cost.calls["student"] == stats.requests["student"]
    assert lib.cost.generations["student"] == stats.choices["student"] == 18  # n=3 honoured: 6 requests, 18 generations
    assert lib.cost.calls["teacher"] == stats.total_requests - stats.requests["student"] - stats.requests["chat"]
    assert stats.peak_in_flight >= 2  # a batch's calls ran concurrently
    # stderr is a pipe, not a terminal: progress comes as plain lines (the first at once), no bar, no escapes.
    progress = [line for line in result.stderr.splitlines() if line.startswith("epoch 1/1 batch ")]
    assert progress and "rollouts 0/3" in progress[0] and "\x1b" not in result.stderr


def test_replies_depend_on_the_request_and_seed_only() -> None:
    a, b = solve_body("Compute 21 + 34.", seed=1), solve_body("Compute 40 - 12.", seed=2)
    with Simulator(seed=5) as first:
        forward = [post(first, body).json()["choices"][0]["message"]["content"] for body in (a, b)]
    with Simulator(seed=5) as second:
        backward = [post(second, body).json()["choices"][0]["message"]["content"] for body in (b, a)]
    with Simulator(seed=6) as other:
        reseeded = post(other, a).json()["choices"][0]["message"]["content"]

    assert forward == backward[::-1]
    assert reseeded != forward[0]
    assert forward[0].splitlines()[-2].startswith("Answer: ") and forward[0].splitlines()[-1].startswith("Used: [")


def test_choice_i_equals_a_single_request_with_seed_plus_i() -> None:
    """So a client that fills in samples a server did not return gets the same texts."""
    with Simulator() as sim:
        many = post(sim, solve_body(seed=10, n=3)).json()
        singles = [post(sim, solve_body(seed=10 + i, n=1)).json()["choices"][0]["message"]["content"] for i in range(3)]
    assert [c["message"]["content"] for c in many["choices"]] == singles
    assert many["usage"]["completion_tokens"] > 0 and many["usage"]["prompt_tokens"] > 0
    assert len(set(singles)) > 1


def test_latency_is_per_call_and_calls_are_served_concurrently() -> None:
    async def burst(sim: Simulator) -> float:
        async with httpx.AsyncClient(timeout=10) as client:
            started = time.perf_counter()
            await asyncio.gather(*(client.post(f"{sim.base_url}/chat/completions", json=solve_body(seed=i)) for i in range(8)))
            return time.perf_counter() - started

    with Simulator(latency=Latency(0.3)) as sim:
        elapsed = asyncio.run(burst(sim))
        peak = sim.stats().peak_in_flight
    assert 0.3 <= elapsed < 0.6  # eight 0.3 s calls, side by side
    assert peak == 8


def test_each_role_has_its_latency_growing_with_the_reply() -> None:
    """The teacher's stages sleep the teacher's latency, plus seconds per completion token, and the stats say so."""
    with Simulator(latency=Latency(0.05), teacher_latency=Latency(0.3, per_token=0.001)) as sim:
        started = time.perf_counter()
        student = post(sim, solve_body())
        student_s = time.perf_counter() - started
        started = time.perf_counter()
        teacher = post(sim, structure_body()).json()
        teacher_s = time.perf_counter() - started
        stats = sim.stats()
    tokens = teacher["usage"]["completion_tokens"]
    assert student.status_code == 200 and student_s >= 0.05  # lower bounds only: a loaded machine adds time, never removes it
    assert teacher_s >= 0.3 + 0.001 * tokens
    assert stats.mean_latency("student") == pytest.approx(0.05)
    assert stats.mean_latency("structure") == pytest.approx(0.3 + 0.001 * tokens)
    assert stats.mean_latency("extract") == 0.0


def test_models_listing_and_unknown_model() -> None:
    with Simulator(models=["alpha", "beta"]) as sim:
        listed = [m["id"] for m in httpx.get(f"{sim.base_url}/models").json()["data"]]
        missing = post(sim, dict(solve_body(), model="gamma"))
    assert listed == ["alpha", "beta"]
    assert missing.status_code == 404 and "gamma" in missing.json()["error"]["message"]


@pytest.mark.parametrize("fault", FAULTS)
def test_each_fault_looks_on_the_wire_as_it_says(fault: str) -> None:
    body = structure_body() if fault == "truncated_content" else solve_body()
    with Simulator(failure_rate=1.0, faults=[fault], retry_after=2.5, hang_s=5) as sim:
        if fault == "reset":
            with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
                post(sim, body)
        elif fault == "timeout":
            with pytest.raises(httpx.ReadTimeout):
                post(sim, body, timeout=0.3)
        else:
            reply = post(sim, body)
            if fault == "429":
                assert reply.status_code == 429
                assert reply.headers["Retry-After"] == "3" and reply.headers["retry-after-ms"] == "2500"
            elif fault in ("500", "503"):
                assert reply.status_code == int(fault) and reply.json()["error"]["type"] == "server_error"
            elif fault == "bad_json_body":
                assert reply.status_code == 200 and reply.headers["content-type"].startswith("application/json")
                with pytest.raises(json.JSONDecodeError):
                    json.loads(reply.text)
            elif fault == "truncated_content":
                with pytest.raises(json.JSONDecodeError):
                    json.loads(reply.json()["choices"][0]["message"]["content"])
            elif fault == "empty_choices":
                assert reply.status_code == 200 and reply.json()["choices"] == []
            elif fault == "no_answer":
                content = reply.json()["choices"][0]["message"]["content"]
                assert content and "Answer:" not in content and "Used:" not in content
        counted = sim.stats().faults
    assert counted[("structure" if fault == "truncated_content" else "student", fault)] == 1


def test_a_retried_request_can_succeed_and_the_sequence_is_reproducible() -> None:
    """Transport faults depend on the body and how often it was seen, never on other requests."""

    def statuses(seed: int) -> list[int]:
        with Simulator(failure_rate=0.5, faults=["500", "503", "429"], seed=seed) as sim:
            return [post(sim, solve_body()).status_code for _ in range(12)]

    first = statuses(11)
    assert first == statuses(11)
    assert 200 in first and set(first) - {200}
    assert first != statuses(12)


def test_the_simulator_stops_promptly_with_a_hung_request() -> None:
    sim = Simulator(failure_rate=1.0, faults=["timeout"], hang_s=60).start()
    with pytest.raises(httpx.ReadTimeout):
        post(sim, solve_body(), timeout=0.2)
    started = time.perf_counter()
    sim.stop()
    assert time.perf_counter() - started < 5
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{sim.base_url}/models", timeout=1)

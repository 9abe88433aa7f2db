"""Thinking models through the OpenAI backend, against the simulator (tests/sim) over HTTP.

Servers with a reasoning parser (vLLM, SGLang) and DeepSeek-style APIs send the reasoning in
`message.reasoning_content`, apart from the answer; other servers leave it inline as
`<think>…</think>`. Either way the answer and the reasoning must arrive separately and whole,
a cut-off generation must say so (`finish_reason="length"`), and the generation budget must
fit the server's context instead of failing the request.
"""

from __future__ import annotations

import asyncio
import re

import pytest

from ted import prompts
from ted.models import Message, SamplingParams, load_model
from tests.sim import Simulator
from tests.support import environ, run_ted

pytestmark = pytest.mark.integration

SOLVE = [Message("system", prompts.render("solve", library="")), Message("user", "Compute 21 + 34.")]


def chat(spec: str, params: SamplingParams):
    model = load_model(spec)

    async def go():
        try:
            return await model.chat(SOLVE, params), model
        finally:
            await model.aclose()

    return asyncio.run(go())


@pytest.mark.parametrize("form", ["field", "think"])
def test_reasoning_is_kept_apart_from_the_answer(form: str) -> None:
    with Simulator(reasoning=form, tokens_per_reply=60, student_accuracy=1.0) as sim:
        result, _ = chat(sim.spec("thinker"), SamplingParams(n=3, max_tokens=4096, seed=1))
    assert len(result.texts) == len(result.reasoning) == 3
    for text, reasoning in zip(result.texts, result.reasoning):
        assert text.startswith("Answer: 55") and "<think>" not in text and "Step" not in text
        assert reasoning.startswith("Let me solve this step by step.") and "Step 2:" in reasoning
        assert "</think>" not in reasoning and "Answer:" not in reasoning
    assert result.finish_reasons == ["stop"] * 3 and not any(result.truncated(i) for i in range(3))


@pytest.mark.parametrize("form", ["field", "think"])
def test_a_generation_cut_off_while_thinking_says_so(form: str) -> None:
    with Simulator(reasoning=form, tokens_per_reply=400) as sim:
        result, _ = chat(sim.spec("thinker"), SamplingParams(max_tokens=100, seed=1))
    assert result.finish_reasons == ["length"] and result.truncated(0)
    assert result.text == ""  # no answer: the model never stopped thinking
    assert result.reasoning[0].startswith("Let me solve") and len(result.reasoning[0]) >= 300


def test_the_budget_is_clamped_to_the_context_the_server_reports() -> None:
    with Simulator(max_model_len=2048, tokens_per_reply=50) as sim:
        result, model = chat(sim.spec("small-context"), SamplingParams(max_tokens=16384))
        budgets = sim.stats().budgets
    assert result.text.endswith("Answer: 55") or "Answer:" in result.text
    assert model.context_length == 2048
    [(stage, prompt_tokens, max_tokens)] = budgets  # one request, accepted the first time
    assert stage == "student" and prompt_tokens + max_tokens <= 2048 and max_tokens >= 1900


def test_a_server_that_does_not_report_its_context_is_believed_when_it_refuses() -> None:
    with Simulator(max_model_len=3000, report_context=False, tokens_per_reply=50) as sim:
        result, model = chat(sim.spec("quiet-context"), SamplingParams(n=2, max_tokens=16384, seed=3))
        budgets = sim.stats().budgets
    assert len(result.texts) == 2 and all("Answer:" in text for text in result.texts)
    assert model.context_length == 3000  # learnt from the refusal's message
    [(_, prompt_tokens, max_tokens)] = budgets  # the refused request is re-sent once, exactly fitting
    assert prompt_tokens + max_tokens == 3000
    assert result.requests == 1 and result.retries == 1  # the refused send is a retry of the same request, as the client counts its own


def test_distill_with_thinking_models_keeps_the_reasoning_and_counts_cut_off_rollouts(tmp_path) -> None:
    """`ted distill` through the OpenAI backend against a thinking simulator: what the teacher stages are sent."""
    import json

    from ted.library import Library
    from tests.sim import write_problems

    data = write_problems(tmp_path / "problems.jsonl", 9)
    out = tmp_path / "library.json"
    with Simulator(reasoning="field", long_rate=0.3, tokens_per_reply=80, seed=4, keep_requests=True) as sim:
        result = run_ted(
            "distill", "--data", str(data), "--student", sim.spec("thinking-student"),
            "--teacher", sim.spec("thinking-teacher"), "--out", str(out), "--epochs", "1", "--rollouts", "3",
            "--batch-size", "3", "--budget-tokens", "150", "--max-items", "2", "--max-tokens", "200",
            env=environ("OPENAI_API_KEY"), timeout=300,
        )  # fmt: skip
        stats, seen = sim.stats(), sim.requests_seen()
    assert result.returncode == 0, result.stderr[-2000:]
    lib = Library.load(out)

    # Cut-off rollouts: counted by the ledger as the server sent them, and reported.
    cut = stats.cut_off["student"]
    assert cut > 0 and lib.cost.roles["student"].truncated == cut
    assert f"cut off at the token limit: student {cut}" in result.stderr

    def texts(stage: str) -> list[str]:
        return [m["content"] if isinstance(m["content"], str) else "" for s, body in seen if s == stage for m in body["messages"]]

    structure, extract, compress = texts("structure"), texts("extract"), texts("compress")
    # The teacher stages read the reasoning, not only the reply, and are told which attempts were cut off.
    assert all("Reasoning:\nLet me solve this step by step." in t for t in structure)
    assert any("CUT OFF at the token limit" in t for t in structure)
    assert any("CUT OFF at the token limit before answering" in t for t in extract)
    assert all("Its raw trace" in t and "Reasoning:" in t for t in extract)
    assert any(re.search(r"cited: E\d+", t) for t in extract)  # batch 2 saw batch 1's lessons cited
    assert all("It holds" in t and "## Current experience library" in t for t in extract)
    # Compression sees age and verdicts; items carry the verdicts extraction gave.
    assert compress and all(re.search(r"age=\d+ seen=\d+ verdicts=\d+/\d+/\d+: ", t) for t in compress)
    assert sum(e.seen for e in lib.items) > 0
    assert lib.config["max_tokens"] == 200 and len(lib.config["prompts_sha256"]) == 64
    assert json.loads(out.read_text())["items"][0]["verdicts"].keys() == {"helpful", "harmful", "irrelevant"}


def test_from_a_benchmark_copy_to_a_library_the_teacher_sees_the_figures(tmp_path) -> None:
    """The README's path on fixture data: `ted data sample` (MathVerse minus MathVision), then `ted distill`
    through the OpenAI backend; every structuring and extraction request carries the problem's figure."""
    from ted.library import Library
    from tests.fixtures import benchmarks as fx

    fx.write_mathverse(tmp_path / "mathverse")
    fx.write_mathvision(tmp_path / "mathvision")
    sampled = run_ted("data", "sample", "mathverse", "--task", "mathverse", "--samples", "2", "--seed", "0", "--exclude", "mathvision",
                      "--exclude-task", "mathvision", "--out", "train.jsonl", cwd=tmp_path)  # fmt: skip
    assert sampled.returncode == 0, sampled.stderr[-1000:]
    assert "excluded 2 that the evaluation set has (by id 0, by question text 0, by image 2)" in sampled.stderr
    with Simulator(reasoning="think", tokens_per_reply=60, keep_requests=True) as sim:
        distilled = run_ted("distill", "--data", "train.jsonl", "--task", "mathverse", "--student", sim.spec("vl-student"), "--teacher",
                            sim.spec("vl-teacher"), "--out", "lib.json", "--epochs", "1", "--rollouts", "2", cwd=tmp_path, env=environ("OPENAI_API_KEY"), timeout=300)  # fmt: skip
        seen = sim.requests_seen()
    assert distilled.returncode == 0, distilled.stderr[-1000:]
    teacher_requests = [body for stage, body in seen if stage in ("structure", "extract")]
    assert len(teacher_requests) == 4
    for body in teacher_requests:
        parts = body["messages"][0]["content"]
        assert [p["type"] for p in parts] == ["image_url", "text"] and parts[0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert len(Library.load(tmp_path / "lib.json").items) > 0

"""Inference-side cost of the injected library: does a server's prefix cache hit?

The library renders byte-identically for every request (items in ID order), so a server that
keeps the KV cache of a common prompt prefix only has to read each new question. This measures
it with the real `python -m llama_cpp.server` serving the bundled Gemma 3 270M: the time to first
token (TTFT, through ted's OpenAI backend, streaming) of

0. a short warm-up request (so model load and buffer allocation are not counted),
1. a first request with a ~4,000-token library (cold: the whole prompt is evaluated),
2. a second request with the same library and another question (the prefix is reused),
3. a control: another question with a library that differs only in its first lesson's wording,
   so the prompts diverge early and nothing can be reused.

llama.cpp's server reuses the longest common prefix with the previous request by default (one
slot); no `--cache` flag is involved.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from ted.library import Budget, Library
from ted.models.base import ChatModel, Message, SamplingParams
from tests.support.llama import gemma_chat_format, serve_llama

LIBRARY_TOKENS = 4000


def _library(first: str) -> Library:
    """A library whose rendered block is about LIBRARY_TOKENS cl100k tokens; `first` opens it."""
    library = Library(budget=Budget(max_tokens=LIBRARY_TOKENS + 500, max_items=200))
    library.add(first, 0)
    topics = ["units", "signs", "cases", "bounds", "parity", "symmetry", "estimates", "ratios", "angles", "counting"]
    i = 0
    while library.tokens() < LIBRARY_TOKENS - 60:
        topic = topics[i % len(topics)]
        library.add(
            f"When a problem involves {topic} (lesson {i}), restate every given quantity, name the unknown, "
            f"solve in small steps, and before the final answer check the {topic} against a quick independent estimate.",
            0,
        )
        i += 1
    return library


async def _ttft(model: ChatModel, messages: list[Message]) -> float:
    """Seconds until the first streamed piece of the reply arrives."""
    started = time.perf_counter()
    async for _ in model.stream(messages, SamplingParams(max_tokens=4, temperature=0)):
        break
    return time.perf_counter() - started


def measure_ttft(workdir: Path) -> list[str]:
    """Start llama_cpp.server, run the three requests, and return report lines (Markdown table)."""
    from ted.distill.rollouts import student_messages
    from ted.models import load_model
    from ted.tasks import get_task
    from ted.tasks.base import Problem

    with serve_llama(workdir, *gemma_chat_format(workdir), n_ctx=8192, interrupt_requests=True, timeout=180) as server:
        task = get_task("generic")
        library = _library("Before answering, restate what is asked and check that the final line answers exactly that.")
        changed = _library("Before answering, restate what is asked and verify that the final line answers exactly that.")
        questions = [Problem(id=f"q{i}", question=q, answer="0") for i, q in
                     enumerate(["Compute 17 + 25.", "Compute 31 × 4.", "Compute 90 - 48."])]  # fmt: skip
        model = load_model(server.spec, max_retries=0, timeout=600)

        async def go() -> tuple[list[float], int]:
            try:
                # Warm the server up (weights paged in, buffers allocated) on an unrelated short prompt.
                await _ttft(model, [Message("user", "Say hello.")])
                times = []
                for lib, problem in ((library, questions[0]), (library, questions[1]), (changed, questions[2])):
                    times.append(await _ttft(model, student_messages(lib, problem, task)))
                probe = await model.chat(student_messages(library, questions[1], task), SamplingParams(max_tokens=1, temperature=0))
                return times, probe.usage.prompt_tokens
            finally:
                await model.aclose()

        (cold, warm, control), server_tokens = asyncio.run(go())
    tokens = library.tokens()
    return [
        f"Prefix cache (llama_cpp.server, bundled Gemma 3 270M on this machine's CPU; a {len(library.items)}-item library of "
        f"{tokens} cl100k tokens, prompts of about {server_tokens} Gemma tokens, after one warm-up request):",
        "",
        "| request | library | TTFT s |",
        "|---|---|---|",
        f"| 1st (cold) | A | {cold:.2f} |",
        f"| 2nd, new question | A (byte-identical) | {warm:.2f} |",
        f"| 3rd, new question | A with its first lesson reworded | {control:.2f} |",
        "",
        f"ttft: cold={cold:.2f}s warm={warm:.2f}s ({cold / warm:.1f}× faster) changed_prefix={control:.2f}s",
    ]

"""The in-process llama.cpp backend with the bundled Gemma 3 270M GGUF."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from pydantic import BaseModel

from ted.errors import ModelError
from ted.models import ChatModel, Message, SamplingParams, chat_json, load_model
from ted.models.local import model_path

pytestmark = pytest.mark.integration

QUESTION = [Message("user", "Name a colour.")]


@pytest.fixture(scope="module")
def local() -> Iterator[ChatModel]:
    model = load_model(f"gguf:{model_path('local:tiny')}")  # in process whatever TED_LOCAL_ENGINE says
    yield model
    asyncio.run(model.aclose())


def test_reply_with_usage_and_system_prompt(local: ChatModel) -> None:
    params = SamplingParams(max_tokens=8, temperature=0)
    plain = asyncio.run(local.chat(QUESTION, params))
    with_system = asyncio.run(local.chat([Message("system", "Lesson E1: check units. " * 10), *QUESTION], params))

    assert plain.text.strip()
    assert plain.requests == 1 and 1 <= plain.usage.completion_tokens <= 8
    assert plain.finish_reasons == ["length" if plain.usage.completion_tokens == 8 else "stop"]
    # The bundled GGUF has no chat template; the Gemma template used must keep the system prompt.
    assert with_system.usage.prompt_tokens >= plain.usage.prompt_tokens + 50


def test_n_samples_with_distinct_seeds(local: ChatModel) -> None:
    result = asyncio.run(local.chat(QUESTION, SamplingParams(n=2, max_tokens=8, temperature=0.9, seed=3)))
    assert len(result.texts) == 2 and result.requests == 2
    assert result.texts[0] != result.texts[1]
    assert result.usage.completion_tokens >= 2
    again = asyncio.run(local.chat(QUESTION, SamplingParams(n=2, max_tokens=8, temperature=0.9, seed=3)))
    assert again.texts == result.texts  # seeded sampling is reproducible


class Verdict(BaseModel):
    answer: str
    confidence: int


def test_json_schema_is_grammar_constrained(local: ChatModel) -> None:
    ask = [Message("user", "What is 2+2? Reply in JSON.")]
    verdict, result = asyncio.run(chat_json(local, ask, Verdict, SamplingParams(max_tokens=48, temperature=0)))
    assert isinstance(verdict, Verdict)
    assert result.requests == 1  # valid at the first try: the grammar allows nothing else


def test_stream_matches_the_plain_reply(local: ChatModel) -> None:
    params = SamplingParams(max_tokens=12, temperature=0)

    async def collect() -> list[str]:
        return [piece async for piece in local.stream(QUESTION, params)]

    pieces = asyncio.run(collect())
    assert len(pieces) > 1
    assert "".join(pieces) == asyncio.run(local.chat(QUESTION, params)).text


def test_concurrent_calls_are_serialised(local: ChatModel) -> None:
    async def both() -> list[str]:
        params = SamplingParams(max_tokens=6, temperature=0)
        results = await asyncio.gather(*(local.chat(QUESTION, params) for _ in range(3)))
        return [r.text for r in results]

    texts = asyncio.run(both())
    assert len(set(texts)) == 1  # greedy and one lock: no interleaving corrupts the context


def test_images_are_refused(local: ChatModel) -> None:
    picture = Image.new("RGB", (4, 4), "red")
    with pytest.raises(ModelError, match="text-only model and cannot read images"):
        asyncio.run(local.chat([Message("user", "What colour?", images=[picture])]))


def test_missing_gguf_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"^GGUF file not found: .*nope\.gguf; pass gguf:PATH"):
        load_model(f"gguf:{tmp_path / 'nope.gguf'}")


def test_bundled_model_is_assembled_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TED_CACHE", str(tmp_path))
    path = Path(model_path("local:tiny"))
    assert path.parent == tmp_path / "models" and path.stat().st_size > 200_000_000
    stamp = path.stat().st_mtime_ns
    assert model_path("local:tiny") == str(path) and path.stat().st_mtime_ns == stamp
    assert os.listdir(path.parent) == [path.name]  # no temporary file left behind


def test_gemma_template_keeps_the_system_prompt_and_text_parts() -> None:
    from llama_cpp.llama_chat_format import hf_tokenizer_config_to_chat_formatter

    from ted.models.llama_cpp import GEMMA_CHAT_CONFIG

    render = hf_tokenizer_config_to_chat_formatter(GEMMA_CHAT_CONFIG)
    parts = [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}, {"type": "text", "text": "Q?"}]
    chat = [{"role": "system", "content": "E1. Check units."}, {"role": "user", "content": parts}]
    assert render(messages=chat).prompt == (
        "<bos><start_of_turn>user\nE1. Check units.\n\nQ?<end_of_turn>\n<start_of_turn>model\n"
    )
    turns = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]
    assert render(messages=turns).prompt == (
        "<bos><start_of_turn>user\na<end_of_turn>\n<start_of_turn>model\nb<end_of_turn>\n"
        "<start_of_turn>user\nc<end_of_turn>\n<start_of_turn>model\n"
    )

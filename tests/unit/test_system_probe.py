"""The system-message probe reads the chat template's effect on prompt_tokens, whatever the template's defaults."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import pytest

from ted.models.base import ChatResult, Message, SamplingParams, Usage
from ted.system_probe import system_kept

QWEN_DEFAULT = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."


class Templated:
    """Counts prompt tokens (words) of the prompt a chat template renders."""

    def __init__(self, render: Callable[[Sequence[Message]], str]) -> None:
        self.render = render

    async def chat(self, messages: Sequence[Message], params: SamplingParams | None = None) -> ChatResult:
        return ChatResult(texts=["OK"], usage=Usage(len(self.render(messages).split()), 1))


def chatml_with_default(messages: Sequence[Message]) -> str:
    """Qwen2.5's template: a default system prompt when none is given."""
    system = [m.text for m in messages if m.role == "system"] or [QWEN_DEFAULT]
    return " ".join([*system, *(m.text for m in messages if m.role != "system")])


def dropping(messages: Sequence[Message]) -> str:
    return " ".join(m.text for m in messages if m.role != "system")


@pytest.mark.parametrize(("render", "kept"), [(chatml_with_default, True), (dropping, False)])
def test_probe(render: Callable[[Sequence[Message]], str], kept: bool) -> None:
    assert asyncio.run(system_kept(Templated(render))) is kept

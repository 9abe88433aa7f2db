"""Reasoning kept apart from the answer, whatever form a backend returns it in."""

from __future__ import annotations

import pytest

from ted.models.base import ChatResult, parse_json_reply, split_thinking
from ted.models.transformers_local import _generated_length


@pytest.mark.parametrize(
    ("reply", "reasoning", "answer"),
    [
        ("Answer: 4", "", "Answer: 4"),
        ("<think>2 and 2</think>\n\nAnswer: 4", "2 and 2", "Answer: 4"),
        ("2 and 2\n</think>\nAnswer: 4", "2 and 2", "Answer: 4"),  # the template opened the block in the prompt
        ("<think>2 and 2, then", "2 and 2, then", ""),  # cut off while thinking
        ("<THINK>a</THINK>b<think>c</think>", "a\n\nc", "b"),
    ],
)
def test_split_thinking(reply: str, reasoning: str, answer: str) -> None:
    assert split_thinking(reply) == (reasoning, answer)


def test_a_result_keeps_reasoning_from_the_field_and_inline() -> None:
    result = ChatResult(texts=[], requests=1)
    result.add("Answer: 4", "stop", reasoning="from the field")
    result.add("<think>inline</think>Answer: 5", "length")
    result.add(None, "length", reasoning="cut off")
    assert result.texts == ["Answer: 4", "Answer: 5", ""]
    assert result.reasoning == ["from the field", "inline", "cut off"]
    assert [result.truncated(i) for i in range(3)] == [False, True, True]
    assert ChatResult(texts=["x"]).reasoning_of(0) == "" and not ChatResult(texts=["x"]).truncated(0)


def test_json_after_thinking_parses() -> None:
    from pydantic import BaseModel

    class Reply(BaseModel):
        answer: int

    assert parse_json_reply('<think>{"answer": 1} is wrong</think>```json\n{"answer": 2}\n```', Reply).answer == 2


def test_transformers_generation_knows_when_it_hit_the_limit() -> None:
    assert _generated_length([5, 2, 9, 9], {2}) == (2, True)
    assert _generated_length([5, 7, 9], {2}) == (3, False)


def test_images_are_bounded_in_count_and_size() -> None:
    import io

    from PIL import Image

    from ted.models.base import MAX_IMAGE_SIDE, MAX_IMAGES, bounded_images, image_to_png_bytes

    wide = Image.new("RGB", (6840, 3549), "white")
    sent = Image.open(io.BytesIO(image_to_png_bytes(wide)))
    assert max(sent.size) == MAX_IMAGE_SIDE and sent.size[0] / sent.size[1] == pytest.approx(6840 / 3549, rel=0.01)
    assert wide.size == (6840, 3549)  # the caller's image is untouched
    assert Image.open(io.BytesIO(image_to_png_bytes(Image.new("RGB", (40, 30))))).size == (40, 30)
    assert len(bounded_images([wide] * 20)) == MAX_IMAGES

"""What the teacher reads of an attempt: its reasoning and its reply, bounded, and whether it was cut off.

Thinking models reason for thousands of tokens before a short reply, and the paper's teacher
compares the reasoning, not the summary. A trace is the reasoning (when a model returns it apart)
followed by the reply; a very long one keeps its beginning and end, with the omitted middle
marked, and the prompts say so. The teacher sees the problem's images too, as the student did.
"""

from __future__ import annotations

from typing import Any

from ted.distill.rollouts import Rollout
from ted.models.base import ChatModel, bounded_images
from ted.tasks.base import Problem

TRACE_CHARS = 16_000  # per trace, for structuring: about 4,000 tokens, head and tail
EXCERPT_CHARS = 4_000  # per attempt, for extraction, next to its structured chain


def bounded(text: str, limit: int) -> str:
    """`text`, or its first and last `limit / 2` characters with the omission marked."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n[… {len(text) - 2 * half:,} characters omitted …]\n{text[-half:]}"


def trace(rollout: Rollout, limit: int) -> str:
    """The attempt as the teacher reads it: reasoning, then reply, within `limit` characters."""
    if not rollout.reasoning:
        return bounded(rollout.text, limit)
    return bounded(f"Reasoning:\n{rollout.reasoning}\n\nReply:\n{rollout.text}", limit)


def teacher_images(teacher: ChatModel, problem: Problem) -> list[Any]:
    """The problem's images for a teacher call: what the student saw, if the teacher can read images."""
    if not getattr(teacher, "supports_images", True):
        return []
    return bounded_images(problem.images)

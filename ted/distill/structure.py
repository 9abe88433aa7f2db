"""Structuring: raw traces (k rollouts + the teacher's) become `Premises → Steps → Conclusion` chains.

One teacher call covers all traces of a problem, with the problem's images. A trace is the
attempt's reasoning and reply (`traces.trace`), bounded; a cut-off attempt is labelled so. If the
teacher's JSON cannot be used even after the re-ask, each trace falls back to its own bounded
text, so extraction still sees it. The teacher's own trace does not depend on the library: when
its chain is already known (solved once per run), only the student's traces are sent again.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, Field

from ted import prompts
from ted.distill.rollouts import Rollout
from ted.distill.traces import TRACE_CHARS, teacher_images, trace
from ted.models.base import ChatModel, ChatResult, Message, SamplingParams, chat_json
from ted.tasks.base import Problem


class Chain(BaseModel):
    trace: int = 0
    premises: list[str] = Field(default_factory=list)
    steps: list[str] = Field(default_factory=list)
    conclusion: str = ""

    def render(self) -> str:
        lines = ["Premises: " + "; ".join(self.premises)] if self.premises else []
        lines += [f"Step {i}: {step}" for i, step in enumerate(self.steps, 1)]
        lines.append(f"Conclusion: {self.conclusion or 'none'}")
        return "\n".join(lines)


class Chains(BaseModel):
    chains: list[Chain]


@dataclass
class Structured:
    """Chains aligned with their traces: `student[i]` for rollout i, then the teacher's."""

    student: list[str]
    teacher: str
    parsed: bool
    teacher_chained: bool = False  # `teacher` is a chain (now or from an earlier epoch), not the raw trace: kept for later epochs


def structure_prompt(question: str, traces: list[dict[str, object]], has_images: bool = False) -> str:
    """The structuring prompt: the instructions first (the same for every problem, so a server's
    prefix cache holds them: `prime.py`), then the problem and its traces."""
    return prompts.render("structure", question=question, traces=traces, has_images=has_images)


async def structure(
    teacher: ChatModel, problem: Problem, student: list[Rollout], teacher_trace: Rollout, params: SamplingParams,
    teacher_chain: str | None = None,
) -> tuple[Structured, ChatResult]:
    """The chains of `student`'s traces and of the teacher's (`teacher_chain` if already known)."""
    runs = [*student, teacher_trace] if teacher_chain is None else list(student)
    labels = [f"student attempt {i + 1}" for i in range(len(student))] + ["teacher"]
    traces = [{"label": label, "text": trace(run, TRACE_CHARS), "truncated": run.truncated} for label, run in zip(labels, runs)]
    images = teacher_images(teacher, problem)
    prompt = structure_prompt(problem.question, traces, bool(images))
    parsed, result = await chat_json(teacher, [Message("user", prompt, images=images)], Chains, params)
    rendered: list[str | None] = [None] * len(traces)
    for position, chain in enumerate(parsed.chains if parsed is not None else []):
        index = chain.trace if 0 <= chain.trace < len(traces) else position
        if index < len(traces):
            rendered[index] = chain.render()
    chained = teacher_chain is not None
    if not chained:  # the teacher's trace was sent: its chain, else its own bounded text
        chain, raw = rendered.pop(), traces.pop()["text"]
        chained, teacher_chain = chain is not None, chain or raw
    chains = [text if text is not None else t["text"] for text, t in zip(rendered, traces)]
    return Structured(chains, teacher_chain, parsed is not None, chained), result

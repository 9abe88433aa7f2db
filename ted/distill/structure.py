"""Structuring: raw traces (k rollouts + the teacher's) become `Premises → Steps → Conclusion` chains.

One teacher call covers all traces of a problem. If the teacher's JSON cannot be used even after
the re-ask, each trace falls back to its own (truncated) text, so extraction still sees it.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, Field

from ted import prompts
from ted.distill.rollouts import Rollout
from ted.models.base import ChatModel, ChatResult, Message, SamplingParams, chat_json

MAX_TRACE_CHARS = 6000


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


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TRACE_CHARS else text[: MAX_TRACE_CHARS // 2] + "\n…\n" + text[-MAX_TRACE_CHARS // 2 :]


async def structure(
    teacher: ChatModel, question: str, student: list[Rollout], teacher_trace: Rollout, params: SamplingParams
) -> tuple[Structured, ChatResult]:
    traces = [{"label": f"student attempt {i + 1}", "text": _clip(r.text)} for i, r in enumerate(student)]
    traces.append({"label": "teacher", "text": _clip(teacher_trace.text)})
    prompt = prompts.render("structure", question=question, traces=traces)
    parsed, result = await chat_json(teacher, [Message("user", prompt)], Chains, params)
    rendered = [t["text"] for t in traces]
    if parsed is not None:
        for position, chain in enumerate(parsed.chains):
            index = chain.trace if 0 <= chain.trace < len(traces) else position
            if index < len(traces):
                rendered[index] = chain.render()
    return Structured(student=rendered[:-1], teacher=rendered[-1], parsed=parsed is not None), result

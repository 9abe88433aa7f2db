"""A scripted ChatModel for unit tests of the algorithm: fixed, deterministic replies, recorded calls.

It recognises each pipeline stage by its prompt and answers in that stage's format. Problems are
"Compute A + B." questions; the student errs deterministically for some seeds, so rollouts are
graded both ways. Replies depend only on the request (never on call order), like a seeded model.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field

from ted import prompts
from ted.models.base import BaseChatModel, ChatResult, Message, SamplingParams, Usage
from tests.sim.replies import stage_of

WORDS = ["units", "signs", "cases", "bounds", "parity", "symmetry", "diagrams", "invariants", "edge cases", "definitions",
         "estimates", "substitution", "factoring", "counting", "ratios", "angles"]


def _h(*parts: object) -> int:
    return int.from_bytes(hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=4).digest(), "big")


@dataclass
class ScriptedModel(BaseChatModel):
    """Deterministic replies per stage. `calls` records (stage, messages, params)."""

    name: str = "scripted"
    calls: list[tuple[str, list[Message], SamplingParams]] = field(default_factory=list)
    compress_replies: list[str] | None = None

    def __post_init__(self) -> None:
        super().__init__(f"scripted:{self.name}", self.name, max_concurrency=64)
        self.backend = "scripted"

    @staticmethod
    def stage(messages: list[Message]) -> str:
        """The stage that sent `messages`, read from the prompt files as the simulator reads it."""
        return stage_of([{"content": message.text} for message in messages[:1]])

    async def _chat(self, messages: list[Message], params: SamplingParams) -> ChatResult:
        stage = self.stage(messages)
        self.calls.append((stage, messages, params))
        texts = [self.reply(stage, messages, params, i) for i in range(params.n)]
        return ChatResult(texts=texts, usage=Usage(prompt_tokens=sum(len(m.text) // 4 for m in messages), completion_tokens=sum(len(t) // 4 for t in texts)), requests=params.n)

    def reply(self, stage: str, messages: list[Message], params: SamplingParams, i: int) -> str:
        user = messages[-1].text
        if stage in ("student", "teacher_solve", "chat"):
            a, b = (int(x) for x in re.findall(r"Compute (\d+) \+ (\d+)", user)[0])
            ids = re.findall(r"^\[(E\d+)\]", messages[0].text, re.M)
            wrong = stage == "student" and _h(params.seed, i, user) % 3 == 0
            cited = ids[: 1 + _h(params.seed, i) % 2] if ids else []
            return f"{a} plus {b}. Answer: {a + b + (1 if wrong else 0)}\nUsed: [{', '.join(cited)}]"
        if stage == "structure":
            n = len(re.findall(r"^## Trace \d+", user, re.M))
            return json.dumps({"chains": [{"trace": t, "premises": ["two numbers"], "steps": ["add them"], "conclusion": "sum"} for t in range(n)]})
        if stage == "extract":
            q = re.search(r"## Problem\n(.*)\n", user).group(1)
            ids = re.findall(r"^\[(E\d+)\]", user, re.M)
            word = WORDS[_h(q) % len(WORDS)]
            ops = [{"op": "add", "text": f"When the {word} matter, re-check them and verify the final sum before answering.", "reason": "r"}]
            if ids and _h(q, "u") % 2:
                ops.append({"op": "update", "id": ids[_h(q) % len(ids)], "text": f"When the {word} are given, restate them and recompute once before concluding.", "reason": "u"})
            return json.dumps({"operations": ops})
        if stage == "compress":
            if self.compress_replies:
                return self.compress_replies.pop(0)
            items = re.findall(r"^\[(E\d+)\] usage=(\d+)", user, re.M)
            ranked = sorted(items, key=lambda x: (int(x[1]), -int(x[0][1:])), reverse=True)
            keep = [i for i, _ in ranked[:2]]
            ops = [{"op": "merge", "ids": keep, "text": "When an answer is ready, re-check every quantity and recompute once before giving it."}] if len(keep) == 2 else []
            ops += [{"op": "delete", "ids": [i]} for i, _ in ranked[2:]]
            return json.dumps({"operations": ops})
        raise AssertionError(stage)


def sum_problems(n: int) -> list:
    from ted.tasks.base import Problem

    return [Problem(id=f"p{i}", question=f"Compute {3 + i} + {10 + 2 * i}.", answer=str(13 + 3 * i)) for i in range(n)]


class SumTask:
    """A minimal Task for algorithm tests: integer answers after `Answer:`."""

    name = "sum"

    def system_prompt(self, library_block: str) -> str:
        return prompts.render("solve", library=library_block)

    def format_prompt(self, problem) -> str:  # type: ignore[no-untyped-def]
        return problem.question + "\nEnd with `Answer: <number>`."

    def grade(self, text: str, problem):  # type: ignore[no-untyped-def]
        from ted.tasks.base import Grade

        found = re.findall(r"Answer:\s*(-?\d+)", text)
        answer = found[-1] if found else None
        return Grade(answer, answer == problem.answer)

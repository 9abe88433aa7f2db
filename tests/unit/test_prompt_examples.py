"""The teacher's prompts show reply shapes, not replies: nothing a small model can copy out of a
prompt is accepted as a lesson, no prompt names a lesson id the library does not hold, the text
shared across calls comes before the problem (a server's prefix cache reuses it), and the
two-step prompt set asks for notes first, then the JSON, in one conversation."""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from ted import prompts
from ted.distill.compress import compress
from ted.distill.extract import ExtractOp, extract, validate
from ted.distill.rollouts import Rollout
from ted.distill.structure import Structured, structure
from ted.errors import ConfigError
from ted.library import Budget, Library
from ted.library.lessons import lesson_problem
from ted.models.base import Message, SamplingParams
from ted.tasks.base import Problem
from ted.tokens import get_counter
from tests.scripted import ScriptedModel
from tests.support import make_library

COUNTER = get_counter()
PROBLEM = Problem(id="p", question="Ann buys 17 apples and eats 4. How many apples are left?", answer="13")
LESSONS = ["When a quantity is removed from a total, subtract it from the total.", "When a problem has several steps, write each result before the next."]
CHAINS = Structured(student=["Step 1: 17 - 4 = 13", "Step 1: 17 + 4 = 21"], teacher="Step 1: 17 - 4 = 13", parsed=True)
ATTEMPTS = [Rollout("Answer: 13\nUsed: [E1]", "13", True, ["E1"]), Rollout("Answer: 21\nUsed: [E2]", "21", False, ["E2"])]
# A lesson no prompt holds: the validator accepts real lessons, so refusals below are about copying.
FRESH = "When a quantity is shared out equally, divide the total by the number of shares."


class Recording(ScriptedModel):
    """Records every teacher prompt; in the two-step set, plain notes for the free-text turn."""

    def reply(self, stage, messages, params, i):  # type: ignore[no-untyped-def]
        if stage == "extract" and params.json_schema is None:
            return "Diagnosis: the wrong attempt added.\nVerdicts: E2 harmful\nLessons: add " + FRESH
        if stage == "extract":
            return json.dumps({"diagnosis": "d", "operations": [{"op": "add", "text": FRESH}]})
        return super().reply(stage, messages, params, i)


def library(n: int = 2, **budget: int) -> Library:
    return make_library(LESSONS[:n], budget=Budget(**budget))


def teacher_prompts(prompt_set: prompts.PromptSet) -> list[tuple[str, list[Message]]]:
    """Every teacher stage's messages as the stages send them, for one problem."""
    teacher = Recording("teacher")
    with prompts.using(prompt_set):
        asyncio.run(structure(teacher, PROBLEM, ATTEMPTS, ATTEMPTS[0], None))
        asyncio.run(extract(teacher, library(), PROBLEM, ATTEMPTS, ATTEMPTS[0], CHAINS, None, COUNTER))
        asyncio.run(compress(library(max_items=1), "teacher", COUNTER, step=2, seed=0, teacher=teacher))
    return [(stage, messages) for stage, messages, _ in teacher.calls]


SETS = [prompts.DEFAULT, prompts.load("two-step")]


def _quoted_and_sentences(text: str) -> list[str]:
    quoted = re.findall(r'"([^"\n]+)"', text)
    sentences = [s.strip() for s in re.split(r"(?<=[.;:!?])\s+|\n", text)]
    return [s for s in quoted + sentences if s]


@pytest.mark.parametrize("prompt_set", SETS, ids=["default", "two-step"])
def test_nothing_copied_from_a_teacher_prompt_is_accepted(prompt_set: prompts.PromptSet) -> None:
    snapshot = library()
    data = [PROBLEM.question, *LESSONS, *CHAINS.student, CHAINS.teacher]
    calls = teacher_prompts(prompt_set)
    assert {stage for stage, _ in calls} == {"structure", "extract", "compress"}
    with prompts.using(prompt_set):
        assert validate(ExtractOp(op="add", text=FRESH), snapshot, PROBLEM, []) is None
        checked = 0
        for stage, messages in calls:
            for message in messages:
                if message.role != "user":
                    continue
                for text in _quoted_and_sentences(message.text):
                    if len(text) < 12 or any(text in part or part in text for part in data):
                        continue  # the problem and the library are data, not examples (copying them is refused as a duplicate)
                    for op in (ExtractOp(op="add", text=text), ExtractOp(op="update", id="E1", text=text)):
                        assert validate(op, snapshot, PROBLEM, []) is not None, (stage, text)
                    assert lesson_problem(text, prompt_set.words) is not None, (stage, text)
                    checked += 1
        assert checked > 30  # the instructions were read, not skipped


@pytest.mark.parametrize("prompt_set", SETS, ids=["default", "two-step"])
def test_no_prompt_names_an_id_the_library_lacks(prompt_set: prompts.PromptSet) -> None:
    for stage, messages in teacher_prompts(prompt_set):
        named = {i for m in messages if m.role == "user" for i in re.findall(r"\bE\d+\b", m.text)}
        assert named <= {"E1", "E2"}, stage


def test_the_shared_text_comes_before_the_problem() -> None:
    """Two extraction prompts on different problems with one library share everything up to the
    problem; two structuring prompts share their instructions; the library precedes the problem."""
    other = Problem(id="q", question="Bo has 30 pens and gives away 9. How many pens are left?", answer="21")
    teacher = Recording("teacher")
    for problem in (PROBLEM, other):
        asyncio.run(structure(teacher, problem, ATTEMPTS, ATTEMPTS[0], None))
        asyncio.run(extract(teacher, library(), problem, ATTEMPTS, ATTEMPTS[0], CHAINS, None, COUNTER))
    by_stage: dict[str, list[str]] = {}
    for stage, messages, _ in teacher.calls:
        by_stage.setdefault(stage, []).append(messages[0].text)
    for stage, (first, second) in by_stage.items():
        shared = len(_common_prefix(first, second))
        assert first.index("## Problem") <= shared, stage  # everything before the problem is shared
    extract_prompt = by_stage["extract"][0]
    assert extract_prompt.index(LESSONS[0]) < extract_prompt.index("## Problem") < extract_prompt.index("## Student attempts")
    assert extract_prompt.index("Reply with one JSON object") < extract_prompt.index("## Current experience library")


def _common_prefix(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


def test_two_step_extraction_is_one_conversation_notes_then_json() -> None:
    teacher = Recording("teacher")
    with prompts.using(prompts.load("two-step")):
        result, cost = asyncio.run(extract(teacher, library(), PROBLEM, ATTEMPTS, ATTEMPTS[0], CHAINS, SamplingParams(temperature=0.3, max_tokens=300), COUNTER))
    (_, notes, notes_params), (_, final, final_params) = teacher.calls
    assert notes_params.json_schema is None and final_params.json_schema is not None
    assert notes_params.max_tokens == final_params.max_tokens == 300
    assert "plain text" in notes[0].text and "Reply with one JSON object" not in notes[0].text
    assert [m.role for m in final] == ["user", "assistant", "user"] and final[0].text == notes[0].text  # the second turn extends the first
    assert final[1].text.startswith("Diagnosis:") and "Reply with one JSON object" in final[2].text
    assert [op.text for op in result.ops] == [FRESH] and cost.requests == 2


def test_one_step_extraction_is_one_call() -> None:
    teacher = Recording("teacher")
    result, cost = asyncio.run(extract(teacher, library(), PROBLEM, ATTEMPTS, ATTEMPTS[0], CHAINS, None, COUNTER))
    assert len(teacher.calls) == 1 and cost.requests == 1 and [op.text for op in result.ops] == [FRESH]


def test_prompt_sets_by_name_and_folder(tmp_path) -> None:  # type: ignore[no-untyped-def]
    two_step = prompts.load("two-step")
    assert two_step.has("extract_ops") and not prompts.DEFAULT.has("extract_ops") and two_step.digest != prompts.DEFAULT.digest
    (tmp_path / "extract_ops.md").write_text("Now the JSON.\n{{ reply_format }}")
    assert prompts.load(tmp_path).has("extract_ops")  # a folder may hold a set's optional template
    with pytest.raises(ConfigError, match="nor a packaged set"):
        prompts.load("three-step")


def test_compression_refuses_a_text_copied_from_its_prompt() -> None:
    lib = library(max_items=1)
    copied = json.dumps({"operations": [{"op": "merge", "ids": ["E1", "E2"], "text": "one lesson that covers them all"}]})
    asyncio.run(compress(lib, "teacher", COUNTER, step=2, seed=0, teacher=ScriptedModel("t", compress_replies=[copied] * 3)))
    assert all(item.text in LESSONS for item in lib.items)  # the copy was skipped; the fallback dropped an item instead

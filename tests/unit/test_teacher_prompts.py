"""The teacher's prompts and what the teacher stages receive.

Prompts show reply shapes, not replies: nothing a small model can copy out of a prompt is accepted
as a lesson, no prompt names a lesson id the library does not hold, the text shared across calls
comes before the problem (a server's prefix cache reuses it), and the two-step prompt set asks for
notes first, then the JSON, in one conversation. What the stages send and take: the reply schema
with verdicts applied to items, compression seeing verdicts and ages, the problem's images, lesson
limits and common constants, --skip-solved, and a swappable prompt set recorded by hash."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from PIL import Image

from ted import prompts
from ted.distill.compress import compress
from ted.distill.config import RunConfig
from ted.distill.extract import ExtractOp, extract, validate
from ted.distill.pipeline import Distiller
from ted.distill.rollouts import Rollout
from ted.distill.structure import Structured, structure
from ted.errors import ConfigError
from ted.library import Budget, Experience, Library
from ted.library.lessons import lesson_problem
from ted.models.base import Message, SamplingParams
from ted.tasks.base import Problem
from ted.tokens import get_counter
from tests.scripted import ScriptedModel, SumTask, sum_problems
from tests.support import make_library

COUNTER = get_counter()
PROBLEM = Problem(id="p", question="Ann buys 17 apples and eats 4. How many apples are left?", answer="13")
LESSONS = ["When a quantity is removed from a total, subtract it from the total.", "When a problem has several steps, write each result before the next."]
CHAINS = Structured(student=["Step 1: 17 - 4 = 13", "Step 1: 17 + 4 = 21"], teacher="Step 1: 17 - 4 = 13", parsed=True)
ATTEMPTS = [Rollout("Answer: 13\nUsed: [E1]", "13", True, ["E1"]), Rollout("Answer: 21\nUsed: [E2]", "21", False, ["E2"])]
# A lesson no prompt holds: the validator accepts real lessons, so refusals below are about copying.
FRESH = "When a quantity is shared out equally, divide the total by the number of shares."
# A problem with a figure, for what the stages send besides text.
FIGURE = Image.new("RGB", (40, 30), "white")
ANGLES = Problem(id="p", question="Lines AB and CD are parallel and angle 1 is 72 degrees; find angle 2.", answer="108", images=[FIGURE])
ANGLE_LESSONS = ["When a figure marks parallel lines, label the equal angles first.", "When two angles form a line, they sum to a straight angle."]


class Teacher(ScriptedModel):
    """A scripted teacher (its prompts recorded in `calls`) whose extraction JSON is `extract_reply`
    (default: one fresh lesson), with plain notes for the two-step set's free-text turn."""

    def __init__(self, extract_reply: dict | None = None) -> None:
        super().__init__("teacher")
        self.extract_reply = extract_reply or {"diagnosis": "d", "operations": [{"op": "add", "text": FRESH}]}

    def reply(self, stage, messages, params, i):  # type: ignore[no-untyped-def]
        if stage == "extract" and params.json_schema is None:
            return "Diagnosis: the wrong attempt added.\nVerdicts: E2 harmful\nLessons: add " + FRESH
        if stage == "extract":
            return json.dumps(self.extract_reply)
        return super().reply(stage, messages, params, i)


def library(n: int = 2, lessons: list[str] = LESSONS, **budget: int) -> Library:
    return make_library(lessons[:n], budget=Budget(**budget))


def angle_attempts() -> list[Rollout]:
    return [
        Rollout("angle 2 = 108\nAnswer: 108\nUsed: [E1]", "108", True, ["E1"], reasoning="Parallel lines give equal angles..."),
        Rollout("Answer: 72\nUsed: [E2]", "72", False, ["E2"]),
        Rollout("", None, False, [], reasoning="I start by labelling the figure and then", truncated=True),
    ]


# --------------------------------------------------------------------------- prompts show shapes, not replies
def teacher_prompts(prompt_set: prompts.PromptSet) -> list[tuple[str, list[Message]]]:
    """Every teacher stage's messages as the stages send them, for one problem."""
    teacher = Teacher()
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
    teacher = Teacher()
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
    teacher = Teacher()
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
    teacher = Teacher()
    result, cost = asyncio.run(extract(teacher, library(), PROBLEM, ATTEMPTS, ATTEMPTS[0], CHAINS, None, COUNTER))
    assert len(teacher.calls) == 1 and cost.requests == 1 and [op.text for op in result.ops] == [FRESH]


class RewritingTeacher(Teacher):
    """Proposes a lesson that copies the problem's numbers, then, shown the refusal, `rewrite`."""

    def __init__(self, rewrite: str = FRESH, first: str = "When Ann has 17 apples and eats 4, subtract 4 from 17.") -> None:
        super().__init__()
        self.replies = [first, rewrite]

    def reply(self, stage, messages, params, i):  # type: ignore[no-untyped-def]
        if stage == "extract":
            text = self.replies[min(len(self.calls), len(self.replies)) - 1]
            return json.dumps({"diagnosis": "The wrong attempt added.", "operations": [{"op": "add", "text": text}]})
        return super().reply(stage, messages, params, i)


def test_a_due_lesson_refused_for_copying_is_asked_for_again_once_with_the_reasons() -> None:
    teacher = RewritingTeacher()
    result, cost = asyncio.run(extract(teacher, library(), PROBLEM, ATTEMPTS, ATTEMPTS[0], CHAINS, None, COUNTER))
    assert result.asked_again and [op.text for op in result.ops] == [FRESH] and cost.requests == 2
    (first_reason,) = [r.reason for r in result.rejected]
    assert first_reason.value == "copies numbers from the problem"  # the refused one stays in the call log
    (_, first, _), (_, again, params) = teacher.calls
    assert [m.role for m in again] == ["user"] and again[0].text.startswith(first[0].text + "\n\n")  # the same request, then the refusals
    assert '"When Ann has 17 apples and eats 4, subtract 4 from 17.": refused, copies numbers from the problem' in again[0].text
    assert params.json_schema["properties"]["operations"]["minItems"] == 1

    stubborn = RewritingTeacher(rewrite="When Ann eats 4 of 17 apples, 13 are left.")
    result, _ = asyncio.run(extract(stubborn, library(), PROBLEM, ATTEMPTS, ATTEMPTS[0], CHAINS, None, COUNTER))
    assert result.asked_again and not result.ops and len(result.rejected) == 2 and len(stubborn.calls) == 2  # once, not again


@pytest.mark.parametrize("case", ["teacher wrong", "all attempts right", "refused as a duplicate"])
def test_no_second_turn_when_no_lesson_is_due_or_a_rewrite_cannot_help(case: str) -> None:
    teacher_run, attempts, first = ATTEMPTS[0], ATTEMPTS, "When Ann has 17 apples and eats 4, subtract 4 from 17."
    if case == "teacher wrong":
        teacher_run = ATTEMPTS[1]
    elif case == "all attempts right":
        attempts = [ATTEMPTS[0], ATTEMPTS[0]]
    else:
        first = LESSONS[0]
    teacher = RewritingTeacher(first=first)
    result, _ = asyncio.run(extract(teacher, library(), PROBLEM, attempts, teacher_run, CHAINS, None, COUNTER))
    assert len(teacher.calls) == 1 and not result.asked_again and not result.ops and len(result.rejected) == 1


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


# --------------------------------------------------------------------------- what the teacher stages receive
def test_extraction_reply_schema_and_verdicts_applied_to_items() -> None:
    teacher = Teacher({
        "diagnosis": "The correct attempt used the supplementary angle; the wrong one copied angle 1.",
        "lesson_verdicts": [{"id": "E1", "verdict": "helpful"}, {"id": "E2", "verdict": "harmful"},
                            {"id": "E2", "verdict": "helpful"}, {"id": "E9", "verdict": "helpful"}],
        "operations": [{"op": "update", "id": "E2", "text": "When two angles form a straight line, they sum to 180 degrees: subtract, do not copy."}],
    })  # fmt: skip
    snapshot = library(lessons=ANGLE_LESSONS)
    chains = Structured(student=["chain 1", "chain 2", "chain 3"], teacher="teacher chain", parsed=True)
    teacher_run = Rollout("Answer: 108", "108", True, [])
    result, _ = asyncio.run(extract(teacher, snapshot, ANGLES, angle_attempts(), teacher_run, chains, None, COUNTER))
    assert result.diagnosis.startswith("The correct attempt used")
    assert result.verdicts == [("E1", "helpful"), ("E2", "harmful")]  # first verdict per cited lesson; E9 was not cited
    assert [op.id for op in result.ops] == ["E2"]  # "180 degrees" is a common constant, not this problem's number
    live = library(lessons=ANGLE_LESSONS)
    live.record_verdicts(result.verdicts)
    assert live.get("E1").verdicts.helpful == 1 and live.get("E2").verdicts.harmful == 1

    (_, messages, _), = [call for call in teacher.calls if call[0] == "extract"]
    prompt = messages[0].text
    assert messages[0].images == [FIGURE]  # the teacher sees the figure the student saw
    assert "### Student attempt 1: CORRECT (final answer: 108; cited: E1)" in prompt
    assert "### Student attempt 3: WRONG, CUT OFF at the token limit before answering (final answer: none; cited: none)" in prompt
    assert "Reasoning:\nParallel lines give equal angles" in prompt  # the raw trace beside the chain
    assert "It holds 2 of at most 15 lessons" in prompt and "nearly full" not in prompt
    assert "The ground-truth answer is authoritative" in prompt and '"diagnosis"' in prompt
    full = library(lessons=ANGLE_LESSONS, max_items=2)
    asyncio.run(extract(teacher, full, ANGLES, angle_attempts(), teacher_run, chains, None, COUNTER))
    assert "It is nearly full: prefer updating a lesson over adding one." in teacher.calls[-1][1][0].text


def test_structuring_gets_the_reasoning_the_images_and_cut_off_labels() -> None:
    teacher = ScriptedModel("teacher")
    long = Rollout("Answer: 108", "108", True, [], reasoning="x" * 40_000)
    asyncio.run(structure(teacher, ANGLES, [*angle_attempts(), long], Rollout("Answer: 108", "108", True, []), None))
    (_, messages, _), = teacher.calls
    prompt = messages[0].text
    assert messages[0].images == [FIGURE]
    assert "## Trace 2 (student attempt 3, CUT OFF at the token limit)" in prompt
    assert "Reasoning:\nI start by labelling the figure" in prompt
    assert "[… 24,000 characters of" not in prompt and "characters omitted …]" in prompt  # head and tail of the long one
    assert "the problem's figure is attached" in prompt


def test_a_text_only_teacher_gets_no_images() -> None:
    teacher = ScriptedModel("teacher")
    teacher.supports_images = False
    asyncio.run(structure(teacher, ANGLES, angle_attempts(), Rollout("Answer: 108", "108", True, []), None))
    assert teacher.calls[0][1][0].images == [] and "figure is attached" not in teacher.calls[0][1][0].text


def test_compression_sees_verdicts_and_ages() -> None:
    lib = Library(budget=Budget(max_items=1, max_tokens=4000), items=[
        Experience(id="E1", text=ANGLE_LESSONS[0], usage=4, seen=30, created_step=2, verdicts={"helpful": 3, "harmful": 1}),
        Experience(id="E2", text=ANGLE_LESSONS[1], usage=0, seen=3, created_step=9, verdicts={"irrelevant": 2}),
    ])  # fmt: skip
    teacher = ScriptedModel("teacher")
    asyncio.run(compress(lib, "teacher", COUNTER, step=10, seed=0, teacher=teacher))
    prompt = teacher.calls[0][1][0].text
    assert "[E1] usage=4 priority=1.61 tokens=" in prompt and " age=8 seen=30 verdicts=3/1/0: " in prompt
    assert " age=1 seen=3 verdicts=0/0/2: " in prompt
    assert "is new, not useless" in prompt and "harmful more often than helpful" in prompt


def test_merged_items_keep_their_verdicts_and_exposure() -> None:
    lib = Library(items=[Experience(id="E1", text=ANGLE_LESSONS[0], seen=30, verdicts={"helpful": 2}),
                         Experience(id="E2", text=ANGLE_LESSONS[1], seen=12, verdicts={"harmful": 1})])  # fmt: skip
    merged = lib.merge(["E1", "E2"], "When lines are parallel or angles form a line, label and sum them.", step=5)
    assert (merged.seen, merged.verdicts.helpful, merged.verdicts.harmful) == (30, 2, 1)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("When two angles form a straight line, they sum to 180 degrees, so subtract instead of copying.", None),
        ("When angles are right angles, use 90 degrees and 360 for a full turn around a point.", None),
        ("When angle 1 is 72 degrees, angle 2 is its supplement: subtract it from the straight angle.", "copies numbers"),
        ("When " + "a very long condition holds " * 8 + ", check.", "words"),
    ],
)
def test_lesson_validation_allows_common_constants_and_limits_words(text: str, reason: str | None) -> None:
    got = validate(ExtractOp(op="add", text=text), library(lessons=ANGLE_LESSONS), ANGLES, [])
    assert (got is None) if reason is None else (reason in got.detail)


def run(tmp_path: Path, teacher: ScriptedModel | None = None, **options) -> tuple[Library, ScriptedModel, ScriptedModel]:
    config = RunConfig(**{"data": "x", "student": "s", "teacher": "t", "out": str(tmp_path / "lib.json"), "epochs": 1, "rollouts": 2,
                          "batch_size": 2, **options})
    student, teacher = ScriptedModel("s"), teacher or ScriptedModel("t")
    lib = asyncio.run(Distiller(config, student, teacher, SumTask(), sum_problems(6)).run())
    return lib, student, teacher


def test_skip_solved_asks_nothing_when_every_attempt_and_the_teacher_are_right(tmp_path: Path) -> None:
    plain, _, teacher = run(tmp_path / "a", rollouts=1)
    skipping, _, skipped_teacher = run(tmp_path / "b", rollouts=1, skip_solved=True)
    extracts = [m[0].text for stage, m, _ in teacher.calls if stage == "extract"]
    solved = sum("WRONG" not in text and "teacher, correct" in text for text in extracts)
    assert len(extracts) == 6 and 0 < solved < 6  # rollouts are the same in both runs: they depend on the problem and seed
    stages = [stage for stage, _, _ in skipped_teacher.calls]
    assert stages.count("extract") == stages.count("structure") == 6 - solved
    assert skipping.config["skip_solved"] is True and plain.config["skip_solved"] is False


def test_a_prompt_folder_replaces_the_package_prompts_and_is_recorded_by_hash(tmp_path: Path) -> None:
    folder = tmp_path / "prompts-v1"
    folder.mkdir()
    package = prompts.DEFAULT.texts["extract"]
    (folder / "extract.md").write_text(package.replace("Work in this order:", "ABLATION MARKER. Work in this order:"))
    lib, _, teacher = run(tmp_path / "run", prompts=str(folder))
    assert all("ABLATION MARKER" in m[0].text for stage, m, _ in teacher.calls if stage == "extract")
    assert lib.config["prompts"] == str(folder) and lib.config["prompts_sha256"] == prompts.load(folder).digest
    assert lib.config["prompts_sha256"] != prompts.DEFAULT.digest
    default, _, _ = run(tmp_path / "default")
    assert default.config["prompts_sha256"] == prompts.DEFAULT.digest
    assert "ABLATION MARKER" not in prompts.active().texts["extract"]

    (folder / "extrct.md").write_text("typo")
    with pytest.raises(ConfigError, match=r"unknown prompt file\(s\) extrct.md"):
        prompts.load(folder)
    with pytest.raises(ConfigError, match="not a folder"):
        prompts.load(tmp_path / "missing")

import asyncio
import json

import pytest

from ted.distill.compress import CompressOp, apply_compression_ops, compress, drop_lowest_priority
from ted.distill.extract import ExtractOp, apply_ops, extract, validate
from ted.distill.rollouts import Rollout
from ted.distill.structure import Structured
from ted.library import Budget, Experience, Library, cited_ids
from ted.tasks.base import Problem
from ted.tokens import get_counter
from tests.scripted import ScriptedModel

COUNTER = get_counter()


def lib_with(n: int, usages: list[int] | None = None, max_items: int = 15, max_tokens: int = 4000) -> Library:
    items = [
        Experience(id=f"E{i + 1}", text=f"When stuck on case {chr(65 + i)}, restate the goal and check each assumption.",
                   usage=(usages or [0] * n)[i], created_step=i, updated_step=i)
        for i in range(n)
    ]  # fmt: skip
    return Library(budget=Budget(max_items=max_items, max_tokens=max_tokens), items=items)


@pytest.mark.parametrize(
    "text, known, expected",
    [
        ("Answer: 4\nUsed: [E2, E5]", ["E2", "E5"], ["E2", "E5"]),
        ("Answer: 4\nUsed: []", ["E1"], []),
        ("I apply [E1] and then [E3]. Answer: 2", ["E1", "E3"], ["E1", "E3"]),
        ("Used: [E1, E1, E9]", ["E1"], ["E1"]),  # duplicates once, unknown ids ignored
        ("uses [E1] early.\nused: [E2]", ["E1", "E2"], ["E2"]),  # the Used line is authoritative
        ("Answer: E1", ["E1"], []),
    ],
)
def test_cited_ids(text, known, expected):
    assert cited_ids(text, known) == expected


def test_usage_counts_one_per_citing_rollout():
    lib = lib_with(3)
    counts = lib.record_usage([["E1", "E2"], ["E1"], [], ["E9"]])
    assert [e.usage for e in lib.items] == [2, 1, 0]
    assert counts["E9"] == 1  # counted but no such item: nothing to increment


PROBLEM = Problem(id="p", question="A train travels 120 km in 2 hours. What is its speed?", answer="60")


@pytest.mark.parametrize(
    "op, reason",
    [
        (ExtractOp(op="add", text="When a speed is asked, divide distance by time and keep the units."), None),
        (ExtractOp(op="add", text="Divide distance by time to get speed, and keep the units."), "form"),
        (ExtractOp(op="add", text="When asked for speed, compute 120 / 2."), "copies numbers"),
        (ExtractOp(op="add", text="The answer is 60."), "length"),
        (ExtractOp(op="add", text="short"), "length"),
        (ExtractOp(op="add", text="<a new general lesson>"), "placeholder"),
        (ExtractOp(op="add", text="......................"), "placeholder"),
        # What the bundled 270M base model actually proposed in the demo: a slot with text before it.
        (ExtractOp(op="add", text="Use the chains above … <a new general lesson>"), "placeholder"),
        (ExtractOp(op="add", text="Always end with Answer: <final answer> on its own line."), "placeholder"),
        # The prompt's example lesson (from another subject), copied instead of written.
        (ExtractOp(op="add", text="When a recipe is scaled up, multiply every ingredient by the same factor before you change the cooking time."), "placeholder"),
        # ... and what the demo's 1.5B teacher wrote: the same example with its subject swapped.
        (ExtractOp(op="add", text="When the problem is scaled up, multiply every ingredient by the same factor before you change the cooking time."),
         "copies a prompt's wording: 'is scaled up multiply every ingredient by the'"),
        (ExtractOp(op="add", text="When a sum has several terms, add them in pairs and check each partial sum again."), None),
        (ExtractOp(op="update", id="E9", text="When a speed is asked, divide distance by time and keep the units."), "unknown id"),
        (ExtractOp(op="add", text="When stuck on case A, restate the goal and check each assumption."), "duplicate"),
        (ExtractOp(op="add", text="When the problem asks for half, halve a quantity by dividing by 2."), None),
    ],
)
def test_extraction_validation(op, reason):
    got = validate(op, lib_with(1), PROBLEM, [])
    assert (got is None) if reason is None else (reason in got.detail)


@pytest.mark.parametrize(
    "text, copied",
    [
        # What the demo's 1.5B teacher wrote for "5 - 9 - 9 - 4 + 1 + 8": the problem again, in single digits.
        ("When combining like terms, subtract 9 from 5 first, then subtract 9 from the result, then subtract 4 from the result.", "4, 5, 9"),
        ("When a sum has 5 or more terms, add 1 pair at a time and write each partial sum.", None),  # two of its digits: allowed
        ("When a chain has 3 or more signs, add 1 pair at a time and keep 4 digits of each sum.", None),  # three digits, two of them its
        ("When a chain starts 5 - 9, subtract 9 and then 4 before adding.", "4, 5, 9"),
    ],
)
def test_a_lesson_repeating_three_of_the_problems_numbers_restates_it(text: str, copied: str | None) -> None:
    chain = Problem(id="c", question="State the final answer to the following arithmetic problem: 5 - 9 - 9 - 4 + 1 + 8 =", answer="-8")
    got = validate(ExtractOp(op="add", text=text), lib_with(0), chain, [])
    assert (got is None) if copied is None else (got.detail == f"copies numbers from the problem: {copied}")


@pytest.mark.parametrize("items, op_id", [(1, None), (0, "E9"), (0, None)])
def test_an_update_that_can_replace_nothing_is_an_add(items, op_id):
    """Small teachers write "update" for a new lesson: with no id, or on an empty library, it is an add
    that passes every check an add gets (a non-lesson is still refused)."""
    op = ExtractOp(op="update", id=op_id, text="When a speed is asked, divide distance by time and keep the units.")
    assert validate(op, lib_with(items), PROBLEM, []) is None and (op.op, op.id) == ("add", None)
    bad = ExtractOp(op="update", id=op_id, text="Divide distance by time to get speed, and keep the units.")
    assert "form" in validate(bad, lib_with(items), PROBLEM, []).detail


def test_the_schema_asks_for_a_lesson_exactly_when_one_is_due():
    """Due: the teacher's chain reached the ground truth and an attempt finished wrong (a cut-off one
    is not wrong reasoning). Then the reply schema wants at least one operation; otherwise none."""
    right, wrong = Rollout("Answer: 60", "60", True, []), Rollout("Answer: 240", "240", False, [])
    cut = Rollout("120 / 2 is", None, False, [], truncated=True)
    chains = Structured(student=["120 / 2 = 60", "120 * 2 = 240"], teacher="120 / 2 = 60", parsed=True)
    for attempts, teacher_trace, due in [([right, wrong], right, True), ([wrong, wrong], right, True), ([right, right], right, False),
                                         ([right, cut], right, False), ([right, wrong], wrong, False)]:  # fmt: skip
        teacher = ScriptedModel("t")
        asyncio.run(extract(teacher, lib_with(1), PROBLEM, attempts, teacher_trace, chains, None, COUNTER))
        operations = teacher.calls[-1][2].json_schema["properties"]["operations"]
        assert operations.get("minItems") == (1 if due else None), (attempts, teacher_trace)


def test_apply_ops_in_order_and_update_of_vanished_item_becomes_add():
    lib = lib_with(2)
    ops = [
        ExtractOp(op="update", id="E1", text="Sharper lesson: restate the goal first."),
        ExtractOp(op="add", text="A new lesson about checking units twice."),
    ]
    assert apply_ops(lib, ops, step=5, source="p1").touched == ["E1", "E3"]
    assert lib.get("E1").text.startswith("Sharper") and lib.get("E1").updated_step == 5
    lib.delete(["E2"], step=5)
    assert apply_ops(lib, [ExtractOp(op="update", id="E2", text="Lesson for a gone item, kept as new.")], 6, "p2").touched == ["E4"]
    assert [h.op for h in lib.history] == ["update", "add", "delete", "add"]


def test_compression_ops_merge_rewrite_delete_and_skip_invalid():
    lib = lib_with(5, usages=[3, 1, 0, 2, 5])
    skipped = apply_compression_ops(
        lib,
        [
            CompressOp(op="merge", ids=["E1", "E2"], text="When merged, restate the goal."),
            CompressOp(op="rewrite", ids=["E4"], text="When clearer, check assumptions one by one."),
            CompressOp(op="delete", ids=["E3"]),
            CompressOp(op="delete", ids=["E1"]),  # already merged: skipped
            CompressOp(op="retain", ids=["E5"]),
        ],
        step=9,
    )
    assert len(skipped) == 1
    assert lib.ids() == ["E4", "E5", "E6"]
    assert lib.get("E6").usage == 4 and lib.get("E6").text.startswith("When merged")
    assert lib.get("E4").text.startswith("When clearer")


def test_fallback_drops_lowest_priority_first_older_on_ties():
    lib = lib_with(5, usages=[0, 4, 0, 1, 9], max_items=3)
    dropped = drop_lowest_priority(lib, COUNTER, step=1)
    assert dropped == ["E1", "E3"]
    assert lib.ids() == ["E2", "E4", "E5"]
    assert lib.history[-1].op == "fallback"


@pytest.mark.parametrize("strategy", ["teacher", "truncate", "random"])
@pytest.mark.parametrize("max_items, max_tokens", [(3, 4000), (15, 150), (2, 120)])
def test_each_strategy_fits_the_budget(strategy, max_items, max_tokens):
    lib = lib_with(8, usages=[1, 0, 5, 2, 0, 3, 1, 0], max_items=max_items, max_tokens=max_tokens)
    assert not lib.fits(COUNTER)
    report, _ = asyncio.run(compress(lib, strategy, COUNTER, step=3, seed=0, teacher=ScriptedModel()))
    assert lib.fits(COUNTER)
    assert report.after_items == len(lib.items) <= max_items


def test_none_strategy_grows_unbounded():
    lib = lib_with(8, max_items=3)
    asyncio.run(compress(lib, "none", COUNTER, step=3, seed=0))
    assert len(lib.items) == 8


def test_truncate_keeps_first_items_and_random_is_seeded():
    lib = lib_with(6, max_items=3)
    asyncio.run(compress(lib, "truncate", COUNTER, 1, 0))
    assert lib.ids() == ["E1", "E2", "E3"]
    picks = []
    for seed in (0, 0, 1, 2, 3, 4):
        lib = lib_with(6, max_items=3)
        asyncio.run(compress(lib, "random", COUNTER, 1, seed))
        picks.append(lib.ids())
    assert picks[0] == picks[1]  # same seed, same subset
    assert any(p != picks[0] for p in picks[2:])  # other seeds pick other subsets
    assert all(p == sorted(p, key=lambda i: int(i[1:])) for p in picks)


def test_teacher_failure_falls_back_deterministically():
    teacher = ScriptedModel(compress_replies=["not json at all"] * 6)
    lib = lib_with(6, usages=[5, 0, 3, 0, 1, 2], max_items=3)
    report, cost = asyncio.run(compress(lib, "teacher", COUNTER, 4, 0, teacher=teacher))
    assert report.fallback and lib.fits(COUNTER)
    assert lib.ids() == ["E1", "E3", "E6"]  # the three highest priorities
    assert cost.requests == 6  # 3 rounds x (ask + re-ask)


def test_teacher_compression_feedback_round():
    # First reply deletes nothing useful (retains all); second reply compresses.
    first = json.dumps({"operations": [{"op": "retain", "ids": [f"E{i}"]} for i in range(1, 7)]})
    teacher = ScriptedModel(compress_replies=[first])
    lib = lib_with(6, usages=[5, 0, 3, 0, 1, 2], max_items=3)
    report, _ = asyncio.run(compress(lib, "teacher", COUNTER, 4, 0, teacher=teacher))
    assert report.rounds == 2 and not report.fallback and lib.fits(COUNTER)
    assert "previous operations left the library over budget" in teacher.calls[-1][1][0].text

"""ted's lenient answer reading (`acc_lenient`) across the three benchmarks, one tricky reply per row.

Each row: the task, the problem, the model's reply, the answer we must extract (None = no
answer) and the verdict. The rules are documented in `ted.tasks.answers`. The upstream-comparable
`acc` is tested against the harnesses themselves in tests/parity.
"""

from __future__ import annotations

import pytest

from ted.tasks import Problem, get_task

MV_MC = Problem(id="mc", question="Which shape?", answer="B", options=["square", "circle", "triangle", "star", "line"])
MV_LETTERS = Problem(id="in-image", question="Which?", answer="D", options=["A", "B", "C", "D", "E"])
MV_FRAC = Problem(id="frac", question="Unshaded fraction?", answer="\\frac{1}{2}")
MV_DEC = Problem(id="dec", question="Length?", answer="2.4")
MV_INT = Problem(id="int", question="Sides?", answer="3")
VP_TEXT = Problem(id="vp-text", question="Next number?", answer="C", options=["1", "2", "3", "4"], meta={"category": "Algorithmic"})
VP_IMAGE = Problem(id="vp-img", question="Which figure?", answer="A")  # options drawn in the image
AIME = Problem(id="aime", question="Sum of bases?", answer="70")
AIME24 = Problem(id="aime24", question="2^5+1?", answer="33")

CASES = [
    # MathVision, multiple choice with text options: letter or the option's text.
    ("mathvision", MV_MC, "Answer: B", "B", True),
    ("mathvision", MV_MC, "Answer: circle", "B", True),
    ("mathvision", MV_MC, "Answer: (B) circle", "B", True),
    ("mathvision", MV_MC, "So the answer is **B**.", "B", True),
    ("mathvision", MV_MC, "\\boxed{B}", "B", True),
    ("mathvision", MV_MC, "It is round.\n\\boxed{\\text{circle}}", "B", True),
    ("mathvision", MV_MC, "Answer: C", "C", False),
    ("mathvision", MV_MC, "Answer: triangle", "C", False),
    ("mathvision", MV_MC, "<think>Answer: B</think>\nAfter checking the figure again.\nAnswer: D", "D", False),
    ("mathvision", MV_MC, "<think>It must be B, the round one.</think>", None, False),
    ("mathvision", MV_MC, "The round outline matches option B.", "B", True),
    ("mathvision", MV_MC, "The outline has no corners.\nB", "B", True),
    ("mathvision", MV_MC, "Answer: B\nUsed: [E1, E3]", "B", True),
    ("mathvision", MV_MC, "It is round, so it is a circle", None, False),
    ("mathvision", MV_MC, "The answer is (B)", "B", True),
    # MathVision, options drawn in the image (the option texts are the letters).
    ("mathvision", MV_LETTERS, "Answer: D", "D", True),
    ("mathvision", MV_LETTERS, "Comparing all five pictures.\n(D)", "D", True),
    ("mathvision", MV_LETTERS, "So the answer is D.", "D", True),
    ("mathvision", MV_LETTERS, "Answer: d", "D", True),
    # MathVision, free-form: math-verify equivalence; numbers rounded to 2 decimals.
    ("mathvision", MV_FRAC, "The area splits evenly, \\boxed{\\frac{1}{2}}", "\\frac{1}{2}", True),
    ("mathvision", MV_FRAC, "Answer: 0.5", "0.5", True),
    ("mathvision", MV_FRAC, "Answer: 1/2", "1/2", True),
    ("mathvision", MV_FRAC, "\\boxed{\\dfrac{1}{2}}", "\\dfrac{1}{2}", True),
    ("mathvision", MV_FRAC, "Answer: 0.25", "0.25", False),
    ("mathvision", MV_FRAC, "First \\boxed{0.5}. Rechecking the shading: \\boxed{0.25}", "0.25", False),
    ("mathvision", MV_DEC, "Answer: 2.40", "2.40", True),
    ("mathvision", MV_DEC, "Answer: 2.404", "2.404", True),
    ("mathvision", MV_DEC, "Answer: 2.5", "2.5", False),
    ("mathvision", MV_INT, "Answer: $3$", "3", True),
    ("mathvision", MV_INT, "The answer is 3. It has three sides.", "3", True),
    ("mathvision", MV_INT, "I don't know.", None, False),
    ("mathvision", MV_INT, "", None, False),
    # VisualPuzzles: letters A-D; text options may be named by their text.
    ("visualpuzzles", VP_TEXT, "Answer: 3", "C", True),
    ("visualpuzzles", VP_TEXT, "Answer: C", "C", True),
    ("visualpuzzles", VP_TEXT, "Answer: 2", "B", False),
    ("visualpuzzles", VP_IMAGE, "Answer: A", "A", True),
    ("visualpuzzles", VP_IMAGE, "The correct choice is (A).", "A", True),
    ("visualpuzzles", VP_IMAGE, "Rotating the cube twice.\nFinal answer: B", "B", False),
    ("visualpuzzles", VP_IMAGE, "Answer: E", "E", False),
    ("visualpuzzles", VP_IMAGE, "<think>Option A looks right</think>", None, False),
    ("visualpuzzles", VP_IMAGE, "**Answer:** A", "A", True),
    ("visualpuzzles", VP_IMAGE, "I pick (A) since the dots alternate.\nThat is my choice.", None, False),
    # AIME: integers, leading zeros and trailing .0 normalised.
    ("aime", AIME, "\\boxed{070}", "070", True),
    ("aime", AIME, "Answer: 70", "70", True),
    ("aime", AIME, "Answer: 070.", "070", True),
    ("aime", AIME, "\\boxed{70.0}", "70.0", True),
    ("aime", AIME, "The answer is $\\boxed{70}$.", "70", True),
    ("aime", AIME, "\\boxed{69}", "69", False),
    ("aime", AIME, "Try \\boxed{7}; double-check the bases; final \\boxed{70}", "70", True),
    ("aime", AIME, "<think>so \\boxed{70}</think>I could not finish.", None, False),
    ("aime", AIME, "bases 21 and 49 \\boxed{12}</think>Answer: 70", "70", True),
    ("aime", AIME, "Answer: seventy", "seventy", False),
    ("aime", AIME, "Answer: \\boxed{70}\nUsed: [E2]", "70", True),
    ("aime", AIME, "70", "70", True),
    ("aime", AIME, "I think the result is 70", None, False),
    ("aime24", AIME24, "\\boxed{33}", "33", True),
    ("aime24", AIME24, "\\boxed{\\frac{66}{2}}", "\\frac{66}{2}", True),
]


def test_table_is_large_and_covers_every_benchmark() -> None:
    assert len(CASES) >= 40
    assert {row[0] for row in CASES} == {"mathvision", "visualpuzzles", "aime", "aime24"}
    assert any(row[3] is None for row in CASES) and any(not row[4] for row in CASES)


@pytest.mark.parametrize(("task_name", "problem", "reply", "answer", "correct"), CASES)
def test_scorer(task_name: str, problem: Problem, reply: str, answer: str | None, correct: bool) -> None:
    grade = get_task(task_name).grade_lenient(reply, problem)
    assert grade.answer == answer
    assert grade.correct is correct


def test_extraction_is_deterministic() -> None:
    task = get_task("visualpuzzles")
    replies = {task.extract_answer("hmm, no idea", VP_IMAGE) for _ in range(20)}
    assert replies == {None}
    assert {task.grade_lenient("hmm, no idea", VP_IMAGE).answer for _ in range(20)} == {None}


def test_generic_task_grades_like_the_benchmarks() -> None:
    generic = get_task("generic")
    assert generic.grade("Answer: circle", MV_MC).correct
    assert generic.grade("\\boxed{0.5}", MV_FRAC).correct
    half = Problem(id="x", question="?", answer="0.5")
    assert generic.grade("Answer: 0.5000001", half).correct  # within the default relative 1e-6
    assert not generic.grade("Answer: 0.51", half).correct


@pytest.mark.parametrize("reply, answer, correct", [
    ("Answer: 4 3", "43", False),  # two numbers, never one
    ("The answer is 4 3.", "43", False),
    ("Answer: 1 000", "1000", True),  # a thousands separator
    ("Answer: 1,000", "1000", True),
    ("Answer: 43", "43", True),
])
def test_digits_separated_by_a_space_are_not_one_number(reply: str, answer: str, correct: bool) -> None:
    from ted.tasks import get_task
    from ted.tasks.base import Problem

    assert get_task("generic").grade(reply, Problem(id="p", question="q", answer=answer)).correct is correct


def test_distillation_grades_rollouts_as_the_eval_task_scores_them() -> None:
    """`ted distill --task X`: a rollout is right exactly when the lm-eval task's `acc` says so."""
    from ted.distill.rollouts import grade, student_messages

    task = get_task("mathvision")
    assert grade("\\boxed{B}", MV_MC, task, []).correct
    assert not grade("Answer: circle", MV_MC, task, []).correct  # right for acc_lenient only
    assert task.grade_lenient("Answer: circle", MV_MC).correct
    # The baseline prompt is the upstream one alone: no system message without a library.
    assert [m.role for m in student_messages(None, MV_MC, task)] == ["user"]

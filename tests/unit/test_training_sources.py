"""The paper's training sources, MathVerse and DAPO-Math-17k, read from local copies in their Hub schemas."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from ted.tasks import get_task
from ted.tasks.dapo import problem_text
from ted.tasks.mathverse import split_choices
from tests.fixtures import benchmarks as fx


@pytest.fixture(scope="module")
def mathverse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fx.write_mathverse(tmp_path_factory.mktemp("mathverse"))


def test_mathverse_rows_choices_and_images(mathverse: Path) -> None:
    task = get_task("mathverse")
    problems = task.load(data_files=str(mathverse))
    assert [p.id for p in problems] == ["1", "2", "3", "4"]
    choice, drawn, free, fraction = problems
    assert choice.options == ["35°", "45°", "55°", "135°"] and "Choices:" not in choice.question
    assert choice.question.endswith("then angle 2 is ()")
    assert choice.meta["problem_index"] == "1" and choice.meta["problem_version"] == "Text Dominant"
    assert choice.meta["subject"] == "Plane Geometry" and task.category(choice) == "Text Dominant"
    assert isinstance(choice.images[0], Image.Image) and choice.images[0].size == (96, 64)
    assert "B. 45°" in task.format_prompt(choice)
    # Vision Only: the options are in the figure, the letters are all the prompt can name.
    assert drawn.options is None and task.letters(drawn) == "ABCDE" and "A, B, C, D, E" in task.format_prompt(drawn)
    assert free.options is None and task.letters(free) is None
    assert fraction.answer == "\\frac{9}{2}"


@pytest.mark.parametrize(
    ("reply", "right"),
    [
        ("Answer: B:45°", True),  # MathVerse's own choice form
        ("Answer: B", True),
        ("Answer: 45°", True),  # the option's text
        ("Answer: D:135°", False),
        ("Answer: A:35°", False),
    ],
)
def test_mathverse_choice_form_is_scored_by_its_letter(mathverse: Path, reply: str, right: bool) -> None:
    task = get_task("mathverse")
    choice, drawn = task.load(data_files=str(mathverse), limit=2)
    assert task.score(reply, choice) is right
    if reply[8] in "ABCDE":  # with the options only in the figure the letter decides
        assert task.score(reply, drawn) is right


def test_mathverse_free_form_answers(mathverse: Path) -> None:
    task = get_task("mathverse")
    free, fraction = task.load(data_files=str(mathverse))[2:]
    assert task.score("Answer: 6", free) and not task.score("Answer: 3", free)
    assert task.score("Answer: 4.5", fraction) and task.score("Answer: $\\frac{9}{2}$", fraction)
    assert not task.score("Answer: 4", fraction)


def test_mathverse_choices_block_parsing() -> None:
    assert split_choices("Find x.\nChoices:\nA:1\nB:2") == ("Find x.", ["1", "2"])
    assert split_choices("Find x.\nChoices:\n(A) 1\n(B) 2\n") == ("Find x.", ["1", "2"])
    assert split_choices("Find x.\nChoices:\nB:1\nC:2") == ("Find x.\nChoices:\nB:1\nC:2", None)  # not A, B…: left alone
    assert split_choices("No block here, A: is prose.") == ("No block here, A: is prose.", None)


def test_dapo_one_copy_of_each_problem_without_the_instruction(tmp_path: Path) -> None:
    folder = fx.write_dapo(tmp_path / "dapo", copies=3)
    task = get_task("dapo_math")
    problems = task.load(data_files=str(folder))
    assert [(p.question, p.answer) for p in problems] == fx.DAPO_PROBLEMS  # 9 rows, 3 problems, first-seen order
    assert [p.id for p in problems] == ["dapo-0-0", "dapo-1-0", "dapo-2-0"]
    assert problems[0].meta["source"] == "math_dapo"
    prompt = task.format_prompt(problems[1])
    assert "Solve the following math problem" not in prompt and "divisors of $2024$" in prompt
    assert prompt == get_task("aime").format_prompt(problems[1])  # graded as the AIME evaluation grades
    assert task.score("so \\boxed{12}", problems[1]) and not task.score("so \\boxed{13}", problems[1])
    assert len(task.load(data_files=str(folder), limit=2)) == 2


def test_dapo_problem_text_forms() -> None:
    wrapped = fx.DAPO_INSTRUCTION.format(problem="Compute $1+1$.")
    assert problem_text([{"role": "user", "content": wrapped}]) == "Compute $1+1$."
    assert problem_text(wrapped) == "Compute $1+1$."
    assert problem_text("Compute $1+1$.") == "Compute $1+1$."  # a prompt without the instruction stays whole


def test_two_local_copies_with_one_name_are_each_read_as_they_are(tmp_path: Path) -> None:
    """datasets caches a folder by its name and layout; ted must not hand one copy's rows to another."""
    task = get_task("mathvision")
    broken = task.load(data_files=str(fx.write_mathvision(tmp_path / "a" / "mathvision", corrupt={3})))
    clean = task.load(data_files=str(fx.write_mathvision(tmp_path / "b" / "mathvision")))
    assert "image_error" in broken[3].meta and "image_error" not in clean[3].meta

"""`acc` of every ted benchmark equals the upstream harness's verdict, reply by reply.

The upstream code itself decides: lmms-eval's MathVision and VisualPuzzles scorers run in a
child process from the folder `make test` installs them into (`.venv/upstream`, see
`upstream.txt`), lm-eval's AIME scorer in process. The prompts are compared with the upstream
`doc_to_text` too, and the versions matched are checked against the ones the tasks name.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ted.tasks import Problem, get_task
from tests.parity import cases

pytestmark = pytest.mark.integration  # the upstream harnesses and lm-eval themselves

HERE = Path(__file__).resolve().parent
MIN_CASES = 60


def upstream_dir() -> Path:
    """Where the upstream scorers are installed: TED_UPSTREAM_DIR, else `<venv>/upstream`."""
    folder = Path(os.environ.get("TED_UPSTREAM_DIR") or Path(sys.prefix) / "upstream")
    if not (folder / "lmms_eval").is_dir():
        pytest.fail(f"the upstream scorers are not installed in {folder}: pip install --no-deps --target {folder} -r {HERE / 'upstream.txt'}")
    return folder


def pinned(name: str) -> str:
    for line in (HERE / "upstream.txt").read_text().splitlines():
        if line.startswith(f"{name}=="):
            return line.split("==")[1]
    raise AssertionError(f"{name} is not pinned in upstream.txt")


PROMPT_DOCS: dict[str, list[dict[str, Any]]] = {
    "mathvision": [
        {"question": "How many triangles are in the figure?", "options": []},
        {"question": "Which shape comes next?\n", "options": cases.SHAPES},
    ],
    "visualpuzzles": [
        {"question": " Which figure completes the row? ", "options": None},
        {"question": "How many dots are hidden?", "options": cases.COUNTS},
    ],
}


@pytest.fixture(scope="module")
def upstream() -> dict[str, Any]:
    folder = upstream_dir()
    request = {"mathvision": cases.MATHVISION, "visualpuzzles": cases.VISUALPUZZLES, "prompts": PROMPT_DOCS}
    env = {**os.environ, "PYTHONPATH": str(folder)}
    done = subprocess.run(
        [sys.executable, str(HERE / "upstream_verdicts.py")], input=json.dumps(request), capture_output=True, text=True, env=env, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def problem(gold: str, options: list[str] | None) -> Problem:
    return Problem(id="case", question="?", answer=gold, options=options)


def agreement(task_name: str, table: list[tuple[str, list[str] | None, str]], verdicts: list[Any]) -> tuple[list[int], int]:
    """Indices where `acc` disagrees with upstream, and how many the lenient scorer (the old `acc`) matched."""
    task = get_task(task_name)
    wrong, lenient = [], 0
    for index, ((gold, options, reply), verdict) in enumerate(zip(table, verdicts, strict=True)):
        grade = task.grade(reply, problem(gold, options))
        expected = False if verdict == "guess" else verdict
        if grade.correct != expected or (verdict == "guess" and not grade.no_answer):
            wrong.append(index)
        lenient += task.grade_lenient(reply, problem(gold, options)).correct == expected
    print(f"\n{task_name}: {len(table)} cases, acc agrees on {len(table) - len(wrong)}, acc_lenient on {lenient}")
    return wrong, lenient


@pytest.mark.parametrize("name", ["mathvision", "visualpuzzles"])
def test_lmms_eval_verdicts(name: str, upstream: dict[str, Any]) -> None:
    table = getattr(cases, name.upper())
    assert len(table) >= MIN_CASES
    assert {True, False} <= set(upstream[name])
    wrong, _ = agreement(name, table, upstream[name])
    assert not wrong, [(table[i], upstream[name][i]) for i in wrong]


def test_visualpuzzles_guesses_are_wrong_not_random(upstream: dict[str, Any]) -> None:
    """Where lmms-eval picks a random letter, ted's verdict is a fixed 'wrong, no answer'."""
    guesses = [case for case, verdict in zip(cases.VISUALPUZZLES, upstream["visualpuzzles"]) if verdict == "guess"]
    assert len(guesses) >= 3
    task = get_task("visualpuzzles")
    assert all(task.grade(reply, problem(gold, options)).no_answer for gold, options, reply in guesses)


@pytest.mark.parametrize("name,answer_key", [("aime", "answer"), ("aime24", "Answer")])
def test_lm_eval_aime_verdicts(name: str, answer_key: str) -> None:
    from lm_eval.tasks.aime.utils import process_results

    assert len(cases.AIME) >= MIN_CASES
    verdicts = [bool(process_results({answer_key: gold}, [reply])["exact_match"]) for gold, _, reply in cases.AIME]
    assert any(verdicts) and not all(verdicts)
    wrong, _ = agreement(name, cases.AIME, verdicts)
    assert not wrong, [(cases.AIME[i], verdicts[i]) for i in wrong]


@pytest.mark.parametrize("name", ["mathvision", "visualpuzzles"])
def test_prompts_are_upstream(name: str, upstream: dict[str, Any]) -> None:
    task = get_task(name)
    for doc, text in zip(PROMPT_DOCS[name], upstream["prompts"][name], strict=True):
        assert task.format_prompt(Problem(id="p", question=doc["question"], answer="A", options=doc["options"] or None)) == text


@pytest.mark.parametrize("name,config,field", [("aime", "aime25.yaml", "problem"), ("aime24", "aime24.yaml", "Problem")])
def test_aime_prompt_is_lm_eval(name: str, config: str, field: str) -> None:
    import lm_eval.tasks.aime as aime
    import yaml
    from lm_eval.utils import apply_template

    spec = yaml.safe_load((Path(aime.__path__[0]) / config).read_text().replace("!function ", ""))
    question = "Find the sum of all integer bases $b>9$ for which $17_b$ divides $97_b$."
    assert get_task(name).format_prompt(Problem(id="p", question=question, answer="70")) == apply_template(spec["doc_to_text"], {field: question})
    assert get_task(name).max_gen_toks == spec["generation_kwargs"]["max_gen_toks"]


def test_versions_matched_are_the_ones_named() -> None:
    """The tasks say which harness versions they reproduce; those are the versions tested here."""
    lmms = next(upstream_dir().glob("lmms_eval-*.dist-info")).name.removesuffix(".dist-info").split("-")[1]
    assert lmms == pinned("lmms-eval")
    assert f"lmms-eval {lmms}" in get_task("mathvision").protocol and f"lmms-eval {lmms}" in get_task("visualpuzzles").protocol
    assert f"lm-eval {importlib.metadata.version('lm_eval')}" in get_task("aime").protocol

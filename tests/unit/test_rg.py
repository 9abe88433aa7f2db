"""reasoning-gym tasks (`rg:NAME`): the spec, disjoint splits, answers read from small models'
replies, and the verdict of reasoning-gym's own scorer — through ted's task, `ted data sample`'s
JSONL and the lm-eval documents."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ted.errors import DataError
from ted.tasks import get_task
from ted.tasks.data import load_problems
from ted.tasks.rg import (
    SPLIT_BASE,
    SPLITS,
    STRIDE,
    RgSpec,
    generate,
    lm_eval_metadata,
    parse_spec,
    read_answer,
    spec_from_metadata,
    split_of,
)
from ted.tasks.rg_task import RgTask
from ted.tasks.base import question_key
from tests.support import assert_one_line_error, run_ted

# Two one-digit terms: a few hundred distinct questions, so seeds collide on text all the time.
TINY = "rg:chain_sum?min_terms=2&max_terms=2&min_digits=1&max_digits=1"


def _reward(task: RgTask, answer: str, problem) -> float:
    """reasoning-gym's own verdict, asked directly (not through ted)."""
    from reasoning_gym import create_dataset

    meta = problem.meta
    dataset = create_dataset(task.generator, seed=meta["rg_item_seed"], size=1, **json.loads(meta["rg_config"]))
    return dataset.score_answer(answer, dataset[0])


# --------------------------------------------------------------------------- the spec
def test_spec_defaults_round_trip_and_config() -> None:
    spec = parse_spec("rg:gsm_symbolic")
    assert spec == RgSpec("gsm_symbolic", "train", 100, 0) and spec.task_name == "rg:gsm_symbolic"
    assert parse_spec("rg:gsm_symbolic", split="test").split == "test"
    tiny = parse_spec(f"{TINY}&split=validation&n=7&seed=3")
    assert (tiny.split, tiny.n, tiny.seed) == ("validation", 7, 3)
    assert dict(tiny.config) == {"max_digits": "1", "max_terms": "2", "min_digits": "1", "min_terms": "2"}
    assert parse_spec(str(tiny)) == tiny


@pytest.mark.parametrize(
    "text,message",
    [
        ("rg:gsm_symbolc", "did you mean gsm_symbolic"),
        ("rg:", "no reasoning-gym generator"),
        ("rg:chain_sum?split=dev", "choose one of train, validation, test"),
        ("rg:chain_sum?n=0", "n=0 is outside 1..100000"),
        ("rg:chain_sum?n=ten", "n='ten' is not a whole number"),
        ("rg:chain_sum?seed=-1", "seed=-1 is outside"),
        ("rg:chain_sum?n=2&n=3", "n is given twice"),
        ("rg:chain_sum?size=3", "'size' is not an option of chain_sum"),
        ("rg:chain_sum?colour=red", "'colour' is not an option of chain_sum; use split, n, seed or one of its config fields: "),
        ("rg:chain_sum?min_terms=5&max_terms=2", "reasoning-gym refuses the config"),
        ("rg:chain_sum?n", "key=value pairs"),
    ],
)
def test_bad_specs_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(DataError, match=None) as caught:
        parse_spec(text)
    assert message in str(caught.value)


def test_ted_eval_resolves_a_spec_to_ted_rg_with_its_metadata() -> None:
    from ted.evaluate import resolve_task

    assert resolve_task("rg:chain_sum?n=7") == ("ted_rg", {"rg": "rg:chain_sum?split=test&n=7&seed=0"})
    assert resolve_task("ted_aime24") == ("ted_aime24", {})
    with pytest.raises(DataError, match="or rg:NAME"):
        resolve_task("rg_chain_sum")


def test_metadata_names_the_same_spec() -> None:
    spec = parse_spec(f"{TINY}&split=test&n=5&seed=2")
    assert spec_from_metadata(lm_eval_metadata(spec)) == spec
    assert spec_from_metadata({"rg": "rg:leg_counting", "seed": 1234}) == RgSpec("leg_counting", "test", 100, 0)  # a model's seed
    with pytest.raises(DataError, match="needs the problems in --metadata"):
        spec_from_metadata({"split": "test"})


# --------------------------------------------------------------------------- splits
def test_splits_are_disjoint_by_seed_and_by_text() -> None:
    made = {split: generate(parse_spec(f"{TINY}&split={split}&n=20")) for split in SPLITS}
    seeds = {split: {p.meta["rg_item_seed"] for p in problems} for split, problems in made.items()}
    texts = {split: {question_key(p.question) for p in problems} for split, problems in made.items()}
    for split in SPLITS:
        assert len(made[split]) == len(seeds[split]) == len(texts[split]) == 20  # no repeats inside a split
        assert all(SPLIT_BASE[split] <= s < SPLIT_BASE[split] + STRIDE for s in seeds[split])
        assert all(split_of(p.question) == split for p in made[split])
    for a, b in (("train", "validation"), ("train", "test"), ("validation", "test")):
        assert not seeds[a] & seeds[b] and not texts[a] & texts[b]
    # The text rule does work here: reasoning-gym makes the same question from different seeds.
    from reasoning_gym import create_dataset

    raw = [create_dataset("chain_sum", seed=s, size=1, min_terms=2, max_terms=2, min_digits=1, max_digits=1)[0]["question"] for s in range(200)]
    assert len(set(map(question_key, raw))) < len(raw)


def test_generation_is_seeded() -> None:
    first = generate(parse_spec("rg:gsm_symbolic?split=test&n=5&seed=1"))
    assert [p.model_dump() for p in first] == [p.model_dump() for p in generate(parse_spec("rg:gsm_symbolic?split=test&n=5&seed=1"))]
    other = generate(parse_spec("rg:gsm_symbolic?split=test&n=5&seed=2"))
    assert {p.id for p in first}.isdisjoint(p.id for p in other)
    assert load_problems("rg:gsm_symbolic?split=test&n=5&seed=1", limit=2) == first[:2]


def test_a_split_too_small_for_n_is_refused() -> None:
    with pytest.raises(DataError, match="made only .* distinct test problems"):
        generate(parse_spec("rg:chain_sum?min_terms=2&max_terms=2&min_digits=1&max_digits=1&split=test&n=2000"))


# --------------------------------------------------------------------------- answers
@pytest.mark.parametrize(
    "reply,gold,answer,how",
    [
        ("5 - 3 = 2, 2 - 6 = -4.\nAnswer: -4", "-4", "-4", "marker"),
        ("**Answer:** **288**", "288", "288", "marker"),
        ("Final answer: $\\boxed{288}$", "288", "288", "marker"),
        ("The total is 160 + 128.\nAnswer: 160 + 128 = 288", "288", "288", "marker"),
        ("Answer: 288 apples", "288", "288", "marker"),
        ("Answer: $1,288.", "1288", "1288", "marker"),
        ("Answer: -4.0", "-4", "-4", "marker"),
        ("Answer: 12345678901234567890", "12345678901234567890", "12345678901234567890", "marker"),  # no float rounding
        ("Answer: 2.50", "2.5", "2.5", "marker"),
        ("Answer: \\(49 / 16\\)", "49", "49 / 16", "marker"),  # a fraction is not its numerator
        ("Answer: 288 (160 + 128)", "288", "288 (160 + 128)", "marker"),
        ("<answer>288</answer>", "288", "288", "tag"),
        ("So 35 × 3 = 105 kiwi; in total John has 288 items.", "288", "288", "form"),
        ("Answer: <final answer>\nThe result is 288.", "288", "288", "form"),
        ("Answer:\n288", "288", "288", "marker"),
        ("The operation took 00:34:28.", "00:34:28", "00:34:28", "form"),
        ("It started at 18:54:51 and ended at 19:29:19", "00:34:28", "19:29:19", "form"),
        ("<think>maybe 7</think>Answer: 9\nUsed: [E1, E3]", "9", "9", "marker"),
        ("I would say True, or maybe not.", "True", None, "none"),  # words: the gold's own text is never searched for
        ("I cannot solve this.", "288", None, "none"),
        ("", "288", None, "none"),
    ],
)
def test_answers_are_read_forgivingly_but_not_wrongly(reply: str, gold: str, answer: str | None, how: str) -> None:
    assert read_answer(reply, gold) == (answer, how)


def test_scoring_goes_through_reasoning_gym() -> None:
    for spec, right, wrong in (
        ("rg:gsm_symbolic?split=test&n=3", lambda g: f"Step by step...\nAnswer: {g}", lambda g: f"Answer: {int(g) + 1}"),
        ("rg:chain_sum?split=test&n=3", lambda g: f"\\boxed{{{g}}}", lambda g: f"Answer: {int(g) - 2}"),
        ("rg:time_intervals?split=test&n=3", lambda g: f"Answer: {g}", lambda g: "Answer: 99:99:99"),
    ):
        task = get_task(spec.split("?")[0])
        assert isinstance(task, RgTask) and task.name == spec.split("?")[0]
        for problem in task.load(data_files=spec):
            good, bad = task.grade(right(problem.answer), problem), task.grade(wrong(problem.answer), problem)
            assert good.correct and not bad.correct and bad.answer is not None
            assert _reward(task, good.answer, problem) == 1.0 and _reward(task, bad.answer, problem) < 1.0
            assert task.grade("no idea", problem).no_answer


def test_partial_credit_is_wrong() -> None:
    task = get_task("rg:time_intervals")
    problem = next(p for p in task.load(data_files="rg:time_intervals?split=test&n=30") if re.fullmatch(r"\d\d:\d\d:\d\d", p.answer))
    h, m, s = problem.answer.split(":")
    off = f"{h}:{m}:{(int(s) + 1) % 60:02d}"
    assert 0 < _reward(task, off, problem) < 1.0
    assert not task.grade(f"Answer: {off}", problem).correct


def test_the_question_asks_for_the_answer_line() -> None:
    task = get_task("rg:leg_counting")
    (problem,) = task.load(data_files="rg:leg_counting?n=1")
    prompt = task.format_prompt(problem)
    assert prompt.startswith(problem.question.strip()) and 'starts with "Answer:"' in prompt
    assert "careful problem solver" in (task.system_prompt("") or "")


def test_problems_from_another_generator_or_version_are_refused() -> None:
    task = get_task("rg:chain_sum")
    (problem,) = load_problems("rg:basic_arithmetic?n=1")
    with pytest.raises(DataError, match="grade it with --task rg:basic_arithmetic"):
        task.grade("Answer: 1", problem)
    (problem,) = load_problems("rg:chain_sum?n=1")
    with pytest.raises(DataError, match="another reasoning-gym version"):
        task.grade("Answer: 1", problem.model_copy(update={"question": problem.question + " (edited)"}))


# --------------------------------------------------------------------------- files and documents
def test_data_sample_writes_jsonl_that_grades_alike(tmp_path: Path) -> None:
    out = tmp_path / "train.jsonl"
    proc = run_ted("data", "sample", "rg:time_intervals?split=train&n=6", "--samples", "4", "--out", str(out),
                   "--exclude", "rg:time_intervals?split=test&n=50", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "excluded 0 that the evaluation set has" in proc.stderr  # disjoint by construction
    task = get_task("rg:time_intervals")
    pool = {p.id: p for p in load_problems("rg:time_intervals?split=train&n=6")}
    read = load_problems(str(out))
    assert len(read) == 4 and all(p.question == pool[p.id].question for p in read)
    for problem in read:
        assert task.grade(f"Answer: {problem.answer}", problem).correct  # the scorer's metadata came back


def test_bad_spec_is_one_error_line(tmp_path: Path) -> None:
    proc = run_ted("data", "sample", "rg:gsm_symbolc?split=train", "--samples", "1", "--out", str(tmp_path / "x.jsonl"), cwd=tmp_path)
    assert_one_line_error(proc, "no reasoning-gym generator 'gsm_symbolc'", "did you mean gsm_symbolic")


def test_lm_eval_documents_and_scores(tmp_path: Path) -> None:
    from ted.library import Library
    from ted.lm_eval_docs import rg_docs, score_doc

    library = Library(name="rg")
    library.add("When a problem lists several animals, count the legs of each kind before adding.", step=1)
    path = library.save(tmp_path / "library.json")
    spec = parse_spec("rg:leg_counting?split=test&n=4&seed=5")
    baseline = rg_docs(**lm_eval_metadata(spec), library="")["test"]
    with_library = rg_docs(**lm_eval_metadata(spec), library=str(path), pretrained="ignored")["test"]
    problems = generate(spec)
    assert [d["id"] for d in baseline] == [p.id for p in problems] and len(with_library) == 4
    assert all("count the legs" in d["ted_system"] for d in with_library) and all("count the legs" not in d["ted_system"] for d in baseline)
    for doc, problem in zip(baseline, problems):
        assert doc["ted_task"] == "rg:leg_counting" and doc["ted_prompt"] == get_task("rg:leg_counting").format_prompt(problem)
        assert score_doc(doc, [f"Answer: {problem.answer}"])["acc"] == 1
        assert score_doc(doc, [f"Answer: {int(problem.answer) + 4}"]) | {} == {"acc": 0, "acc_lenient": 0, "no_answer": 0, "image_errors": 0}
        assert score_doc(doc, ["no idea"])["no_answer"] == 1


# --------------------------------------------------------------------------- ted reproduce
def test_reproduce_trains_on_the_train_split_and_scores_the_test_split(tmp_path: Path) -> None:
    from ted.reproduce import units
    from ted.reproduce.plan import ReproduceConfig, RunDir
    from ted.tasks.registry import benchmark

    endpoint = "openai:m@http://127.0.0.1:9/v1"
    config = ReproduceConfig(benchmark="rg:leg_counting", transfer_to=["rg:chain_sum"], student=endpoint, teacher=endpoint,
                             out=str(tmp_path), samples=5, seed=2, eval_data={"rg:chain_sum": "rg:chain_sum?n=4&seed=1"})  # fmt: skip
    assert config.training_task == "rg:leg_counting" and benchmark("rg:leg_counting").max_gen_toks == get_task("rg:leg_counting").max_gen_toks
    result = units.split(config, RunDir(tmp_path))
    assert result["pool"] == "rg:leg_counting?split=train&n=5&seed=2" and result["samples"] == 5
    train = load_problems(str(tmp_path / "train.jsonl"))
    assert [p.id for p in train] == [p.id for p in generate(parse_spec(result["pool"]))]
    test = units.load_eval_problems(config, "rg:leg_counting")
    assert len(test) == benchmark("rg:leg_counting").eval_size and {p.id for p in test}.isdisjoint(p.id for p in train)
    assert {question_key(p.question) for p in test}.isdisjoint(question_key(p.question) for p in train)
    assert units.eval_metadata(config, "rg:chain_sum", None) == {"library": "", "rg": "rg:chain_sum?split=test&n=4&seed=1"}
    assert len(units.load_eval_problems(config, "rg:chain_sum")) == 4


def test_reproduce_refuses_options_in_the_benchmark_and_foreign_eval_data(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from ted.reproduce.plan import ReproduceConfig

    endpoint = "openai:m@http://127.0.0.1:9/v1"
    with pytest.raises(ValidationError, match="a benchmark is rg:NAME alone"):
        ReproduceConfig(benchmark="rg:chain_sum?n=5", student=endpoint, teacher=endpoint, out="x")
    with pytest.raises(ValidationError, match="--eval-data names 'rg:leg_counting'"):
        ReproduceConfig(benchmark="rg:chain_sum", eval_data={"rg:leg_counting": "rg:leg_counting?n=3"}, student=endpoint, teacher=endpoint, out="x")
    base = ["reproduce", "--student", endpoint, "--teacher", endpoint, "--out", "runs/x", "--dry-run", "--samples", "10"]
    proc = run_ted(*base, "--benchmark", "rg:chain_sum", "--eval-data", "rg:chain_sum?n=30&seed=3", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "eval_sizes={'rg:chain_sum': 30}" in " ".join(proc.stdout.split()) and not (tmp_path / "runs").exists()


def test_the_space_offers_validation_problems_asked_as_ted_asks_them() -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "space"))
    import tedspace

    examples = tedspace.reasoning_gym_examples()
    assert len(examples) == len(tedspace.RG_EXAMPLE_TASKS)
    for name, example in zip(tedspace.RG_EXAMPLE_TASKS, examples):
        (problem,) = load_problems(f"{name}?split=validation&n=1")
        assert example["text"] == get_task(name).format_prompt(problem) and split_of(problem.question) == "validation"

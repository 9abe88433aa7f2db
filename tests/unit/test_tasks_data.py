"""`load_problems`: JSONL, CSV, datasets folders and Parquet; field maps; one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from ted.errors import DataError
from ted.tasks import get_task, load_problems
from tests.fixtures.benchmarks import NOT_AN_IMAGE, draw


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_jsonl_with_aliases_images_relative_to_the_file_and_generated_ids(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.png").write_bytes(draw("a"))
    data = write_jsonl(tmp_path / "train.jsonl", [
        {"problem": "1+1?", "answer": 2, "image": "img/a.png", "source": "demo"},
        {"question": "Pick one", "answer": "B", "options": ["x", "y"], "id": "q7"},
    ])  # fmt: skip
    first, second = load_problems(str(data))
    assert (first.id, first.question, first.answer) == ("sample-0", "1+1?", "2")
    assert len(first.images) == 1 and isinstance(first.images[0], Image.Image) and first.images[0].size == (96, 64)
    assert first.meta == {"source": "demo"}
    assert (second.id, second.options) == ("q7", ["x", "y"])


def test_field_map_and_limit(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", [{"prompt_text": f"q{i}", "gold": str(i), "problem": "ignored"} for i in range(5)])
    problems = load_problems(str(data), fields={"question": "prompt_text", "answer": "gold"}, limit=2)
    assert [(p.question, p.answer) for p in problems] == [("q0", "0"), ("q1", "1")]


def test_csv_with_json_options(tmp_path: Path) -> None:
    data = tmp_path / "d.csv"
    data.write_text('q,a,options\n2+2?,B,"[""3"", ""4""]"\n')
    (problem,) = load_problems(str(data), fields={"question": "q", "answer": "a"})
    assert (problem.question, problem.answer, problem.options) == ("2+2?", "B", ["3", "4"])
    assert get_task().score("Answer: 4", problem)


def test_datasets_folder_and_parquet_keep_pil_images(tmp_path: Path) -> None:
    import datasets

    rows = [{"question": "shape?", "answer": "3", "image": {"bytes": draw("t"), "path": None}}]
    features = datasets.Features({"question": datasets.Value("string"), "answer": datasets.Value("string"), "image": datasets.Image()})
    dataset = datasets.Dataset.from_list(rows, features=features)
    dataset.save_to_disk(str(tmp_path / "saved"))
    dataset.to_parquet(tmp_path / "pq" / "train-00000.parquet")
    for source in (tmp_path / "saved", tmp_path / "pq", tmp_path / "pq" / "train-00000.parquet"):
        (problem,) = load_problems(str(source))
        assert problem.answer == "3" and isinstance(problem.images[0], Image.Image)


def test_datasets_dict_needs_a_split(tmp_path: Path) -> None:
    import datasets

    part = datasets.Dataset.from_list([{"question": "q", "answer": "1"}])
    datasets.DatasetDict({"train": part, "test": part}).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(DataError, match=r"several splits \(train, test\); choose one with --split"):
        load_problems(str(tmp_path / "dd"))
    assert load_problems(str(tmp_path / "dd"), split="test")[0].question == "q"
    with pytest.raises(DataError, match="no split 'dev'; it has train, test"):
        load_problems(str(tmp_path / "dd"), split="dev")


@pytest.mark.parametrize(
    ("content", "kwargs", "message"),
    [
        (None, {}, r"missing\.jsonl: no such file or folder"),
        ("", {}, r"the file is empty"),
        ('{"question": "q", "answer": "1"}\n{oops\n', {}, r"line 2: not valid JSON"),
        ('{"question": "q", "answer": "1"}\n{"question": "q2", "sol": "1"}\n', {}, r"line 2: no 'answer' field \(columns: question, sol\); map another column with --field answer=COLUMN"),
        ('{"question": "  ", "answer": "1"}\n', {}, r"line 1: column 'question' is empty; map another column with --field question=COLUMN"),
        ('{"question": "q", "answer": "1", "images": ["nowhere.png"]}\n', {}, r"line 1: image file not found: .*nowhere\.png"),
        ('{"question": "q", "answer": "1"}\n', {"fields": {"question": "nope"}}, r"--field question=nope names a missing column"),
        ('{"question": "q", "answer": "1"}\n', {"fields": {"solution": "x"}}, r"unknown field name\(s\) solution"),
        ('[1, 2]\n', {}, r"line 1: expected a JSON object, got list"),
        ('{"question": "q", "answer": "1", "options": "a, b"}\n', {}, r"options must be a list"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path: Path, content: str | None, kwargs: dict, message: str) -> None:
    path = tmp_path / ("missing.jsonl" if content is None else "data.jsonl")
    if content is not None:
        path.write_text(content)
    with pytest.raises(DataError, match=message) as err:
        load_problems(str(path), **kwargs)
    assert "\n" not in str(err.value)


def test_unreadable_image_raises_or_is_marked(tmp_path: Path) -> None:
    (tmp_path / "bad.png").write_bytes(NOT_AN_IMAGE)
    data = write_jsonl(tmp_path / "d.jsonl", [{"question": "q", "answer": "1", "images": ["bad.png"]}])
    with pytest.raises(DataError, match=r"line 1: cannot decode image bad\.png"):
        load_problems(str(data))
    (problem,) = load_problems(str(data), on_bad_image="mark")
    assert problem.images == [] and "cannot decode image" in problem.meta["image_error"]


def test_unknown_task_lists_the_choices() -> None:
    with pytest.raises(DataError, match="unknown task 'mmlu'; choose one of generic, mathvision, visualpuzzles, aime, aime24"):
        get_task("mmlu")
    assert get_task("ted_aime").name == "aime"
    assert get_task(None).name == "generic"


def test_benchmark_copies_load_as_training_data(tmp_path: Path) -> None:
    """`ted distill --task X --data COPY` reads a benchmark copy through the generic loader."""
    from tests.fixtures import benchmarks as fx

    puzzles = load_problems(str(fx.write_visualpuzzles(tmp_path / "vp")))
    assert puzzles[1].options is None and get_task("visualpuzzles").score("Answer: A", puzzles[1])
    first, _ = load_problems(str(fx.write_aime24(tmp_path / "a24")))  # capitalised columns: Problem, Answer, ID
    assert (first.id, first.question, first.answer) == ("2024-I-1", "Compute $2^{5}+1$.", "33")
    mathvision = load_problems(str(fx.write_mathvision(tmp_path / "mv")), split="testmini")
    assert len(mathvision) == 2 and isinstance(mathvision[0].images[0], Image.Image)
    assert mathvision[1].options == ["square", "circle", "triangle", "star", "line"]
    assert get_task("mathvision").score("\\boxed{circle}", mathvision[1])  # the lmms-eval protocol reads the box

"""Benchmark adapters on fixture copies in each benchmark's exact schema, read through `datasets`,
and the lm-eval documents built from them (library block, images, counts, request-cache guard)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from PIL import Image

from ted.errors import DataError, LibraryError
from ted.lm_eval_docs import guard_request_cache, lm_eval_docs, score_doc
from ted.library import Library
from ted.tasks import get_task
from tests.fixtures import benchmarks as fx


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("benchmarks")
    return {
        "mathvision": fx.write_mathvision(root / "mathvision", corrupt={3}),
        "visualpuzzles": fx.write_visualpuzzles(root / "visualpuzzles"),
        "aime": fx.write_aime25(root / "aime"),
        "aime24": fx.write_aime24(root / "aime24"),
    }


@pytest.fixture()
def library(tmp_path: Path) -> Path:
    lib = Library(name="fixture")
    lib.add("Count the sides of a polygon one at a time.", step=1)
    lib.add("Check the answer format the question asks for.", step=1)
    return lib.save(tmp_path / "library.json")


def test_mathvision_splits_options_and_images(data: dict[str, Path]) -> None:
    task = get_task("mathvision")
    test = task.load(data_files=str(data["mathvision"]))
    mini = task.load(split="testmini", data_files=str(data["mathvision"]))
    assert [p.id for p in test] == ["1", "2", "3", "4"] and [p.id for p in mini] == ["1", "2"]
    free, choice = test[0], test[1]
    assert free.options is None and choice.options == ["square", "circle", "triangle", "star", "line"]
    assert isinstance(free.images[0], Image.Image) and free.images[0].size == (96, 64)
    assert choice.meta["subject"] == "metric geometry - shape" and task.category(choice) == "metric geometry - shape"
    assert "A. square" in task.format_prompt(choice) and "E. line" in task.format_prompt(choice)
    assert test[3].images == [] and "cannot decode image" in test[3].meta["image_error"]


def test_visualpuzzles_letters_when_options_are_drawn(data: dict[str, Path]) -> None:
    task = get_task("visualpuzzles")
    problems = task.load(data_files=str(data["visualpuzzles"]), limit=2)
    assert len(problems) == 2
    text, drawn = problems
    assert text.options == ["1", "2", "3", "4"] and "(C) 3" in task.format_prompt(text)
    assert drawn.options is None and task.letters(drawn) == "ABCD"
    assert "Choose from (A) (B) (C) (D) in the image." in task.format_prompt(drawn)
    assert task.score("Answer: A", drawn) and not task.score("Answer: B", drawn)


def test_aime_both_years(data: dict[str, Path]) -> None:
    aime25 = get_task("aime").load(data_files=str(data["aime"]))
    aime24 = get_task("aime24").load(data_files=str(data["aime24"]))
    assert [(p.id, p.answer) for p in aime25] == [("0", "70"), ("1", "17"), ("2", "6")]
    assert [(p.id, p.answer) for p in aime24] == [("2024-I-1", "33"), ("2024-I-2", "75")]
    assert get_task("aime").format_prompt(aime25[0]) == f"Question: {aime25[0].question}\nAnswer:"


@pytest.mark.parametrize(
    ("task_name", "drop", "message"),
    [
        ("mathvision", "answer", r"missing field 'answer' \(MathVision rows need id, question, options, decoded_image/image, answer; this data has decoded_image, id, image, level, options, question, solution, subject\)"),
        ("visualpuzzles", "category", r"missing field 'category' \(VisualPuzzles rows need id, category, image, question, options, answer; this data has answer, id, image, options, question\)"),
        ("aime24", "Answer", r"missing field 'Answer' or 'answer' \(AIME 2024 rows need Problem/problem, Answer/answer; "),
    ],
)
def test_wrong_schema_names_the_missing_field(tmp_path: Path, data: dict[str, Path], task_name: str, drop: str, message: str) -> None:
    import datasets

    source = data[task_name]
    files = sorted(source.glob("data/test-*.parquet")) if source.is_dir() else [source]
    broken = datasets.Dataset.from_parquet(str(files[0])).remove_columns(drop)
    path = tmp_path / "broken.parquet"
    broken.to_parquet(path)
    with pytest.raises(DataError, match=message):
        get_task(task_name).load(data_files=str(path))


def test_lm_eval_docs_carry_the_library_block_exactly_when_given(data: dict[str, Path], library: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TED_LIBRARY", raising=False)
    block = Library.load(library).render()
    with_lib = lm_eval_docs("ted_aime", library=str(library), data_files=str(data["aime"]))["test"]
    baseline = lm_eval_docs("ted_aime", data_files=str(data["aime"]))["test"]
    assert len(with_lib) == 3 and all(block in doc["ted_system"] for doc in with_lib)
    assert all("Experience library" not in doc["ted_system"] for doc in baseline)
    assert with_lib[0]["ted_prompt"] == baseline[0]["ted_prompt"] == get_task("aime").format_prompt(get_task("aime").load(data_files=str(data["aime"]))[0])
    # TED_LIBRARY is the default; an explicit empty library is the baseline.
    monkeypatch.setenv("TED_LIBRARY", str(library))
    assert block in lm_eval_docs("ted_aime", data_files=str(data["aime"]))["test"][0]["ted_system"]
    assert "Experience library" not in lm_eval_docs("ted_aime", library="", data_files=str(data["aime"]))["test"][0]["ted_system"]


def test_lm_eval_docs_images_and_undecodable_ones(data: dict[str, Path]) -> None:
    docs = lm_eval_docs("ted_mathvision", data_files=str(data["mathvision"]), pretrained="some/vlm")["test"]
    assert len(docs) == 4
    assert isinstance(docs[0]["ted_images"][0], Image.Image) and docs[0]["ted_prompt"].startswith("<image>\n")
    # Chat APIs (no `pretrained` model argument) get no placeholder text; the metadata can say so explicitly.
    api = lm_eval_docs("ted_mathvision", data_files=str(data["mathvision"]))["test"]
    upstream = get_task("mathvision").format_prompt(get_task("mathvision").load(data_files=str(data["mathvision"]), limit=1)[0])
    assert "<image1>" in upstream and api[0]["ted_prompt"] == upstream.replace("<image1>", "")
    assert "<image>" not in lm_eval_docs("ted_mathvision", data_files=str(data["mathvision"]), pretrained="x", image_placeholders="false")["test"][0]["ted_prompt"]
    broken = docs[3]
    assert broken["ted_images"] == [] and broken["image_error"]
    assert score_doc(broken, ["Answer: D"]) == {"acc": 0, "acc_lenient": 0, "no_answer": 0, "image_errors": 1}
    assert score_doc(docs[1], ["\\boxed{circle}"]) == {"acc": 1, "acc_lenient": 1, "no_answer": 0, "image_errors": 0}
    assert score_doc(docs[1], ["Answer: circle"]) == {"acc": 0, "acc_lenient": 1, "no_answer": 1, "image_errors": 0}
    assert score_doc(docs[0], ["I cannot tell."]) == {"acc": 0, "acc_lenient": 0, "no_answer": 1, "image_errors": 0}


def test_visualpuzzles_scores_per_category(data: dict[str, Path]) -> None:
    docs = lm_eval_docs("ted_visualpuzzles", data_files=str(data["visualpuzzles"]))["test"]
    scores = score_doc(docs[0], ["Answer: C"])
    assert scores["acc"] == 1 and scores["acc_algorithmic"] == 1
    assert all(math.isnan(scores[f"acc_{c}"]) for c in ("analogical", "deductive", "inductive", "spatial"))


def test_data_dir_and_bad_references(tmp_path: Path, data: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TED_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match=r"TED_DATA_DIR=.* has no data for aime24"):
        lm_eval_docs("ted_aime24")
    (tmp_path / "aime24.parquet").symlink_to(data["aime24"])
    assert len(lm_eval_docs("ted_aime24")["test"]) == 2
    with pytest.raises(LibraryError, match="no such file or folder"):
        lm_eval_docs("ted_aime24", library=str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text('{"format": "ted-library/1", "items": [{"id": "X1", "text": "t"}]}')
    with pytest.raises(LibraryError, match=r"invalid library at items\.0\.id"):
        lm_eval_docs("ted_aime24", library=str(tmp_path / "bad.json"))
    with pytest.raises(DataError, match="unknown task 'ted_mmlu'"):
        lm_eval_docs("ted_mmlu")


def test_request_cache_guard_drops_requests_built_from_other_documents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lm_eval.caching import cache

    monkeypatch.setattr(cache, "PATH", str(tmp_path))
    stale = tmp_path / f"requests-ted_aime-0shot-rank0-world_size1-chat_template{cache.FILE_SUFFIX}"
    other = tmp_path / f"requests-ted_aime24-0shot-rank0-world_size1{cache.FILE_SUFFIX}"
    stale.write_bytes(b"x")
    other.write_bytes(b"y")
    guard_request_cache("ted_aime", "library-A")  # unknown provenance: dropped
    assert not stale.exists() and other.exists()
    stale.write_bytes(b"x")
    guard_request_cache("ted_aime", "library-A")  # same documents: kept
    assert stale.exists()
    guard_request_cache("ted_aime", "library-B")  # another library: dropped
    assert not stale.exists() and other.exists()

"""`ted data sample`: a training file that shares no problem with the evaluation set — by id, by
normalised question text and by image — read back by `--data` as it was written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from ted.tasks.data import load_problems
from ted.tasks.splits import question_key, read_source, sample_disjoint
from tests.fixtures import benchmarks as fx
from tests.support import run_ted as ted


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def figure(path: Path, text: str, shape: str = "square") -> str:
    path.write_bytes(fx.draw(text, shape=shape))
    return path.name


@pytest.fixture
def sets(tmp_path: Path) -> Path:
    """A pool of 8 and an evaluation set that shares one problem with it in each way."""
    pool = [{"id": f"p{i}", "question": f"Pool question number {i}: what is {i} + {i}?", "answer": str(2 * i)} for i in range(8)]
    pool[5]["images"] = [figure(tmp_path / "pool-fig.png", "fig-5")]
    pool[6]["images"] = [figure(tmp_path / "generic-a.png", "a")]
    pool[7]["images"] = [figure(tmp_path / "generic-b.png", "b", "circle")]
    pool[6]["question"] = pool[7]["question"] = "According to the question shown in the image, answer it."
    pool.append(dict(pool[1], id="p1-again"))  # the same question twice in the pool
    evaluation = [
        {"id": "p2", "question": "Something else entirely?", "answer": "1"},  # the same id
        {"id": "e1", "question": "  POOL question number 3 - what is 3+3 ?  ", "answer": "6"},  # the same text, written differently
        {"id": "e2", "question": "A different question about a figure.", "answer": "9"},  # the same figure, saved again
        {"id": "e3", "question": "According to the question shown in the image, answer it.", "answer": "2"},  # a shared text
    ]
    Image.open(tmp_path / "pool-fig.png").convert("RGB").save(tmp_path / "eval-fig.png", format="PNG", compress_level=1)
    evaluation[2]["images"] = ["eval-fig.png"]
    evaluation[3]["images"] = [figure(tmp_path / "generic-c.png", "c", "triangle")]
    write_jsonl(tmp_path / "pool.jsonl", pool)
    write_jsonl(tmp_path / "eval.jsonl", evaluation)
    return tmp_path


def test_overlap_is_refused_by_id_text_and_image(sets: Path) -> None:
    pool, evaluation = read_source(str(sets / "pool.jsonl")), read_source(str(sets / "eval.jsonl"))
    result = sample_disjoint(pool, [evaluation], n=5, seed=0)
    ids = [p.id for p in result.problems]
    assert set(ids) == {"p0", "p1", "p4", "p6", "p7"}  # every problem outside the evaluation set
    assert result.excluded == 3 and result.by == {"id": 1, "question text": 1, "image": 1}
    assert result.duplicates == 1 and result.read == 9 and result.eligible == 5
    # A text several figure problems share does not identify one: p6 and p7 stay, and are not duplicates.
    assert {"p6", "p7"} <= set(ids)


def test_the_draw_is_seeded_and_in_pool_order(sets: Path) -> None:
    pool, evaluation = read_source(str(sets / "pool.jsonl")), read_source(str(sets / "eval.jsonl"))
    draw = lambda seed: [p.id for p in sample_disjoint(pool, [evaluation], n=3, seed=seed).problems]  # noqa: E731
    assert draw(0) == draw(0) and len({tuple(draw(seed)) for seed in range(6)}) > 1
    order = ["p0", "p1", "p4", "p6", "p7"]
    assert draw(0) == sorted(draw(0), key=order.index)


def test_ids_are_compared_within_a_dataset_only(tmp_path: Path) -> None:
    """MathVerse's sample "1" is not MathVision's problem "1": across benchmarks ids mean nothing."""
    verse = read_source(str(fx.write_mathverse(tmp_path / "mathverse")), task="mathverse")
    vision = read_source(str(fx.write_mathvision(tmp_path / "mathvision")), task="mathvision", split="test")
    result = sample_disjoint(verse, [vision], n=1)
    assert result.by["id"] == 0
    # The two fixtures draw two identical figures (a triangle labelled 1, a square labelled 4): found by pixels.
    assert result.by["image"] == 2 and result.excluded == 2 and [p.id for p in result.problems] in (["2"], ["3"])
    mini = read_source(str(tmp_path / "mathvision"), task="mathvision", split="testmini")
    test = read_source(str(tmp_path / "mathvision"), task="mathvision", split="test")
    same = sample_disjoint(test, [mini], n=1)
    assert same.by["id"] == 2 and same.eligible == 2  # MathVision testmini lies inside test


def test_question_key_normalises() -> None:
    assert question_key("<image1>\nWhat is  2+2 ?") == question_key("what is 2 + 2") == "what is 2 2"
    assert question_key("Ｆｕｌｌ－width") == "full width"


def test_cli_writes_a_file_distill_reads_and_prints_what_it_excluded(sets: Path) -> None:
    result = ted("data", "sample", "pool.jsonl", "--samples", "4", "--seed", "0", "--exclude", "eval.jsonl", "--out", "out/train.jsonl", cwd=sets)
    assert result.returncode == 0, result.stderr
    assert "wrote 4 problems to out/train.jsonl, sampled from 5 eligible of 9 read" in result.stderr
    assert "excluded 3 that the evaluation set has (by id 1, by question text 1, by image 1)" in result.stderr
    assert "1 duplicates within the pool" in result.stderr
    written = load_problems(str(sets / "out" / "train.jsonl"))
    assert len(written) == 4 and not {p.id for p in written} & {"p2", "p3", "p5"}
    with_figure = [p for p in written if p.images]
    assert with_figure and all(isinstance(img, Image.Image) for p in with_figure for img in p.images)
    assert all((sets / "out" / "train-images").glob("*.png"))

    again = ted("data", "sample", "pool.jsonl", "--samples", "4", "--exclude", "eval.jsonl", "--out", "out/train.jsonl", cwd=sets)
    assert again.returncode != 0 and again.stderr.startswith("error: ") and "--force" in again.stderr
    too_many = ted("data", "sample", "pool.jsonl", "--samples", "6", "--exclude", "eval.jsonl", "--out", "x.jsonl", cwd=sets)
    assert too_many.returncode != 0 and "only 5 problems outside the evaluation set" in too_many.stderr
    assert "Traceback" not in too_many.stderr and not (sets / "x.jsonl").exists()


def test_cli_field_maps_for_pool_and_evaluation_set(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "pool.jsonl", [{"key": f"k{i}", "problem_text": f"Question {i}?", "sol": str(i)} for i in range(3)])
    write_jsonl(tmp_path / "eval.jsonl", [{"ident": "x", "q": "question 1", "gold": "1"}])
    result = ted("data", "sample", "pool.jsonl", "--field", "question=problem_text", "--field", "answer=sol", "--field", "id=key",
                 "--exclude", "eval.jsonl", "--exclude-field", "question=q", "--exclude-field", "answer=gold",
                 "--samples", "2", "--out", "train.jsonl", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert [p.id for p in load_problems(str(tmp_path / "train.jsonl"))] == ["k0", "k2"]
    bad = ted("data", "sample", "pool.jsonl", "--field", "question", "--samples", "1", "--out", "t.jsonl", cwd=tmp_path)
    assert bad.returncode != 0 and bad.stderr.startswith("error: --field 'question'")

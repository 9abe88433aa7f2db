"""`ted eval`'s report from lm-eval's logged samples: every reply regraded, statistics, the card label."""

from __future__ import annotations

from typing import Any

import pytest

from ted.cards import render_card
from ted.evaluate import EvalReport, _scores
from ted.library import Library


def sample(pid: str, answer: str, replies: list[str], category: str | None = None) -> dict[str, Any]:
    doc = {"ted_task": "aime", "id": pid, "question": "?", "answer": answer, "options": None, "image_error": "", "category": category}
    return {"doc": doc, "resps": [replies], "acc": None}


def test_every_repeat_is_graded_with_the_tasks_scorer() -> None:
    """lm-eval's metric sees only the first reply of a repeated request; the report sees all k."""
    runs = _scores([sample("1", "70", ["\\boxed{70}", "\\boxed{71}", "Answer: 70", "\\boxed{70}"]), sample("2", "5", ["\\boxed{5}"] * 4)])
    assert runs.verdicts == {"1": [1.0, 0.0, 0.0, 1.0], "2": [1.0, 1.0, 1.0, 1.0]}
    assert runs.acc == pytest.approx(0.75) and runs.samples == 2


def report(base: list[int], lib: list[int], categories: list[str] | None = None) -> EvalReport:
    def run(values: list[int]) -> Any:
        return _scores([sample(str(i), "1", ["\\boxed{1}" if v else "\\boxed{0}"], categories[i] if categories else None) for i, v in enumerate(values)])

    return EvalReport(task="ted_aime", library="lib.json", library_items=1, library_tokens=10, baseline=run(base), with_library=run(lib))


def test_json_summary_has_exactly_the_documented_keys() -> None:
    summary = report([1] * 20 + [0] * 10, [1] * 22 + [0] * 8).summary()
    assert list(summary) == ["task", "n", "repeats", "baseline", "with_library", "delta", "delta_ci95", "p_value"]
    assert list(summary["baseline"]) == ["acc", "ci95"] and len(summary["with_library"]["ci95"]) == 2
    assert summary["n"] == 30 and summary["delta"] == pytest.approx(2 / 30)


def test_per_category_statistics() -> None:
    cats = ["spatial"] * 4 + ["deductive"] * 4
    full = report([0, 0, 0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1, 0], cats)
    assert full.comparison("spatial").delta == 1.0 and full.comparison("spatial").n == 4
    assert full.comparison("deductive").delta == -0.25
    assert set(full.to_dict()["category_stats"]) == {"deductive", "spatial"}


@pytest.mark.parametrize(("base", "lib", "label"), [([1] * 20 + [0] * 10, [1] * 22 + [0] * 8, True), ([0] * 100, [1] * 100, False)])
def test_card_labels_a_gain_whose_interval_includes_zero(base: list[int], lib: list[int], label: bool) -> None:
    result = report(base, lib)
    library = Library(name="card-stats")
    library.add("Check the units.", step=1)
    library.metrics.task, library.metrics.baseline, library.metrics.with_library = "ted_aime", result.baseline.acc, result.with_library.acc
    library.metrics.model_extra["stats"] = result.summary()
    card = render_card(library, ref="org/card-stats@v1")
    low, high = result.comparison().delta_ci95
    assert f"95% CI of the gain [{low:+.3f}, {high:+.3f}]" in card
    assert ("not significant" in card) is label


def test_card_ignores_malformed_statistics() -> None:
    library = Library(name="card-bad")
    library.add("Check the units.", step=1)
    library.metrics.model_extra["stats"] = {"delta_ci95": ["x", None], "p_value": "0"}
    assert "CI of the gain" not in render_card(library, ref="org/card-bad@v1")

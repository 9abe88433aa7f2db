"""`ted reproduce` with the arms a reviewer asks for, end to end against the simulator: the placebo,
a `usage` arm, a strategy distilled with three seeds, Δ pooled over them; and a reasoning-gym benchmark.

Small on purpose: 4 training problems, 1 epoch, 1 rollout, 24 evaluated problems. The simulator's
answers depend on the request, so every library's prompt moves some answers: the Δs are noise, which
is what the report's intervals must say.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from tests.fixtures import benchmarks as fx
from tests.sim.server import Simulator
from tests.support import lm_eval_env, run_ted

pytestmark = pytest.mark.integration


def _compute(i: int) -> tuple[str, str]:
    a, b = 13 + 7 * i, 101 + 3 * i
    return f"Compute {a} + {b}.", str(a + b)


def _workspace(root: Path) -> Path:
    root.mkdir(parents=True)
    pool = [{"problem": q, "answer": a, "id": f"t{i}"} for i, (q, a) in ((i, _compute(100 + i)) for i in range(6))]
    (root / "pool.jsonl").write_text("".join(json.dumps(row) + "\n" for row in pool))
    fx.write_aime25(root / "aime25", rows=[{"problem": q, "answer": a, "id": f"e{i}"} for i, (q, a) in ((i, _compute(i)) for i in range(24))])
    return root


def _reproduce(sim: Simulator, cwd: Path, *extra: str) -> None:
    proc = run_ted(
        "reproduce", "--student", sim.spec("sim-student"), "--teacher", sim.spec("sim-teacher"),
        "--samples", "4", "--epochs", "1", "--rollouts", "1", "--batch-size", "2", "--max-items", "3",
        "--eval-max-tokens", "256", "--max-tokens", "256", "--json-max-tokens", "2048", "--concurrency", "4", *extra,
        cwd=cwd, env=lm_eval_env(cwd), timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]


def test_placebo_usage_and_seeds_end_to_end(tmp_path: Path) -> None:
    cwd = _workspace(tmp_path / "arms")
    with Simulator(seed=3, student_accuracy=0.5, teacher_accuracy=0.7) as sim:
        sim.behaviour = replace(sim.behaviour, boxed=True)  # graded as AIME is: the boxed answer
        _reproduce(
            sim, cwd, "--benchmark", "aime", "--out", "runs/arms", "--train-from", "pool.jsonl", "--train-task", "aime",
            "--eval-data", "aime25/test.jsonl", "--strategies", "teacher,usage", "--seeds", "3", "--seed-strategies", "teacher",
            "--attribute", "16",
        )  # fmt: skip
    run = cwd / "runs" / "arms"
    report = json.loads((run / "report.json").read_text())
    rows = {row["name"]: row for row in report["arms"]}
    assert list(rows) == ["baseline", "placebo", "teacher", "teacher-s2", "teacher-s3", "usage"]
    assert all(0.3 < row["acc"] < 1 for row in rows.values())  # the simulator's answers graded both ways: the Δs are not all 0
    assert rows["placebo"]["delta"] is not None and rows["placebo"]["vs_placebo"] is None and rows["baseline"]["delta"] is None
    for name in ("teacher", "teacher-s2", "teacher-s3", "usage"):
        row = rows[name]
        assert row["n"] == 24 and row["vs_placebo"]["delta"] == pytest.approx(row["acc"] - rows["placebo"]["acc"], abs=1e-3)
        assert row["delta_ci95"][0] <= row["delta"] <= row["delta_ci95"][1] and 0 <= row["p_value"] <= 1
    assert len({rows[n]["seed"] for n in ("teacher", "teacher-s2", "teacher-s3")}) == 3
    (group,) = report["pooled"]["aime"]
    assert group["group"] == "teacher" and group["arms"] == ["teacher", "teacher-s2", "teacher-s3"]
    pooled = group["vs_baseline"]
    assert pooled["deltas"] == pytest.approx([rows[n]["delta"] for n in group["arms"]], abs=1e-3)
    assert pooled["ci95"][0] <= pooled["delta"] <= pooled["ci95"][1] and "Satterthwaite" in pooled["method"]
    assert group["vs_placebo"]["delta"] == pytest.approx(pooled["delta"] - rows["placebo"]["delta"], abs=1e-3)
    # Each distillation ran with its own seed, recorded in its library.
    seeds = {json.loads((run / row["library"]).read_text())["source"]["seed"] for row in report["arms"] if row.get("library")}
    assert len(seeds) == 3  # teacher's three, usage shares the first
    # The placebo's prompts carry the library's frame and citation instruction and no lesson; the baseline's no frame.
    calls = {arm: [json.loads(line) for line in (run / "evals" / "aime" / f"{arm}.json.calls.jsonl").read_text().splitlines()] for arm in ("baseline", "placebo")}
    placebo_text = json.dumps([c["messages"] for c in calls["placebo"]])
    assert "Used: [E1, E3]" in placebo_text and "[E1] " not in placebo_text
    assert "Experience library" not in json.dumps([c["messages"] for c in calls["baseline"]])
    # The attribution step: the first library's lessons measured, stored in the library, in the report.
    attribution = report["attribution"]
    library = json.loads((run / rows["teacher"]["library"]).read_text())
    if library["items"]:
        assert attribution["arm"] == "teacher" and attribution["n"] == 16 and 0.3 < attribution["accuracy"] < 1
        assert [e["id"] for e in attribution["effects"]] == [item["id"] for item in library["items"]]
        assert all(item["attribution"]["n"] == 16 for item in library["items"])
        assert "## Which lessons help: attribution of teacher" in (run / "report.md").read_text()
    else:
        assert attribution["effects"] == []
    md = (run / "report.md").read_text()
    assert "| placebo |" in md and "### Over distillation seeds" in md and "Welch–Satterthwaite" in md
    assert "## Protocol" in md and "Batch size 2" in md and "the `usage` arm" in md


def test_a_reasoning_gym_benchmark_is_split_by_the_run_and_scored_by_ted_rg(tmp_path: Path) -> None:
    cwd = tmp_path / "rg"
    cwd.mkdir()
    with Simulator(seed=5) as sim:
        _reproduce(sim, cwd, "--benchmark", "rg:chain_sum", "--out", "runs/rg", "--strategies", "truncate", "--eval-data", "rg:chain_sum?n=8&seed=3", "--no-placebo")
    run = cwd / "runs" / "rg"
    report = json.loads((run / "report.json").read_text())
    assert [row["name"] for row in report["arms"]] == ["baseline", "truncate"] and report["arms"][0]["n"] == 8
    assert report["split"]["pool"] == "rg:chain_sum?split=train&n=4&seed=0" and report["split"]["samples"] == 4
    train = [json.loads(line)["question"] for line in (run / "train.jsonl").read_text().splitlines()]
    evaluated = [json.loads(line)["messages"] for line in (run / "evals" / "rg:chain_sum" / "baseline.json.calls.jsonl").read_text().splitlines()]
    assert len(evaluated) == 8 and not any(q in json.dumps(evaluated) for q in train)  # disjoint by text
    assert any("ted_rg" in line and "rg:chain_sum?split=test" in line for line in report["rerun"]["eval"])
    assert "rg:chain_sum" in (run / "report.md").read_text()

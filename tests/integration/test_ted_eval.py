"""`ted eval` end to end: the real CLI, lm-eval in process, a real llama_cpp.server, a fixture."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from ted.library import Library
from tests.fixtures import benchmarks as fx
from tests.support import lm_eval_env, run_ted

pytestmark = pytest.mark.integration


def test_ted_eval_compares_records_and_charts(llama_server: Any, tmp_path: Path) -> None:
    data = fx.write_visualpuzzles(tmp_path / "vp")
    lib = Library(name="eval-fixture")
    lib.add("Name the option letter on the last line.", step=1)
    path = lib.save(tmp_path / "library.json")
    proc = run_ted(
        "eval", "--task", "ted_visualpuzzles", "--library", str(path),
        "--model_args", f"base_url={llama_server.base_url}/chat/completions,model={llama_server.model}",
        "--data_files", str(data), "--limit", "3", "--gen_kwargs", "max_gen_toks=4",
        "--record", "--chart", "chart.png", "--output", "report.json",
        cwd=tmp_path, env=lm_eval_env(tmp_path), timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["task"] == "ted_visualpuzzles" and report["library_items"] == 1
    assert report["library_tokens"] == lib.tokens() > 0
    for run in ("baseline", "with_library"):
        assert report[run]["samples"] == 3
        assert set(report[run]["categories"]) == {"Algorithmic", "Analogical", "Deductive"}
        assert report[run]["no_answer"] + round(report[run]["acc"] * 3) <= 3
    assert report["delta"] == pytest.approx(report["with_library"]["acc"] - report["baseline"]["acc"])
    stats = report["stats"]
    assert (stats["n"], stats["repeats"], stats["delta"]) == (3, 1, pytest.approx(report["delta"]))
    assert stats["delta_ci95"][0] <= stats["delta"] <= stats["delta_ci95"][1] and 0 <= stats["p_value"] <= 1
    assert set(report["category_stats"]) == {"Algorithmic", "Analogical", "Deductive"}
    for text in ("baseline", "with library", "delta", "Algorithmic", "no answer", f"{lib.tokens()} tokens"):
        assert text in proc.stdout
    with Image.open(tmp_path / "chart.png") as chart:
        assert chart.format == "PNG" and chart.width > 300
    recorded = Library.load(path).metrics
    assert (recorded.task, recorded.baseline, recorded.with_library) == (
        "ted_visualpuzzles", report["baseline"]["acc"], report["with_library"]["acc"],
    )  # fmt: skip
    assert Library.load(path).items == lib.items
    assert Library.load(path).metrics.model_extra["stats"] == stats


def test_ted_eval_json_with_repeats(llama_server: Any, tmp_path: Path) -> None:
    """`--json` prints one object with the documented keys; `--repeats 2` samples two replies per problem."""
    data = fx.write_aime25(tmp_path / "aime")
    lib = Library(name="eval-json")
    lib.add("Box the final integer.", step=1)
    path = lib.save(tmp_path / "library.json")
    proc = run_ted(
        "eval", "--task", "ted_aime", "--library", str(path), "--json", "--repeats", "2", "--temperature", "0.8",
        "--model_args", f"base_url={llama_server.base_url}/chat/completions,model={llama_server.model}",
        "--data_files", str(data), "--limit", "2", "--gen_kwargs", "max_gen_toks=4", "--output", "full.json",
        cwd=tmp_path, env=lm_eval_env(tmp_path), timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert list(summary) == ["task", "n", "repeats", "baseline", "with_library", "delta", "delta_ci95", "p_value"]
    assert (summary["task"], summary["n"], summary["repeats"]) == ("ted_aime", 2, 2)
    assert len(summary["baseline"]["ci95"]) == len(summary["with_library"]["ci95"]) == 2
    assert json.loads((tmp_path / "full.json").read_text())["stats"] == summary


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "ted_mmlu", "--library", "LIB"], "unknown task 'ted_mmlu'; choose one of ted_mathvision"),
        (["--task", "ted_aime", "--library", "missing.json"], "missing.json: no such file or folder"),
        (["--task", "ted_aime", "--library", "org/name@v2", "--record"], "--record writes into a local library file"),
        (["--task", "ted_aime"], "no library given"),
    ],
)
def test_ted_eval_bad_input_is_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    path = Library(name="x").save(tmp_path / "lib.json")
    proc = run_ted("eval", *[str(path) if a == "LIB" else a for a in args], "--model_args", "base_url=http://127.0.0.1:9/v1/chat/completions,model=m",
                   cwd=tmp_path, env=lm_eval_env(tmp_path))
    assert proc.returncode != 0
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1

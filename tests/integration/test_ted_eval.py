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
    # Every request lm-eval made, on record beside the report: both arms, the library only in one, images as hashes.
    calls = [json.loads(line) for line in (tmp_path / "report.json.calls.jsonl").read_text().splitlines()]
    evals = [c for c in calls if c["stage"] == "eval"]
    assert sorted(c["arm"] for c in evals) == ["baseline"] * 3 + ["with_library"] * 3 and {c["stage"] for c in calls} <= {"eval", "probe"}
    assert all(c["replies"] and c["messages"] for c in evals)
    assert [any("Name the option letter" in m["text"] for m in c["messages"]) for c in evals] == [False] * 3 + [True] * 3
    assert any(m.get("images") for c in evals for m in c["messages"]) and "base64," not in (tmp_path / "report.json.calls.jsonl").read_text()
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
        (["--task", "ted_mmlu", "--library", "LIB"], "unknown task 'ted_mmlu': neither ted's (ted_mathvision"),
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


def test_ted_eval_puts_a_library_into_an_upstream_lm_eval_task(tmp_path: Path) -> None:
    """`ted eval --task ANY_LM_EVAL_TASK`: upstream gsm8k (its prompt, filters and metric; only the
    data is local) gets the library as lm-eval's system instruction, citation-free, and ted's
    numbers are lm-eval's own for the chosen metric; --output-path/--log-samples write lm-eval's
    files, --use-cache keeps the replies, and nothing else is written."""
    import lm_eval.tasks

    from tests.sim import Simulator, write_problems

    rows = [json.loads(line) for line in write_problems(tmp_path / "problems.jsonl", 6).read_text().splitlines()]
    data = tmp_path / "gsm.jsonl"
    data.write_text("".join(json.dumps({"question": r["question"], "answer": f"{r['question']}\n#### {r['answer']}"}) + "\n" for r in rows))
    upstream = Path(lm_eval.tasks.__file__).parent / "gsm8k" / "gsm8k.yaml"
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "gsm8k_local.yaml").write_text(
        f"include: {upstream}\ntask: gsm8k_local\ndataset_path: json\ndataset_name: null\n"
        f"dataset_kwargs:\n  data_files:\n    test: {data}\n    train: {data}\nnum_fewshot: 0\n"
    )
    lib = Library(name="upstream")
    lib.add("Restate the two operands before you compute.", step=1)
    path = lib.save(tmp_path / "work" / "library.json")
    work = path.parent
    with Simulator(seed=3, tokens_per_reply=20, keep_requests=True) as sim:
        args = ("eval", "--task", "gsm8k_local", "--include_path", str(tasks), "--library", str(path), "--json",
                "--model_args", f"base_url={sim.base_url}/chat/completions,model=sim", "--metric", "exact_match,flexible-extract",
                "--output_path", str(tmp_path / "lm"), "--log_samples", "--use_cache", str(tmp_path / "cache" / "replies"))  # fmt: skip
        proc = run_ted(*args, cwd=work, env=lm_eval_env(work), timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        systems = [body["messages"][0]["content"] for stage, body in sim.requests_seen() if body["messages"][0]["role"] == "system"]
        asked = len(sim.requests_seen())
        again = run_ted(*args, cwd=work, env=lm_eval_env(work), timeout=600)
        assert again.returncode == 0 and len(sim.requests_seen()) - asked <= 2, again.stderr[-3000:]  # the probe only: replies from the cache
    summary = json.loads(proc.stdout)
    assert summary["task"] == "gsm8k_local" and summary["n"] == 6
    block = "Restate the two operands before you compute."
    with_library = [text for text in systems if block in text]
    assert with_library and all("Used:" not in text and "[E1]" not in text for text in with_library)
    assert sum(1 for text in systems if "Experience library" in text) == len(with_library)  # the baseline has none
    for arm, key in (("baseline", "baseline"), ("with_library", "with_library")):
        results = sorted((tmp_path / "lm" / arm).rglob("results_*.json"))[0]  # the first run's (the rerun's follows)
        upstream_acc = json.loads(results.read_text())["results"]["gsm8k_local"]["exact_match,flexible-extract"]
        assert summary[key]["acc"] == pytest.approx(upstream_acc)
        assert list((tmp_path / "lm" / arm).rglob("samples_gsm8k_local_*.jsonl"))
    assert [p.name for p in work.iterdir()] == ["library.json"]  # no chart, no call log, nothing unasked

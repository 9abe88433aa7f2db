"""`ted reproduce` end to end: the real CLI against a real llama_cpp.server with the bundled model.

Tiny on purpose (CPU is scarce): AIME-schema data, 2 training problems × 1 epoch × 1 rollout,
two strategies, one transfer benchmark, 2 problems per evaluation, 8 tokens per answer. The
numbers are meaningless; the path is the real one (split, `ted distill`, lm-eval, statistics,
report). The second test SIGKILLs the job in the middle of the second distillation and again in
the middle of an evaluation, and `--resume` must finish with the report of an uninterrupted run.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.fixtures import benchmarks as fx
from tests.support import lm_eval_env, run_ted, start_ted

pytestmark = [pytest.mark.integration, pytest.mark.first]  # minutes of dependent work: handed out first (tests/conftest.py)

POOL = [
    {"problem": "What is $7 + 8$?", "answer": "15", "id": "p1"},
    {"problem": "What is $3 \\cdot 4 + 5$?", "answer": "17", "id": "p2"},  # also in the evaluation set: must be excluded
    {"problem": "How many primes are below $10$?", "answer": "4", "id": "p3"},
    {"problem": "What is $2^4$?", "answer": "16", "id": "p4"},
]
# Compared strictly: every result, and the recorded work (calls, generations, tokens, dollars).
# Not compared: timings, and retries (sends of a request again: they depend on the server's state,
# not on the work — a killed client's last request keeps the one-at-a-time server busy, so the
# resumed run's first request can time out; a new process learns llama.cpp's JSON form again).
UNCOMPARED = ("timings", "wall_s", "retries")


def _hub_env(cwd: Path, hub_url: str, home: Path) -> dict[str, str]:
    """Online, to the local Hub test server only (the datasets stay offline)."""
    return {**lm_eval_env(cwd), "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": hub_url, "HF_TOKEN": "hf_write", "HF_HOME": str(home / "hf-home"), "HF_HUB_DISABLE_XET": "1"}


def _workspace(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "pool.jsonl").write_text("".join(json.dumps(row) + "\n" for row in POOL))
    fx.write_aime25(root / "aime25")
    fx.write_aime24(root / "aime24")
    return root


def _args(server: Any) -> list[str]:
    return [
        "reproduce", "--benchmark", "aime",
        "--student", server.spec, "--teacher", server.spec, "--out", "runs/tiny",
        "--train-from", "pool.jsonl", "--train-task", "aime", "--samples", "2", "--epochs", "1", "--rollouts", "1",
        "--batch-size", "1", "--strategies", "teacher,truncate", "--transfer-to", "aime24",
        "--eval-data", "aime25/test.jsonl", "--eval-data", "aime24=aime24/aime_2024_problems.parquet",
        "--eval-limit", "2", "--eval-max-tokens", "8", "--max-tokens", "8", "--json-max-tokens", "24",
        "--temperature", "0", "--teacher-temperature", "0", "--concurrency", "1",
        "--price", "student=0.1/0.4", "--price", "teacher=1/4", "--no-placebo",  # the placebo: test_reproduce_arms
    ]  # fmt: skip


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_ted(*args, cwd=cwd, env=env or lm_eval_env(cwd), timeout=900)


def _differences(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in _differences(a.get(k), b.get(k), f"{path}/{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def _comparable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items() if k not in UNCOMPARED}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    return value


@pytest.fixture(scope="module")
def uninterrupted(llama_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = _workspace(tmp_path_factory.mktemp("reproduce") / "whole")
    proc = _run(_args(llama_server), cwd)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "step 1/9 split" in proc.stderr and "ETA" in proc.stderr
    return cwd / "runs" / "tiny"


def test_reproduce_writes_the_paper_style_report(uninterrupted: Path) -> None:
    report = json.loads((uninterrupted / "report.json").read_text())
    assert [row["name"] for row in report["arms"]] == ["baseline", "teacher", "truncate"]
    assert set(report["transfer"]) == {"aime24"} and len(report["transfer"]["aime24"]) == 3
    for rows in (report["arms"], report["transfer"]["aime24"]):
        for row in rows:
            assert row["n"] == 2 and row["repeats"] == 1
            assert 0 <= row["ci95"][0] <= row["acc"] <= row["ci95"][1] <= 1
        for row in rows[1:]:
            assert 0 <= row["p_value"] <= 1 and row["delta"] == pytest.approx(row["acc"] - rows[0]["acc"])
    split = report["split"]
    assert (split["read"], split["excluded"], split["excluded_by"]["question text"], split["samples"]) == (4, 1, 1, 2)
    train_ids = {json.loads(line)["id"] for line in (uninterrupted / "train.jsonl").read_text().splitlines()}
    assert len(train_ids) == 2 and "p2" not in train_ids
    # The paper's numbers: their own block in the JSON, their own labelled column in the table, never in our rows.
    assert report["paper"]["accuracy"]["aime"] == {"baseline": 0.673, "teacher": 0.733}
    assert all("0.733" not in json.dumps(row) for row in report["arms"])
    md = (uninterrupted / "report.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| arm | teacher |"))
    assert header.endswith("| paper (quoted) |")
    rows = [line for line in md.splitlines() if line.startswith(("| baseline |", "| teacher |", "| truncate |"))]
    assert len(rows) == 6  # the main table and the transfer table
    assert rows[0].endswith("| 0.673 |") and rows[1].endswith("| 0.733 |") and rows[2].endswith("| – |")
    assert "not measured here and are not ours" in md
    # Cost: recorded per role for each distillation, next to the estimate made before it ran.
    recorded = report["cost"]["recorded"]["distill:teacher"]["roles"]
    assert recorded["student"]["calls"] >= 2 and recorded["teacher"]["calls"] >= 6
    assert report["cost"]["estimate"]["distill:teacher"]["roles"]["student"]["calls"] == 2
    assert report["cost"]["recorded"]["distill:teacher"]["usd"] > 0
    # Rerun: the commands, the versions, the models.
    assert report["rerun"]["reproduce"].startswith("ted reproduce --benchmark aime")
    assert any("--compression truncate" in line for line in report["rerun"]["distill"])
    assert any("ted_aime24" in line and "lm_eval" in line for line in report["rerun"]["eval"])
    assert report["versions"]["lm_eval"] and report["versions"]["student"] == "gemma-3-270m"
    for name in ("learning_curve.png", "accuracy.png"):
        with Image.open(uninterrupted / name) as image:
            assert image.format == "PNG" and image.width > 300
    html = (uninterrupted / "report.html").read_text()
    assert 'class="paper"' in html and "<td>truncate</td>" in html


def _wait_for(condition: Any, proc: subprocess.Popen[str], what: str, timeout: float = 600) -> None:
    started = time.monotonic()
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before {what}: {proc.stderr.read()[-3000:] if proc.stderr else ''}")
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _status(run: Path, step: str) -> str | None:
    try:
        return json.loads((run / "state.json").read_text())["steps"][step]["status"]
    except (OSError, ValueError, KeyError):
        return None


def test_sigkill_then_resume_gives_the_same_report(llama_server: Any, uninterrupted: Path, tmp_path: Path) -> None:
    cwd = _workspace(tmp_path / "killed")
    run = cwd / "runs" / "tiny"
    args = _args(llama_server)
    # 1. killed in the middle of the second distillation: its first batch is checkpointed, the library not written
    checkpoint = run / "libraries" / "truncate" / "library.json.checkpoint.json"
    proc = start_ted(*args, cwd=cwd, env=lm_eval_env(cwd))
    _wait_for(checkpoint.exists, proc, "the second distillation's first checkpoint")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / "libraries" / "truncate" / "library.json").exists()
    assert _status(run, "distill:teacher") == "done" and _status(run, "distill:truncate") == "running"
    # 2. resumed, then killed in the middle of an evaluation
    proc = start_ted(*args, "--resume", cwd=cwd, env=lm_eval_env(cwd))
    _wait_for(lambda: _status(run, "eval:aime:teacher") == "running", proc, "the teacher library's evaluation")
    proc.send_signal(signal.SIGKILL)  # at once: an evaluation of 2 problems (one lm-eval run, repeats inside) ends within a second
    proc.wait()
    assert _status(run, "eval:aime:teacher") == "running" and not (run / "evals" / "aime" / "teacher.json").exists()
    # 3. resumed to the end
    done = _run(args + ["--resume"], cwd)
    assert done.returncode == 0, done.stderr[-4000:]
    state = json.loads((run / "state.json").read_text())["steps"]
    attempts = {step: entry["attempts"] for step, entry in state.items()}
    assert attempts["split"] == attempts["distill:teacher"] == attempts["eval:aime:baseline"] == 1  # never repeated
    assert attempts["distill:truncate"] == 2 and attempts["eval:aime:teacher"] == 2
    whole = json.loads((uninterrupted / "report.json").read_text())
    resumed = json.loads((run / "report.json").read_text())
    assert not _differences(_comparable(resumed), _comparable(whole))
    # report.md is rendered from report.json alone; its prose, commands and versions match too (its tables hold timings).
    prose = lambda text: [line for line in text.splitlines() if not line.startswith("|")]  # noqa: E731
    assert prose((run / "report.md").read_text()) == prose((uninterrupted / "report.md").read_text())


def test_push_of_an_empty_best_library_is_one_line_and_the_report_is_written(uninterrupted: Path, llama_server: Any, tmp_path: Path) -> None:
    from tests.integration.hub_server import HubServer, Token
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    report = json.loads((uninterrupted / "report.json").read_text())
    best = next(row for row in report["arms"] if row["name"] == report["best"])
    assert best["items"] == 0  # the premise: 24 JSON tokens hold no lesson, so the bundled model's libraries end empty
    cwd = tmp_path / "copy"
    shutil.copytree(uninterrupted.parent.parent, cwd)  # the finished run, so --resume only rebuilds the report and pushes
    run = cwd / "runs" / "tiny"
    for name in ("report.md", "report.json", "report.html"):
        (run / name).unlink()
    with HubServer(tmp_path / "hub", {"hf_write": Token("alice", "write")}) as hub:
        env = _hub_env(cwd, hub.url, tmp_path)
        proc = run_ted(*_args(llama_server), "--resume", "--push", "alice/tiny", cwd=cwd, env=env, timeout=300)
        assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error")]
        assert errors == [proc.stderr.strip().splitlines()[-1]], proc.stderr[-3000:]
        assert errors[0].startswith(f"error: --push alice/tiny: the best library ({report['best']}) was not published")
        assert "runs/tiny/report.md" in errors[0] and "no experiences" in errors[0]
        rewritten = json.loads((run / "report.json").read_text())
        assert rewritten["config"].pop("push") == "alice/tiny" and report["config"].pop("push") is None
        assert rewritten == report and (run / "report.md").exists()
        with pytest.raises(RepositoryNotFoundError):
            HfApi(endpoint=hub.url, token="hf_write").list_repo_files("alice/tiny", repo_type="dataset")


def test_push_publishes_the_best_library_with_its_scores_and_the_report(tmp_path: Path) -> None:
    """Against the simulator (`tests.sim`), whose libraries have items, to a local Hub through huggingface_hub."""
    from huggingface_hub import HfApi, hf_hub_download

    from tests.integration.hub_server import HubServer, Token
    from tests.sim import Simulator, write_problems

    write_problems(tmp_path / "pool.jsonl", 6, seed=1)
    rows = [json.loads(line) for line in write_problems(tmp_path / "eval.jsonl", 3, seed=2).read_text().splitlines()]
    (tmp_path / "aime.jsonl").write_text("".join(json.dumps({"problem": r["question"], "answer": r["answer"], "id": r["id"]}) + "\n" for r in rows))
    with Simulator() as sim, HubServer(tmp_path / "hub", {"hf_write": Token("alice", "write")}) as hub:
        env = _hub_env(tmp_path, hub.url, tmp_path)
        proc = _run([
            "reproduce", "--benchmark", "aime", "--student", sim.spec("sim-student"),
            "--teacher", sim.spec("sim-teacher"), "--out", "runs/sim", "--train-from", "pool.jsonl", "--train-task", "generic",
            "--samples", "2", "--epochs", "1", "--rollouts", "1", "--strategies", "teacher,truncate", "--eval-data", "aime.jsonl",
            "--eval-max-tokens", "64", "--no-html", "--push", "alice/sim",
        ], tmp_path, env)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "pushed" in proc.stderr.splitlines()[-1]
        run = tmp_path / "runs" / "sim"
        report = json.loads((run / "report.json").read_text())
        rows_by_name = {row["name"]: row for row in report["arms"]}
        best, base = rows_by_name[report["best"]], rows_by_name["baseline"]
        assert best["items"] > 0
        files = set(HfApi(endpoint=hub.url, token="hf_write").list_repo_files("alice/sim", repo_type="dataset", revision="v1"))
        assert {"library.json", "README.md", "experiences.jsonl", "report/report.md", "report/report.json", "report/accuracy.png"} <= files

        def download(name: str) -> Path:
            return Path(hf_hub_download("alice/sim", name, repo_type="dataset", revision="v1", endpoint=hub.url, token="hf_write", cache_dir=str(tmp_path / "c")))

        published = json.loads(download("library.json").read_text())
        assert published["config"]["compression"] == best["strategy"] and len(published["items"]) == best["items"]
        metrics = published["metrics"]
        assert (metrics["task"], metrics["baseline"], metrics["with_library"]) == ("ted_aime25", base["acc"], best["acc"])
        stats = metrics["stats"]
        assert (stats["n"], stats["delta_ci95"], stats["p_value"]) == (best["n"], best["delta_ci95"], best["p_value"])
        card = download("README.md").read_text()
        assert f"| Score with the library | {best['acc']:.3f}" in card and f"McNemar p = {best['p_value']:.3g}" in card
        assert json.loads(download("report/report.json").read_text()) == report

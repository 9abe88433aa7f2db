"""reasoning-gym through lm-eval: the `lm_eval` CLI with `--include_path eval_tasks --tasks ted_rg`
and the problems named in `--metadata` (what `ted eval --task rg:…` passes), against the simulator
(an OpenAI-compatible server; its replies end with `Answer: N`). Every verdict is checked against
reasoning-gym's own scorer, asked directly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ted.library import Library
from ted.tasks.rg import generate, lm_eval_metadata, parse_spec, read_answer
from tests.sim import Simulator
from tests.support import CHECKOUT, lm_eval_env

pytestmark = pytest.mark.integration

REPO = CHECKOUT
LM_EVAL = str(Path(sys.executable).parent / "lm_eval")
SPEC = "rg:leg_counting?split=test&n=3&seed=4"


def reasoning_gym_verdict(problem_meta: dict[str, Any], reply: str, gold: str) -> int:
    from reasoning_gym import create_dataset

    dataset = create_dataset("leg_counting", seed=problem_meta["rg_item_seed"], size=1)
    answer, _ = read_answer(reply, gold)
    return int(dataset.score_answer(answer, dataset[0]) == 1.0)


@pytest.fixture(scope="module")
def sim() -> Any:
    with Simulator(tokens_per_reply=20) as server:
        yield server


def test_lm_eval_cli_reads_the_problems_from_metadata(sim: Any, tmp_path: Path) -> None:
    lib = Library(name="rg-cli")
    lib.add("When animals are listed with counts, multiply each count by that animal's legs, then add.", step=1)
    path = lib.save(tmp_path / "library.json")
    spec = parse_spec(SPEC)
    metadata = {**lm_eval_metadata(spec), "library": str(path)}
    command = [
        LM_EVAL, "--model", "local-chat-completions",
        "--model_args", f"base_url={sim.base_url}/chat/completions,model=sim-student",
        "--include_path", str(REPO / "eval_tasks"), "--tasks", "ted_rg", "--apply_chat_template",
        "--metadata", json.dumps(metadata), "--log_samples", "--output_path", str(tmp_path / "out"),
    ]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, env=lm_eval_env(tmp_path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path_samples,) = (tmp_path / "out").rglob("samples_ted_rg_*.jsonl")
    samples = sorted((json.loads(line) for line in path_samples.read_text().splitlines()), key=lambda s: s["doc_id"])
    problems = generate(spec)
    assert [s["doc"]["id"] for s in samples] == [p.id for p in problems]
    for sample, problem in zip(samples, problems, strict=True):
        (prompt,) = sample["arguments"]["gen_args_0"]["arg_0"]
        system, user = json.loads(prompt)
        assert system == {"role": "system", "content": system["content"]} and lib.items[0].text in system["content"]
        assert user["content"].startswith(problem.question.strip()) and "Answer:" in user["content"]
        (reply,) = sample["filtered_resps"]
        assert sample["acc"] == reasoning_gym_verdict(problem.meta, reply, problem.answer)
        assert sample["no_answer"] == 0  # the simulator always ends with `Answer: N`
    (path_results,) = (tmp_path / "out").rglob("results_*.json")
    scores = json.loads(path_results.read_text())["results"]["ted_rg"]
    assert scores["acc,none"] == sum(s["acc"] for s in samples) / 3

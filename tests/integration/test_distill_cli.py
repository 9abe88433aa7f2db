"""`ted distill` end to end through the CLI against a real llama_cpp.server (bundled model)."""

import json
import subprocess
from pathlib import Path

import pytest

from ted.library import Library
from tests.support import run_ted

pytestmark = [pytest.mark.integration, pytest.mark.first]  # minutes of dependent work: handed out first (tests/conftest.py)




def ted(*args: str, cwd: Path | str | None = None) -> subprocess.CompletedProcess[str]:
    return run_ted(*args, cwd=cwd, timeout=600)  # distilling with the bundled model takes minutes


def test_distill_against_llama_server_writes_valid_library_within_budget(llama_server, tmp_path):
    data = tmp_path / "problems.jsonl"
    data.write_text(
        json.dumps({"id": "a", "question": "What is 7 + 5?", "answer": "12"}) + "\n"
        + json.dumps({"id": "b", "question": "What is 9 - 4?", "answer": "5"}) + "\n"
    )
    out = tmp_path / "lib" / "library.json"
    result = ted(
        "distill", "--data", str(data), "--student", llama_server.spec, "--teacher", llama_server.spec,
        "--out", str(out), "--epochs", "1", "--rollouts", "2", "--batch-size", "2",
        "--budget-tokens", "300", "--max-items", "3", "--max-tokens", "48", "--json-max-tokens", "160",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lib = Library.load(out)  # validates the schema
    assert lib.fits() and len(lib.items) <= 3
    assert lib.student.backend == "openai" and lib.student.model == llama_server.model
    # 2 problems x 2 rollouts; the server ignores n, so the backend issued each rollout itself
    assert lib.cost.calls["student"] == 4
    assert lib.cost.calls["teacher"] >= 6  # solve + structure + extract per problem
    assert lib.cost.roles["teacher"].completion_tokens > 0
    assert [p.epoch for p in lib.metrics.curve] == [1]
    assert not out.with_name(out.name + ".checkpoint.json").exists()

    shown = ted("show", str(out))
    assert shown.returncode == 0 and lib.name in shown.stdout
    block = ted("show", str(out), "--prompt")
    assert block.stdout == (lib.render() + "\n" if lib.items else "")
    assert json.loads(ted("show", str(out), "--json").stdout)["format"] == "ted-library/1"

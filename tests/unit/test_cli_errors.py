"""Bad input to the core commands: one clear line, non-zero exit, no traceback, nothing overwritten."""

import hashlib
import json
import subprocess
import sys

import pytest

from ted.library import Library
from tests.support import run_ted as ted


@pytest.fixture
def workspace(tmp_path):
    (tmp_path / "data.jsonl").write_text(json.dumps({"question": "What is 2 + 2?", "answer": "4"}) + "\n")
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "noanswer.jsonl").write_text(json.dumps({"question": "What is 2 + 2?"}) + "\n")
    lib = Library(name="existing")
    lib.add("Check the units of the answer before concluding.", 1)
    lib.save(tmp_path / "existing.json")
    (tmp_path / "bad.json").write_text('{"format": "ted-library/1", "items": [{"id": "E1"}]}')
    (tmp_path / "run.toml").write_text('epochs = 2\nrollouts = "many"\n')
    (tmp_path / "unknown.toml").write_text("[distill]\nbogus = 1\n")
    return tmp_path


BASE = ["distill", "--data", "data.jsonl", "--student", "local", "--teacher", "local"]

CASES = [
    ("missing data file", ["distill", "--data", "nope.jsonl", "--student", "local", "--teacher", "local", "--out", "o.json"], "nope.jsonl"),
    ("empty data file", ["distill", "--data", "empty.jsonl", "--student", "local", "--teacher", "local", "--out", "o.json"], "empty"),
    ("row without answer", ["distill", "--data", "noanswer.jsonl", "--student", "local", "--teacher", "local", "--out", "o.json"], "answer"),
    ("unknown student spec", [*BASE, "--student", "banana", "--out", "o.json"], "unknown model spec"),
    ("out exists", [*BASE, "--out", "existing.json"], "--force"),
    ("resume and force", [*BASE, "--out", "o.json", "--resume", "--force"], "contradict"),
    ("budget smaller than one item", [*BASE, "--out", "o.json", "--budget-tokens", "10", "--student", "openai:m@http://127.0.0.1:9/v1", "--teacher", "openai:m@http://127.0.0.1:9/v1"], "smaller than one experience"),
    ("bad compression", [*BASE, "--out", "o.json", "--compression", "magic"], "--compression"),
    ("bad field map", [*BASE, "--out", "o.json", "--field", "question"], "--field"),
    ("bad price", [*BASE, "--out", "o.json", "--price", "teacher=cheap"], "--price"),
    ("bad config value", [*BASE, "--out", "o.json", "--config", "run.toml"], "rollouts"),
    ("missing config", [*BASE, "--out", "o.json", "--config", "missing.toml"], "missing.toml"),
    ("unknown config key", [*BASE, "--out", "o.json", "--config", "unknown.toml"], "unknown option 'bogus'"),
    ("unreachable endpoint", [*BASE, "--student", "openai:m@http://127.0.0.1:9/v1", "--teacher", "openai:m@http://127.0.0.1:9/v1", "--out", "o.json", "--epochs", "1", "--max-retries", "1"], "127.0.0.1:9"),  # one retry: the backoff of six took 25 s; retrying is test_faults's
    ("show malformed library", ["show", "bad.json"], "items.0.text"),
    ("show missing library", ["show", "nothere.json"], "nothere.json"),
    ("unknown flag", ["show", "existing.json", "--bogus"], "No such option: --bogus"),
    ("extra argument", ["show", "existing.json", "extra"], "unexpected extra argument"),
    ("unknown command", ["distil"], "No such command"),
]


@pytest.mark.parametrize("name, args, needle", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_line(workspace, name, args, needle):
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in workspace.iterdir()}
    result = ted(*args, cwd=workspace)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip() and "llama" not in line]
    assert "Traceback" not in result.stderr
    assert len(lines) == 1, result.stderr
    assert needle in lines[0]
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in workspace.iterdir()}
    if "o.json.calls.jsonl" in after:  # a call that was made and failed stays on record (and nothing else is written)
        assert json.loads((workspace / "o.json.calls.jsonl").read_text().splitlines()[-1])["error"]
        del after["o.json.calls.jsonl"]
    assert after == before  # nothing written, nothing overwritten


def test_internal_error_is_one_line(workspace):
    """A bug (any exception that is not a TedError) still ends with one line and exit code 70."""
    code = (
        "import sys, ted.cli, ted.library\n"
        "def boom(*a, **k): raise KeyError('lost')\n"
        "ted.library.Library.load = boom\n"
        "sys.argv = ['ted', 'show', 'existing.json']\n"
        "ted.cli.main()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=workspace, timeout=120)
    assert result.returncode == 70
    assert result.stderr.strip() == "error: internal error: KeyError: 'lost' (rerun with TED_DEBUG=1 for the traceback)"
    debug = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=workspace, timeout=120, env={**__import__("os").environ, "TED_DEBUG": "1"})
    assert "Traceback" in debug.stderr and "KeyError" in debug.stderr


@pytest.mark.parametrize("args", [["--version"], ["-V"]])
def test_version(args):
    from ted import __version__

    result = ted(*args)
    assert result.returncode == 0 and result.stdout.strip() == f"ted {__version__}", result.stderr


@pytest.mark.parametrize("command", ["distill", "show", "chat", "push", "pull", "versions", "diff", "card", "eval", "space"])
def test_short_help_everywhere(command):
    result = ted(command, "-h")
    assert result.returncode == 0 and "Usage:" in result.stdout, result.stderr


@pytest.mark.integration  # a real llama.cpp decode
def test_doctor_reports_the_build_and_backends():
    result = ted("doctor")
    assert result.returncode == 0, result.stderr
    assert "llama.cpp  runs: decoded" in result.stdout and "GGML_NATIVE=OFF" in result.stdout
    assert "lm-eval tasks" in result.stdout

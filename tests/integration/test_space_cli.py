"""`ted space` as a user runs it: it serves the Space with the libraries it was given, and bad
settings stop it with one line."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from ted.library import Library
from tests.support import CHECKOUT, assert_one_line_error, environ, run_ted, start_ted, wait_for_gradio_config

pytestmark = pytest.mark.integration


def test_ted_space_serves_the_given_library(tmp_path: Path, free_port: int) -> None:
    lib = Library(name="cli-space", version="2.0.0")
    lib.add("Say which quantity the question asks for.", step=1)
    lib.save(tmp_path / "library.json")
    process = start_ted("space", "--port", str(free_port), "--library", str(tmp_path / "library.json"), env=environ(GRADIO_ANALYTICS_ENABLED="False", TED_SPACE_LIBRARIES=""))
    try:
        config = wait_for_gradio_config(process, free_port)
        dropdowns = [c["props"] for c in config["components"] if c.get("props", {}).get("elem_id") == "library"]
        assert len(dropdowns) == 1
        labels = [choice[0] for choice in dropdowns[0]["choices"]]
        assert "cli-space v2.0.0 · 1 experience (local)" in labels and labels[0] == "none: the plain student"
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.parametrize(
    ("args", "env", "phrase", "code"),
    [
        (["--library", "./no-such-library.json"], {}, "no-such-library.json: no such file", 1),
        (["--student", "bogus"], {}, "unknown model spec 'bogus'", 2),
        ([], {"TED_SPACE_MAX_IMAGES": "lots"}, "$TED_SPACE_MAX_IMAGES must be a whole number", 2),
    ],
)
def test_ted_space_refuses_bad_settings_in_one_line(args: list[str], env: dict[str, str], phrase: str, code: int, free_port: int) -> None:
    proc = run_ted("space", "--port", str(free_port), *args, env=environ(GRADIO_ANALYTICS_ENABLED="False", **env))
    assert_one_line_error(proc, phrase)
    assert proc.returncode == code


def _tree(root: Path) -> dict[str, int]:
    """Every file under the checkout (but .git, the venv and bytecode) with its modification time:
    `git status` alone misses what .gitignore hides, such as setuptools' build/ and *.egg-info."""
    state = {}
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [d for d in subfolders if d not in (".git", ".venv", "__pycache__")]
        state.update({os.path.relpath(os.path.join(folder, f), root): os.stat(os.path.join(folder, f)).st_mtime_ns for f in files})
    return state


def test_space_deploy_dry_run_writes_only_under_out_and_never_compiles_llama_cpp(tmp_path: Path) -> None:
    """The dry run leaves the source tree as it was (`git status` and the ignored files too); a
    `local` student's requirements take llama.cpp as a prebuilt wheel only; an `hf:` student's
    weights are preloaded at build time; the hardware names are huggingface_hub's."""
    env = environ("TED_STUDENT", "TED_SPACE_LIBRARIES", PYTHONDONTWRITEBYTECODE="1")
    status = lambda: subprocess.run(["git", "-C", str(CHECKOUT), "status", "--porcelain"], capture_output=True, text=True).stdout  # noqa: E731
    before, git_before = _tree(CHECKOUT), status()
    local = run_ted("space", "deploy", "alice/space", "--student", "local", "--dry-run", "--out", str(tmp_path / "local"), env=env)
    hf = run_ted("space", "deploy", "alice/space", "--student", "hf:org/tiny-vlm", "--dry-run", "--out", str(tmp_path / "hf"), env=env)
    assert local.returncode == 0 and hf.returncode == 0, local.stderr + hf.stderr
    assert _tree(CHECKOUT) == before and status() == git_before

    requirements = (tmp_path / "local" / "requirements.txt").read_text().splitlines()
    assert "--only-binary=llama-cpp-python" in requirements and any(line.startswith("llama-cpp-python") for line in requirements)
    front = yaml.safe_load((tmp_path / "hf" / "README.md").read_text().split("---\n")[1])
    assert front["preload_from_hub"] == ["org/tiny-vlm"] == front["models"]
    assert "llama-cpp-python" not in (tmp_path / "hf" / "requirements.txt").read_text()

    unknown = run_ted("space", "deploy", "alice/space", "--hardware", "h200", "--dry-run", "--out", str(tmp_path / "x"), env=env)
    assert_one_line_error(unknown, "unknown hardware 'h200'", "l40sx1")  # a name only huggingface_hub's list has
    assert unknown.returncode == 2 and not (tmp_path / "x").exists()

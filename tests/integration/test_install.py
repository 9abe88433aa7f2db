"""Installed like a user installs it: the wheel built from the checkout, in a fresh venv, run from
a folder outside the checkout. Every file ted reads at run time must come from inside the wheel.

The venv reuses the already-installed dependencies (a `.pth` line adds this environment's
site-packages *after* the venv's own, without running its `.pth` files, so the checkout's editable
install is not on the path), then the wheel goes in with `--no-deps`: seconds, not a second install.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.hub_server import HubServer, Token

from ted.library import Library
from tests.fixtures import benchmarks as fx
from tests.support import CHECKOUT

pytestmark = pytest.mark.integration

REPO = CHECKOUT
TOKEN = "hf_install_token"


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("install")
    wheels = root / "wheels"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(REPO)],
        capture_output=True, text=True, timeout=600, cwd=root,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = wheels.glob("ted_distill-*.whl")
    env_dir = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True, timeout=120)
    site = Path(subprocess.run([str(env_dir / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())  # fmt: skip
    (site / "_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(env_dir / "bin" / "python"), "install", "--no-deps", "--no-index", "--force-reinstall", str(wheel)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-3000:]
    # --force-reinstall: a checkout on PYTHONPATH shows pip its in-tree egg-info as "ted-distill 0.1.0
    # already satisfied", and the wheel was silently not installed.
    return env_dir


@pytest.fixture
def outside(tmp_path: Path, venv: Path) -> Iterator[dict[str, Any]]:
    """A working folder outside the checkout and an environment with only the venv's tools."""
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "PYTHON", "TED_", "VIRTUAL_ENV"))}
    env.update(PATH=f"{venv / 'bin'}:{env.get('PATH', '')}", HF_HOME=str(tmp_path / "hf"), NO_COLOR="1", COLUMNS="200")
    yield {"cwd": work, "env": env}


def run(outside: dict[str, Any], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, **outside)


def test_the_installed_package_is_the_wheel(venv: Path, outside: dict[str, Any]) -> None:
    done = run(outside, "python", "-c", "import ted, ted.cards; print(ted.__file__)")
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).is_relative_to(venv) and not Path(done.stdout.strip()).is_relative_to(REPO)
    version = run(outside, "ted", "--version")
    assert version.returncode == 0 and version.stdout.startswith("ted "), version.stderr


def test_show_card_push_pull_from_the_wheel(outside: dict[str, Any], tmp_path: Path) -> None:
    lib = Library(name="installed")
    lib.add("When a figure has symmetry, use it to halve the casework.", step=1)
    path = lib.save(outside["cwd"] / "library.json")
    shown = run(outside, "ted", "show", str(path), "--prompt")
    assert shown.returncode == 0 and lib.render() in shown.stdout, shown.stderr
    card = run(outside, "ted", "card", str(path), "--out", "card")
    assert card.returncode == 0, card.stderr
    assert "symmetry" in (outside["cwd"] / "card" / "README.md").read_text()
    with HubServer(tmp_path / "hub", {TOKEN: Token("alice", "write")}) as hub:
        env = {**outside["env"], "HF_ENDPOINT": hub.url, "HF_TOKEN": TOKEN, "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1"}
        pushed = run({**outside, "env": env}, "ted", "push", str(path), "alice/installed", "--version", "v1")
        assert pushed.returncode == 0, pushed.stderr
        pulled = run({**outside, "env": env}, "ted", "pull", "alice/installed@v1", "--out", "pulled")
        assert pulled.returncode == 0, pulled.stderr
    assert Library.load(outside["cwd"] / "pulled" / "library.json").items == lib.items


def test_lm_eval_runs_the_installed_tasks(outside: dict[str, Any], llama_server: Any, tmp_path: Path) -> None:
    where = run(outside, "ted", "tasks-path")
    assert where.returncode == 0, where.stderr
    tasks = Path(where.stdout.strip())
    assert not tasks.is_relative_to(REPO) and (tasks / "ted_aime.yaml").is_file()
    data = fx.write_aime25(tmp_path / "aime")
    env = {**outside["env"], "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "LM_HARNESS_CACHE_PATH": str(tmp_path / "cache")}
    done = run(
        {**outside, "env": env}, "python", "-m", "lm_eval", "--model", "local-chat-completions",
        "--model_args", f"base_url={llama_server.base_url}/chat/completions,model={llama_server.model}",
        "--include_path", str(tasks), "--tasks", "ted_aime", "--apply_chat_template", "--limit", "2",
        "--metadata", json.dumps({"data_files": str(data)}), "--gen_kwargs", "max_gen_toks=4", "--output_path", "results",
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (results,) = (outside["cwd"] / "results").rglob("results_*.json")
    assert "ted_aime" in json.loads(results.read_text())["results"]

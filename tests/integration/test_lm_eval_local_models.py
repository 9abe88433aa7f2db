"""`lm_eval` (its CLI) with the ted groups on local models: `hf` and `hf-multimodal` with the tiny
random models of test_hf_backend (built here, no Hub), on fixture copies of the benchmarks.

Random weights say nothing about accuracy; these runs check that every group runs on every model
type that can run here, and what each model is sent: the library as the system text, into the
first user turn when the chat template has no system role, and a blank line before the question
when there is no chat template at all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ted.library import Library
from tests.fixtures import benchmarks as fx
from tests.integration.test_hf_backend import TEXT_TEMPLATE, build_text_model, build_vision_model
from tests.support import CHECKOUT

pytestmark = pytest.mark.integration

REPO = CHECKOUT
LM_EVAL = str(Path(sys.executable).parent / "lm_eval")
NO_SYSTEM_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "<{{ m.role }}> {{ m.content }}{{ '\\n' }}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}"
)
WARNING = "the chat template has no system role"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """TED_DATA_DIR: one local copy per benchmark, named as the tasks look for them."""
    root = tmp_path_factory.mktemp("local_models_data")
    fx.write_mathvision(root / "mathvision")
    (root / "visualpuzzles.parquet").symlink_to(fx.write_visualpuzzles(root / "vp"))
    (root / "aime.jsonl").symlink_to(fx.write_aime25(root / "a25"))
    (root / "aime24.parquet").symlink_to(fx.write_aime24(root / "a24"))
    return root


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    lib = Library(name="local-models")
    lib.add("Write the final answer in a box.", step=1)
    return lib.save(tmp_path_factory.mktemp("lib") / "library.json"), lib.render()


def lm_eval(out: Path, model: str, model_args: str, tasks: str, data_dir: Path, library: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [
        LM_EVAL, "--model", model, "--model_args", model_args, "--device", "cpu",
        "--include_path", str(REPO / "eval_tasks"), "--tasks", tasks,
        "--metadata", json.dumps({"library": str(library)}), "--gen_kwargs", "max_gen_toks=3",
        "--limit", "1", "--log_samples", "--output_path", str(out), *extra,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "TED_LIBRARY"}
    env.update(TED_DATA_DIR=str(data_dir), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", LM_HARNESS_CACHE_PATH=str(out / "cache"))
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=out)


def prompts(out: Path, task: str) -> list[str]:
    (path,) = out.rglob(f"samples_{task}_*.jsonl")
    return [json.loads(line)["arguments"]["gen_args_0"]["arg_0"] for line in path.read_text().splitlines()]


def question(task: str) -> str:
    return {"ted_aime25": f"Question: {fx.AIME25_ROWS[0]['problem']}\nAnswer:", "ted_aime24": f"Question: {fx.AIME24_ROWS[0]['Problem']}\nAnswer:"}[task]


@pytest.mark.parametrize("template", ["system-role", "no-system-role", "none"])
def test_text_group_on_hf(tmp_path: Path, data_dir: Path, library: tuple[Path, str], template: str) -> None:
    path, block = library
    chat_template = {"system-role": TEXT_TEMPLATE, "no-system-role": NO_SYSTEM_TEMPLATE, "none": None}[template]
    model = build_text_model(tmp_path / "model", chat_template)
    extra = () if chat_template is None else ("--apply_chat_template",)
    proc = lm_eval(tmp_path, "hf", f"pretrained={model},revision=main,dtype=float32", "ted_text", data_dir, path, *extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {"acc,none", "acc_lenient,none"} <= set(json.loads(next(tmp_path.rglob("results_*.json")).read_text())["results"]["ted_text"])
    for task in ("ted_aime25", "ted_aime24"):
        (prompt,) = prompts(tmp_path, task)
        if template == "system-role":
            assert f"<system> {block}\n\n\n<user> {question(task)}\n" in prompt
        elif template == "no-system-role":  # the library leads the first user turn instead of being dropped
            assert f"<user> {block}\n\n{question(task)}\n" in prompt and "<system>" not in prompt
        else:  # no chat template: the system text and the question, a blank line apart
            assert prompt == f"{block}\n\n{question(task)}"
    assert proc.stderr.count(WARNING) == (1 if template == "no-system-role" else 0)


def test_vision_group_on_hf_multimodal(tmp_path: Path, data_dir: Path, library: tuple[Path, str]) -> None:
    path, block = library
    model = build_vision_model(tmp_path / "model")
    proc = lm_eval(tmp_path, "hf-multimodal", f"pretrained={model},dtype=float32", "ted_vision", data_dir, path, "--apply_chat_template")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "acc,none" in json.loads(next(tmp_path.rglob("results_*.json")).read_text())["results"]["ted_vision"]
    for task in ("ted_mathvision", "ted_visualpuzzles"):
        (prompt,) = prompts(tmp_path, task)
        assert prompt.startswith(f"<bos>system: {block}\n\n") and prompt.count("<image>") == 1
        assert "user: <image>\nPlease solve" in prompt or "user: <image>\nQuestion: " in prompt  # the image, then the upstream prompt

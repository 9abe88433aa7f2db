"""`lm_eval` (its CLI, as a subprocess) with `--include_path eval_tasks` against a real
`llama_cpp.server` serving the bundled model, on fixture copies of the benchmarks.

The logged prompts must hold the rendered library block exactly when a library is given, also
when lm-eval's request cache (`--cache_requests true`, keyed by task name only) saw the other run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ted.library import Library
from ted.tasks import LM_EVAL_TASKS
from tests.fixtures import benchmarks as fx
from tests.support import CHECKOUT

pytestmark = pytest.mark.integration

REPO = CHECKOUT
LM_EVAL = str(Path(sys.executable).parent / "lm_eval")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("lm_eval_data")
    return {
        "aime": fx.write_aime25(root / "aime"),
        "aime24": fx.write_aime24(root / "aime24"),
        "visualpuzzles": fx.write_visualpuzzles(root / "visualpuzzles", corrupt={1}),
        "mathvision": fx.write_mathvision(root / "mathvision"),
    }


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    lib = Library(name="lm-eval-fixture")
    lib.add("Write the final answer on its own line.", step=1)
    lib.add("Check small cases before generalising.", step=1)
    path = lib.save(tmp_path_factory.mktemp("library") / "library.json")
    return path, lib.render()


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lm_eval_cache")


def lm_eval(
    server: Any, out: Path, tasks: str, metadata: dict[str, Any], cache_dir: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    command = [
        LM_EVAL, "--model", "local-chat-completions",
        "--model_args", f"base_url={server.base_url}/chat/completions,model={server.model}",
        "--include_path", str(REPO / "eval_tasks"), "--tasks", tasks, "--apply_chat_template",
        "--metadata", json.dumps(metadata), "--gen_kwargs", "max_gen_toks=4",
        "--limit", "2", "--log_samples", "--output_path", str(out), *extra,
    ]  # fmt: skip
    full_env = {k: v for k, v in os.environ.items() if k not in ("TED_LIBRARY", "TED_DATA_DIR")}
    full_env.update(LM_HARNESS_CACHE_PATH=str(cache_dir), HF_DATASETS_OFFLINE="1", **(env or {"HF_HUB_OFFLINE": "1"}))
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=full_env, cwd=out.parent)


def samples(out: Path, task: str) -> list[dict[str, Any]]:
    (path,) = out.rglob(f"samples_{task}_*.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


def results(out: Path) -> dict[str, Any]:
    (path,) = out.rglob("results_*.json")
    return json.loads(path.read_text())["results"]


def messages(sample: dict[str, Any]) -> list[dict[str, Any]]:
    """The chat sent for a sample (lm-eval logs its JSON chat string as a one-element tuple)."""
    (prompt,) = sample["arguments"]["gen_args_0"]["arg_0"]
    return json.loads(prompt)


def test_aime_prompts_hold_the_library_exactly_when_given(llama_server: Any, data: dict, library: tuple[Path, str], cache_dir: Path, tmp_path: Path) -> None:
    path, block = library
    runs = {}
    for label, metadata in (("baseline", {}), ("library", {"library": str(path)})):
        out = tmp_path / label
        out.mkdir()
        proc = lm_eval(llama_server, out, "ted_aime", {**metadata, "data_files": str(data["aime"])}, cache_dir, "--cache_requests", "true")
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs[label] = out
    base, lib = samples(runs["baseline"], "ted_aime"), samples(runs["library"], "ted_aime")
    assert len(base) == len(lib) == 2
    for sample in base:  # lm-eval's own aime25 prompt, and no system message: the upstream protocol
        assert messages(sample) == [{"role": "user", "content": f"Question: {fx.AIME25_ROWS[sample['doc_id']]['problem']}\nAnswer:"}]
    for sample, plain in zip(lib, base, strict=True):  # the library is the only difference
        chat = messages(sample)
        assert chat == [{"role": "system", "content": block + "\n\n"}, messages(plain)[0]]
    scores = results(runs["library"])["ted_aime"]
    assert scores["acc,none"] == sum(s["acc"] for s in lib) / 2
    assert scores["acc_lenient,none"] == sum(s["acc_lenient"] for s in lib) / 2
    assert scores["no_answer,none"] == sum(s["no_answer"] for s in lib)


def test_visualpuzzles_sends_images_and_counts_undecodable_ones(llama_server: Any, data: dict, library: tuple[Path, str], cache_dir: Path, tmp_path: Path) -> None:
    path, block = library
    proc = lm_eval(llama_server, tmp_path, "ted_visualpuzzles", {"library": str(path), "data_files": str(data["visualpuzzles"])}, cache_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    good, broken = samples(tmp_path, "ted_visualpuzzles")
    assert len(good["arguments"]["gen_args_0"]["arg_2"]["visual"]) == 1
    assert broken["arguments"]["gen_args_0"]["arg_2"]["visual"] == []
    chat = messages(good)
    assert chat[0] == {"role": "system", "content": block + "\n\n"}
    assert chat[1]["content"].startswith("Question: ") and "<image>" not in chat[1]["content"]  # no placeholder text for an API
    assert (good["image_errors"], broken["image_errors"], broken["acc"]) == (0, 1, 0)
    scores = results(tmp_path)["ted_visualpuzzles"]
    assert scores["image_errors,none"] == 1
    assert {"acc_algorithmic,none", "acc_spatial,none"} <= set(scores)


def test_hub_reference_resolves_through_the_hub_client(llama_server: Any, data: dict, library: tuple[Path, str], cache_dir: Path, tmp_path: Path) -> None:
    """`--metadata '{"library": "org/name@v1"}'`: the real huggingface_hub client, a local Hub-compatible server."""
    from tests.integration.hub_server import HubServer, Token

    from ted.hub import push_library

    path, block = library
    with HubServer(tmp_path / "hub", {"hf_w": Token("alice", "write")}) as hub:
        push_library(path, "alice/eval-lib", version="v1", token="hf_w", endpoint=hub.url)
        env = {"HF_ENDPOINT": hub.url, "HF_TOKEN": "hf_w", "HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_CACHE": str(tmp_path / "hf-cache")}
        out = tmp_path / "out"
        out.mkdir()
        proc = lm_eval(llama_server, out, "ted_aime", {"library": "alice/eval-lib@v1", "data_files": str(data["aime"])}, cache_dir, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert all(messages(sample)[0]["content"] == block + "\n\n" for sample in samples(out, "ted_aime"))
        missing = lm_eval(llama_server, tmp_path, "ted_aime", {"library": "alice/eval-lib@v9", "data_files": str(data["aime"])}, cache_dir, env=env)
    assert missing.returncode != 0 and "v9" in missing.stderr


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"library": "missing/library.json"}, "no such file or folder"),
        ({"data_files": "WRONG_SCHEMA"}, "missing field 'answer'"),
    ],
)
def test_bad_input_fails_with_the_reason(llama_server: Any, data: dict, cache_dir: Path, tmp_path: Path, metadata: dict, message: str) -> None:
    if metadata.get("data_files") == "WRONG_SCHEMA":
        bad = tmp_path / "aime.jsonl"
        bad.write_text(json.dumps({"problem": "1+1?", "solution": "2"}) + "\n")
        metadata = {"data_files": str(bad)}
    else:
        metadata = {**metadata, "data_files": str(data["aime"])}
    proc = lm_eval(llama_server, tmp_path, "ted_aime", metadata, cache_dir)
    assert proc.returncode != 0
    assert message in proc.stderr


@pytest.mark.parametrize(("group", "tasks"), [("ted_vision", ("ted_mathvision", "ted_visualpuzzles")), ("ted_text", ("ted_aime25", "ted_aime24"))])
def test_groups_run_on_a_chat_api(llama_server: Any, data: dict, library: tuple[Path, str], cache_dir: Path, tmp_path: Path, group: str, tasks: tuple[str, str]) -> None:
    """The old group `ted` mixed image and text tasks and crashed here; each group now runs whole."""
    path, block = library
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    for task in tasks:  # TED_DATA_DIR/<ted task name>: one local copy per benchmark
        name = LM_EVAL_TASKS[task][0]
        (data_dir / (name + data[name].suffix)).symlink_to(data[name])
    proc = lm_eval(llama_server, tmp_path, group, {"library": str(path)}, cache_dir, "--limit", "1", env={"HF_HUB_OFFLINE": "1", "TED_DATA_DIR": str(data_dir)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    scores = results(tmp_path)
    assert {"acc,none", "acc_lenient,none"} <= set(scores[group])
    for task in tasks:
        logged = samples(tmp_path, task)
        assert len(logged) == 1 and all(messages(s)[0]["content"] == block + "\n\n" for s in logged)

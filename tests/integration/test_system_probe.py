"""The library must reach the model: a server whose chat template drops system messages is caught.

`llama_cpp.server --chat_format gemma` (the obvious way to serve the bundled model) drops system
messages: distill, chat and eval against it stop with one line naming the cause and the fixes, before
any paid call (the Space at start-up). `--system-in-user` folds the library into the first user turn, and then it does reach
the model. The shipped GEMMA_CHAT_CONFIG server (the session's `llama_server`) passes the probe.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ted.library import Library
from tests.support.llama import LlamaServer, serve_llama
from tests.fixtures import benchmarks as fx
from tests.reliability.common import REPO, assert_one_line_error, clean_env, ted
from tests.reliability.recording_proxy import RecordingProxy, message_texts
from tests.sim import write_problems

pytestmark = pytest.mark.integration

LESSON = "Write the final answer on its own line."


@pytest.fixture(scope="module")
def gemma_format(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    with serve_llama(tmp_path_factory.mktemp("gemma_format"), "--chat_format", "gemma") as server:
        yield server


@pytest.fixture
def library(tmp_path: Path) -> Path:
    lib = Library(name="probe")
    lib.add(LESSON, 1)
    return lib.save(tmp_path / "lib" / "library.json")


def chat(spec: str, library: Path, cwd: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return ted("chat", "--student", spec, "--library", str(library), "--max-tokens", "4", *extra, input="What is 2+2?\n", cwd=cwd, timeout=180)


def test_a_server_that_drops_system_messages_stops_every_command(gemma_format: LlamaServer, library: Path, tmp_path: Path) -> None:
    phrases = ("same prompt_tokens whatever the length of the system message", "GEMMA_CHAT_CONFIG", "--system-in-user")
    lines = [assert_one_line_error(chat(gemma_format.spec, library, tmp_path), *phrases)]
    data = write_problems(tmp_path / "problems.jsonl", 2)
    out = tmp_path / "out" / "library.json"
    distilled = ted("distill", "--data", str(data), "--student", gemma_format.spec, "--teacher", gemma_format.spec, "--out", str(out),
                    "--epochs", "1", "--rollouts", "1", cwd=tmp_path, timeout=180)  # fmt: skip
    lines.append(assert_one_line_error(distilled, *phrases))
    assert not out.exists() and not out.with_name(out.name + ".checkpoint.json").exists()
    evaluated = ted("eval", "--task", "ted_aime", "--library", str(library), "--data-files", str(fx.write_aime25(tmp_path / "aime")), "--limit", "1",
                    "--model_args", f"base_url={gemma_format.base_url}/chat/completions,model={gemma_format.model}", cwd=tmp_path, timeout=300)  # fmt: skip
    lines.append(assert_one_line_error(evaluated, *phrases))
    space = subprocess.run([sys.executable, str(REPO / "space" / "app.py")], env=clean_env({"TED_STUDENT": gemma_format.spec}),
                           capture_output=True, text=True, timeout=180)  # fmt: skip
    last = space.stderr.strip().splitlines()[-1]  # the Space logs its requests at INFO before the line
    assert space.returncode != 0 and "Traceback" not in space.stderr and last.startswith("error: "), space.stderr[-2000:]
    assert "same prompt_tokens" in last and "set TED_SYSTEM_IN_USER=1" in last
    print("\nsystem probe:", json.dumps(lines[0][:160]))


def test_system_in_user_folds_the_library_into_the_first_user_turn(gemma_format: LlamaServer, library: Path, tmp_path: Path) -> None:
    with RecordingProxy(gemma_format.base_url) as proxy:
        folded = chat(f"openai:{gemma_format.model}@{proxy.base_url}", library, tmp_path, "--system-in-user")
    assert folded.returncode == 0, folded.stderr[-2000:]
    (sent,) = [body for body in proxy.bodies if body.get("stream")]
    assert [m["role"] for m in sent["messages"]] == ["user"]
    assert LESSON in message_texts(sent)[0] and message_texts(sent)[0].rstrip().endswith("What is 2+2?")


def test_the_shipped_gemma_config_keeps_the_system_prompt(llama_server: LlamaServer, library: Path, tmp_path: Path) -> None:
    kept = chat(llama_server.spec, library, tmp_path)
    assert kept.returncode == 0 and "error" not in kept.stderr, kept.stderr[-2000:]

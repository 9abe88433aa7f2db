"""The llama.cpp build runs on the machines users have: portable flags, a real decode, a probe that catches crashes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ted.errors import ModelError
from ted.models import native
from tests.support.llama import assert_portable
from tests.support import CHECKOUT

pytestmark = pytest.mark.integration  # the real llama.cpp build


def _child(code: str) -> subprocess.CompletedProcess[str]:
    # In a child process: if the build used an instruction this CPU cannot run, the child dies, not the suite.
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_build_flags_in_force_are_portable():
    done = _child("import llama_cpp; print(llama_cpp.llama_print_system_info().decode())")
    assert done.returncode == 0, done.stderr
    assert_portable(done.stdout)


def test_bundled_model_decodes_in_process():
    code = (
        "import asyncio, os\n"
        "os.environ['TED_LOCAL_ENGINE'] = 'process'\n"
        "from ted.models import load_model\n"
        "from ted.models.base import Message, SamplingParams\n"
        "model = load_model('local:tiny')\n"
        "result = asyncio.run(model.chat([Message(role='user', text='Count: 1, 2, 3,')], SamplingParams(max_tokens=4, temperature=0)))\n"
        "print(result.usage.completion_tokens, repr(result.texts[0]))\n"
    )
    done = _child(code)
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
    assert int(done.stdout.split()[0]) >= 1


def test_probe_turns_a_crash_into_one_line(monkeypatch, tmp_path):
    monkeypatch.setattr(native, "_PROBE", "import os, signal; os.kill(os.getpid(), signal.SIGILL)")
    ran, what = native.probe("unused.gguf")
    assert not ran and "SIGILL" in what and "instruction" in what
    with pytest.raises(ModelError) as err:
        native.ensure_runs("unused.gguf", tmp_path)
    assert "CMAKE_ARGS=" in str(err.value) and "GGML_AMX_INT8=OFF" in str(err.value) and "\n" not in str(err.value)
    assert not list(tmp_path.rglob("*.ok"))  # a failed probe is not remembered


def test_probe_runs_once_per_build(tmp_path):
    from ted.models.local import model_path

    native.ensure_runs(model_path("local:tiny"), tmp_path)
    markers = list(tmp_path.rglob("*.ok"))
    assert len(markers) == 1 and "decoded" in markers[0].read_text()
    # The marker stands for this build on this CPU: a second call does not probe again.
    calls = []
    original = native.probe
    native.probe = lambda *a, **k: calls.append(a) or original(*a, **k)
    try:
        native.ensure_runs(model_path("local:tiny"), tmp_path)
    finally:
        native.probe = original
    assert calls == []


def test_install_docs_give_users_the_same_flags():
    install = (CHECKOUT / "docs" / "install.md").read_text()
    assert f'CMAKE_ARGS="{native.portable_cmake_args("x86_64")}"' in install


@pytest.mark.parametrize(
    "module, model",
    [("ted.distill.extract", "ExtractionOps"), ("ted.distill.extract", "ExtractionOpsDue"), ("ted.distill.structure", "Chains"), ("ted.distill.compress", "CompressionOps")],
)
def test_every_reply_schema_compiles_to_a_llama_cpp_grammar(module, model):
    """llama.cpp (in process and llama_cpp.server) turns a reply schema into a grammar; one it cannot
    parse crashes the process (a 2,000-character maxLength did). Each schema in its own child."""
    code = (
        "import importlib\n"
        "from llama_cpp import Llama\n"
        "from ted.models.base import schema_of\n"
        "from ted.models.local import model_path\n"
        f"schema = schema_of(getattr(importlib.import_module({module!r}), {model!r}))\n"
        "llm = Llama(model_path=model_path('local:tiny'), n_ctx=256, n_threads=1, verbose=False)\n"
        "reply = llm.create_chat_completion(messages=[{'role': 'user', 'content': 'JSON:'}], max_tokens=4,\n"
        "                                   response_format={'type': 'json_object', 'schema': schema})\n"
        "print('ok', reply['choices'][0]['message']['content'] is not None)\n"
    )
    done = _child(code)
    assert done.returncode == 0 and "ok True" in done.stdout, f"exit {done.returncode}: {done.stderr[-1500:]}"

"""The local-model registry: parts located as data, the assembled file checked before anything loads it."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from ted.errors import ModelError
from ted.models import local, parse_spec
from ted.models.local import LocalModel, Part
from tests.support import CHECKOUT

ROOT = CHECKOUT


def _fake_dist(site: Path, dist: str, version: str, file: str, data: bytes) -> None:
    """A minimal installed distribution: its dist-info and one data file (what pip leaves behind)."""
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (site / file).parent.mkdir(parents=True, exist_ok=True)
    (site / file).write_bytes(data)


def _fake_model(site: Path, chunks: list[bytes], *, sha256: str | None = None) -> LocalModel:
    parts = []
    for n, chunk in enumerate(chunks, 1):
        part = Part(f"ted-fake-part{n}", "0.1.0", f"ted_fake_part{n}/data/part{n:02d}.bin")
        _fake_dist(site, part.dist, part.version, part.file, chunk)
        parts.append(part)
    whole = b"".join(chunks)
    return LocalModel("local:fake", "fake-model", "a test model", tuple(parts), len(whole), sha256 or hashlib.sha256(whole).hexdigest(), True)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("TED_CACHE", str(tmp_path / "cache"))
    return folder


def _register(monkeypatch: pytest.MonkeyPatch, model: LocalModel) -> None:
    monkeypatch.setitem(local.MODELS, model.spec, model)


def test_parts_are_assembled_once_and_checked(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _fake_model(site, [b"GGUF" + b"a" * 100, b"b" * 50, b"c" * 7])
    _register(monkeypatch, model)
    path = Path(local.model_path("local:fake"))
    assert path.read_bytes() == b"GGUF" + b"a" * 100 + b"b" * 50 + b"c" * 7
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary file left
    stamp = path.stat().st_mtime_ns
    assert local.model_path("local:fake") == str(path) and path.stat().st_mtime_ns == stamp
    assert "sha256 ok" in local.state(model)


def test_wrong_hash_is_one_line_and_nothing_is_left_to_load(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _fake_model(site, [b"x" * 10, b"y" * 10], sha256="0" * 64)
    _register(monkeypatch, model)
    with pytest.raises(ModelError) as err:
        local.model_path("local:fake")
    message = str(err.value)
    assert "\n" not in message and "sha256" in message and "pip install --force-reinstall 'ted-fake-part1==0.1.0'" in message
    assert not local.target_path(model).exists()
    assert not list(local.target_path(model).parent.glob("*"))  # the temp file is gone too


@pytest.mark.parametrize("damage", ["uninstalled", "other version", "file gone"])
def test_a_missing_part_is_one_line_naming_the_fix(site: Path, monkeypatch: pytest.MonkeyPatch, damage: str) -> None:
    model = _fake_model(site, [b"x" * 10, b"y" * 10])
    _register(monkeypatch, model)
    info = site / "ted_fake_part2-0.1.0.dist-info"
    if damage == "uninstalled":
        for file in info.iterdir():
            file.unlink()
        info.rmdir()
    elif damage == "other version":
        info.rename(site / "ted_fake_part2-0.2.0.dist-info")
        (site / "ted_fake_part2-0.2.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: ted-fake-part2\nVersion: 0.2.0\n")
    else:
        (site / model.parts[1].file).unlink()
    with pytest.raises(ModelError, match=r"ted-fake-part2.*pip install (--force-reinstall )?'ted-fake-part2==0\.1\.0'") as err:
        local.model_path("local:fake")
    assert "\n" not in str(err.value)
    assert not local.target_path(model).exists()
    assert "ted-fake-part2" in local.state(model) and "not assembled" in local.state(model)


def test_the_cli_says_one_line_and_exits_non_zero(site: Path, tmp_path: Path) -> None:
    """`ted chat --student local:fake` with parts that hash wrong: one `error:` line, non-zero exit, nothing loaded."""
    _fake_model(site, [b"x" * 10], sha256="0" * 64)
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(site)!r})\n"
        "from ted.models import local\n"
        "from ted.models.local import LocalModel, Part\n"
        "local.MODELS['local:fake'] = LocalModel('local:fake', 'fake-model', 'x', (Part('ted-fake-part1', '0.1.0', 'ted_fake_part1/data/part01.bin'),), 10, '0' * 64, True)\n"
        "from ted.cli import main\n"
        "sys.argv = ['ted', 'chat', '--student', 'local:fake']\n"
        "main()\n"
    )
    env = {**os.environ, "TED_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120, env=env, stdin=subprocess.DEVNULL)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode != 0, done.stderr
    assert len(lines) == 1 and lines[0].startswith("error: local:fake:") and "sha256" in lines[0], done.stderr
    assert not (tmp_path / "cache" / "models" / "fake-model.gguf").exists()


def test_specs_name_the_registry() -> None:
    assert parse_spec("local") == ("local", "qwen2.5-coder-0.5b-instruct-q4_k_m", None)
    assert parse_spec("local:teacher")[1] == "qwen2.5-coder-1.5b-instruct-q4_k_m"
    assert parse_spec("local:tiny")[1] == "gemma-3-270m-q4_k_m"
    with pytest.raises(ModelError, match="local:teacher"):
        parse_spec("local:huge")


def test_the_local_extra_pins_exactly_the_registered_parts() -> None:
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["local"]
    pinned = [line for line in extra if "==" in line and "part" in line]
    assert pinned == local.requirements()
    assert all(line.count("==") == 1 for line in pinned)


@pytest.mark.parametrize(
    ("reply", "cached"),
    [
        ({"usage": {"prompt_tokens": 900, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 850}}}, 850),  # OpenAI, vLLM, llama-server
        ({"usage": {"prompt_tokens": 900, "completion_tokens": 5}, "timings": {"cache_n": 700, "prompt_n": 200}}, 700),  # llama-server's own timings
        ({"usage": {"prompt_tokens": 900, "completion_tokens": 5}, "timings": {"cache_n": "lots"}}, None),
        ({"usage": {"prompt_tokens": 900, "completion_tokens": 5}}, None),
    ],
)
def test_prompt_tokens_served_from_the_cache_are_read_from_the_reply(reply: dict, cached: int | None) -> None:
    from ted.models.openai_wire import read_completion

    _, usage = read_completion({"choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}], **reply}, 1)
    assert usage.cached_prompt_tokens == cached and usage.prompt_tokens == 900

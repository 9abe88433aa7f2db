"""The Python door: `ted.distill(...)` as docs/python-api.md shows it, run against scripted models."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import ted
import ted.distill.api as api
from ted.errors import ConfigError
from ted.library import Library
from ted.tasks import Problem
from tests.scripted import ScriptedModel
from tests.support import CHECKOUT


def example(name: str = "python-api.md") -> str:
    return re.findall(r"```python\n(.*?)```", (CHECKOUT / "docs" / name).read_text(encoding="utf-8"), re.S)[0]


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every model spec opens a scripted model; the specs asked for are recorded."""
    opened: list[str] = []

    def load_model(spec: str, **_: object) -> ScriptedModel:
        opened.append(spec)
        return ScriptedModel(spec)

    monkeypatch.setattr(api, "load_model", load_model)
    return opened


def test_the_documented_example_distills_and_saves_a_library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scripted: list[str]) -> None:
    monkeypatch.chdir(tmp_path)
    scope: dict[str, object] = {}
    exec(compile(example(), "docs/python-api.md", "exec"), scope)
    library = scope["library"]
    assert isinstance(library, Library) and library.items
    assert Library.load(tmp_path / "out/api-demo/library.json").to_json() == library.to_json()
    assert scripted == ["local"]  # the same spec for both roles: one model, one server
    assert library.source.samples == 4 and library.config["epochs"] == 1


def test_the_package_is_the_function_and_model_objects_stay_open(tmp_path: Path) -> None:
    closed: list[str] = []

    class Watched(ScriptedModel):
        async def aclose(self) -> None:
            closed.append(self.name)

    problems = [Problem(id=f"p{i}", question=f"Compute {i} + 1.", answer=str(i + 1)) for i in range(3)]
    library = ted.distill(problems, student=Watched("s"), teacher=Watched("t"), out=tmp_path, epochs=1, rollouts=2, batch_size=3)
    assert (tmp_path / "library.json").is_file() and library.student.model == "s" and library.teacher.model == "t"
    assert closed == []
    with pytest.raises(ConfigError, match="exists; use --force"):
        ted.distill(problems, student=Watched("s"), teacher=Watched("t"), out=tmp_path, epochs=1)

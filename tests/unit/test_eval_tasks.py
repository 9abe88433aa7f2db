"""The lm-eval task folder as a user meets it: every task documented with its citation, the AIME
2025 task under an unambiguous name (the old one an alias with the same documents), and no more
stop strings than lm-eval sends."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from ted.evaluate import eval_tasks_dir
from ted.lm_eval_docs import lm_eval_docs
from ted.tasks import LM_EVAL_TASKS
from ted.tasks.registry import LM_TASK_ALIASES
from tests.fixtures import benchmarks as fx

FOLDER = eval_tasks_dir()
MAX_STOP_STRINGS = 4  # lm-eval's chat-completions models send `stop[:4]`


class _Loader(yaml.SafeLoader):
    """YAML with lm-eval's `!function` tags read as plain strings."""


_Loader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))


def _config(name: str) -> dict:
    """A task's YAML with its `include:` chain resolved, as lm-eval merges it (the file's keys win)."""
    data = yaml.load((FOLDER / name).read_text(encoding="utf-8"), Loader=_Loader)
    base = _config(data.pop("include")) if "include" in data else {}
    return {**base, **data}


@pytest.mark.parametrize("name", sorted(LM_EVAL_TASKS))
def test_each_task_sends_at_most_the_stop_strings_lm_eval_sends(name: str) -> None:
    until = _config(f"{name}.yaml")["generation_kwargs"]["until"]
    assert 0 < len(until) <= MAX_STOP_STRINGS, until


def test_the_readme_names_every_task_and_cites_every_benchmark() -> None:
    readme = (FOLDER / "README.md").read_text(encoding="utf-8")
    for name in LM_EVAL_TASKS:
        assert f"| `{name}` |" in readme, name
    for key in ("ted2026", "wang2024mathvision", "song2025visualpuzzles", "aime_2025", "aime_2024"):
        assert re.search(rf"@\w+\{{{key},", readme), key


def test_the_old_aime_name_is_an_alias_with_the_same_documents(tmp_path: Path) -> None:
    assert LM_TASK_ALIASES["ted_aime"] == "ted_aime25" and LM_EVAL_TASKS["ted_aime"] == LM_EVAL_TASKS["ted_aime25"]
    assert _config("ted_aime.yaml")["task"] == "ted_aime" and _config("ted_aime25.yaml")["task"] == "ted_aime25"
    data = str(fx.write_aime25(tmp_path / "aime"))
    old, new = (lm_eval_docs(name, library="", data_files=data)["test"] for name in ("ted_aime", "ted_aime25"))
    assert old.to_list() == new.to_list() and len(new) > 0

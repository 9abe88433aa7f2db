"""The lm-eval task folder as a user meets it: every task documented with its citation, the AIME
2025 task under an unambiguous name (the old one an alias with the same documents), and no more
stop strings than lm-eval sends."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from ted.evaluate import eval_tasks_dir
from ted.library import Library
from ted.lm_eval_docs import lm_eval_docs, merge_system_into_user
from ted.models.base import Message, fold_system
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


def test_the_system_text_is_folded_into_the_user_turn_one_way_everywhere(tmp_path: Path) -> None:
    """`--system-in-user` for a ted model, an lm-eval document and an lm-eval chat template without a
    system role: the same text reaches the model (`fold_text`, one definition)."""
    lib = Library(name="fold")
    lib.add("Write the final answer in a box.", step=1)
    data = str(fx.write_aime25(tmp_path / "aime"))
    plain, folded = (lm_eval_docs("ted_aime25", library=str(lib.save(tmp_path / "lib.json")), data_files=data, system_in_user=flag)["test"][0] for flag in (False, True))
    system, prompt = plain["ted_system"], plain["ted_prompt"]
    assert system and folded["ted_system"] == "" and folded["ted_prompt"] == f"{system.rstrip()}\n\n{prompt}"
    (model_turn,) = fold_system([Message("system", system + "\n"), Message("user", prompt, images=["img"])])
    assert (model_turn.role, model_turn.text, model_turn.images) == ("user", folded["ted_prompt"], ["img"])
    chat = [{"role": "system", "content": system + "\n\n"}, {"role": "user", "content": prompt}]  # lm-eval's description ends in a blank line
    assert merge_system_into_user(chat) == [{"role": "user", "content": folded["ted_prompt"]}]
    assert fold_system([Message("system", "  "), Message("user", "Q")]) == [Message("user", "Q")]  # an empty library adds nothing

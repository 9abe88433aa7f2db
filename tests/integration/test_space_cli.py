"""`ted space` as a user runs it: it serves the Space with the libraries it was given, and bad
settings stop it with one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from ted.library import Library
from tests.support import assert_one_line_error, environ, run_ted, start_ted, wait_for_gradio_config

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

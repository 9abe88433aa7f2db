"""What `ted` loads before it does anything: `ted --help` and `ted show` of a local library must not
import the heavy stacks (the openai SDK, matplotlib, datasets, torch, the Hub client), since
`ted/cli.py` imports every command module at start-up. Behaviour, not timing: the bench measures
the CPU seconds (help_cpu_s, show_cpu_s)."""

import json
import subprocess
import sys

import pytest

from ted.library import Library

HEAVY = ("openai", "matplotlib", "datasets", "torch", "transformers", "huggingface_hub", "jinja2", "llama_cpp", "numpy")

# Runs `ted ARGS` in this child and prints the top-level packages it imported.
CHILD = """
import json, sys
sys.argv = ["ted", *json.loads(sys.argv[1])]
import ted.cli
code = 0
try:
    ted.cli.run()
except SystemExit as exit:
    code = exit.code
print("\\nMODULES " + json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
sys.exit(code)
"""


def imported(*args: str, cwd=None) -> set[str]:
    result = subprocess.run([sys.executable, "-c", CHILD, json.dumps(args)], capture_output=True, text=True, cwd=cwd, timeout=120)
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.rsplit("MODULES ", 1)[1]))


def test_help_imports_no_heavy_module():
    assert not imported("--help") & {*HEAVY, "rich", "pydantic", "tiktoken"}  # Click's plain help; no model class is built


def test_root_help_builds_no_subcommand():
    """`ted --help` lists the commands from their registrations; a command is built when it is used."""
    import typer
    from typer.main import get_command

    from ted.cli import app

    group = get_command(app)
    text = group.get_help(typer.Context(group, info_name="ted"))
    assert "distill " in text and "Distill an experience library" in text and "data " in text
    assert group.commands.built == {}
    assert group.get_command(typer.Context(group), "show").name == "show"
    assert list(group.commands.built) == ["show"]


@pytest.mark.parametrize("args", [["distill", "--help"], ["data", "sample", "--help"], ["show", "--help"]])
def test_command_help_imports_no_heavy_module(args):
    assert not imported(*args) & set(HEAVY)  # (Typer itself builds a command's parameters with pydantic)


def test_show_of_a_local_library_imports_no_heavy_module(tmp_path):
    lib = Library(name="startup")
    lib.add("Check the units of the answer before concluding.", 1)
    lib.save(tmp_path / "library.json")
    modules = imported("show", "library.json", cwd=tmp_path)
    assert "ted" in modules and "rich" in modules  # the command really ran
    assert not modules & set(HEAVY)


def test_a_flag_wins_over_the_config_file(tmp_path):
    """The file fills Click's defaults (`ctx.default_map`): a flag on the command line wins over it."""
    (tmp_path / "run.toml").write_text("rollouts = 2\n")
    result = subprocess.run(
        [sys.executable, "-m", "ted.cli", "distill", "--data", "none.jsonl", "--student", "local", "--teacher", "local",
         "--out", "o.json", "--config", "run.toml", "--rollouts", "0"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert "--rollouts 0" in result.stderr, result.stderr  # the flag's bad value is refused, not the file's good one


# `ted --version` through the console script's `main`, with an atexit hook and, when asked, a
# non-daemon thread that finishes after the command: both must have written their files.
LEAVING = """
import atexit, pathlib, sys, threading, time
import ted.cli
atexit.register(lambda: pathlib.Path("atexit.txt").write_text("ran"))
if sys.argv[1] == "thread":
    threading.Thread(target=lambda: (time.sleep(0.5), pathlib.Path("thread.txt").write_text("done"))).start()
sys.argv = ["ted", "--version"]
ted.cli.main()
"""


@pytest.mark.parametrize("thread", ["thread", "none"])
def test_main_leaves_without_teardown_but_after_atexit_and_threads(tmp_path, thread):
    """`main` skips the interpreter's teardown (~0.3 s of freeing modules), never what a finished command still owes."""
    result = subprocess.run([sys.executable, "-c", LEAVING, thread], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 0 and result.stdout.startswith("ted "), result.stderr
    assert (tmp_path / "atexit.txt").read_text() == "ran"
    assert (tmp_path / "thread.txt").exists() == (thread == "thread")

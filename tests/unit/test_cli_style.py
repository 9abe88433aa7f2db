"""One CLI style across commands: both flag spellings, hidden older names, the exit-code rule,
`--json` that parses, an example and readable metavars in every `--help`, shell completion."""

import json
import re

import pytest

from ted.cli import EXAMPLES, _build, registered
from ted.library import Library
from tests.support import environ, run_ted as ted


@pytest.fixture
def libs(tmp_path):
    for name, texts in (("a.json", ["Check the units."]), ("b.json", ["Check the units.", "Restate the question."])):
        lib = Library(name=name)
        for step, text in enumerate(texts, 1):
            lib.add(text, step)
        lib.save(tmp_path / name)
    return tmp_path


def test_both_spellings_of_a_flag_are_one_flag(libs):
    dashed = ted("show", "b.json", "--prompt", "--no-citations", cwd=libs)
    underscored = ted("show", "b.json", "--prompt", "--no_citations", cwd=libs)
    assert dashed.returncode == 0 and underscored.returncode == 0, underscored.stderr
    assert dashed.stdout == underscored.stdout and "Restate the question." in dashed.stdout
    # The citation-free block asks for no `Used: [...]` trailer and carries no IDs to cite.
    assert "Used:" not in dashed.stdout and "[E1]" not in dashed.stdout
    assert "Used: [E1, E3]" in ted("show", "b.json", "--prompt", cwd=libs).stdout


def test_an_older_flag_name_still_works_but_is_not_shown(tmp_path):
    (tmp_path / "pool.jsonl").write_text("".join(json.dumps({"question": f"q{i}", "answer": str(i)}) + "\n" for i in range(5)))
    old = ted("data", "sample", "pool.jsonl", "--n", "2", "--out", "old.jsonl", cwd=tmp_path)
    new = ted("data", "sample", "pool.jsonl", "--samples", "2", "--out", "new.jsonl", cwd=tmp_path)
    assert old.returncode == 0 and new.returncode == 0, old.stderr
    assert (tmp_path / "old.jsonl").read_text() == (tmp_path / "new.jsonl").read_text()
    assert len((tmp_path / "new.jsonl").read_text().splitlines()) == 2
    shown = ted("data", "sample", "--help").stdout
    assert "--samples" in shown and "--n " not in shown


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["show", "a.json", "--bogus"], 2),  # an unknown flag
        (["chat", "--student", "banana"], 2),  # a spec that names no backend
        (["distill", "--data", "d.jsonl", "--student", "local", "--teacher", "local", "--out", "o.json", "--resume", "--force"], 2),
        (["show", "missing.json"], 1),  # the command line is fine; the file is not there
        (["diff", "a.json", "bad.json"], 1),  # a malformed library
    ],
)
def test_exit_code_is_2_for_usage_and_1_for_runtime_failures(libs, args, code):
    (libs / "bad.json").write_text('{"format": "ted-library/1", "items": [{"id": "E1"}]}')
    (libs / "d.jsonl").write_text(json.dumps({"question": "1+1?", "answer": "2"}) + "\n")
    result = ted(*args, cwd=libs, input="")
    assert result.returncode == code, result.stderr
    assert result.stderr.count("error: ") == 1 and "Traceback" not in result.stderr


def test_diff_json_parses(libs):
    result = ted("diff", "a.json", "b.json", "--json", cwd=libs)
    assert result.returncode == 0, result.stderr
    changes = json.loads(result.stdout)
    assert [item["text"] for item in changes["added"]] == ["Restate the question."]
    assert changes["removed"] == changes["rewritten"] == []


@pytest.mark.integration  # ted doctor decodes with the real llama.cpp build
def test_doctor_json_parses():
    result = ted("doctor", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["packages"]["ted-distill"] and report["lm-eval tasks"].endswith("eval_tasks")


def _commands():
    for name, info in registered.items():
        command = _build(info)
        yield name, command
        for sub_name, sub in getattr(command, "commands", {}).items():
            yield f"{name} {sub_name}", sub


def test_every_command_has_an_example_and_readable_metavars():
    seen = set()
    for path, command in _commands():
        if getattr(command, "commands", None) and not command.invoke_without_command:
            continue  # a group that only holds commands (`ted data`): its commands carry the examples
        seen.add(path)
        assert command.epilog and EXAMPLES[path] in command.epilog, path
        for param in command.params:
            if param.param_type_name == "option" and not param.is_flag:
                assert param.metavar and "<" not in param.metavar and "[" not in param.metavar, (path, param.name, param.metavar)
            elif param.param_type_name == "argument":
                assert param.metavar and "<" not in param.metavar, (path, param.name, param.metavar)
    assert set(EXAMPLES) == seen  # no example for a command that is gone
    for args in (["distill"], ["diff"], ["data", "sample"]):
        shown = ted(*args, "--help").stdout
        assert "Example:" in shown and not re.search(r"<(str|int|float|path|list)\b", shown), shown


def test_shell_completion_script_and_candidates():
    script = ted("completion", "bash")
    assert script.returncode == 0 and "_TED_COMPLETE=complete_bash" in script.stdout
    asked = ted(env=environ(_TED_COMPLETE="complete_bash", COMP_WORDS="ted show x --no", COMP_CWORD="3"))
    assert asked.returncode == 0 and asked.stdout.split() == ["--no-citations"]


def test_distill_json_summary_parses(tmp_path):
    """`ted distill --json`: the summary is one JSON object on stdout, its facts those of the library written."""
    from tests.sim import Simulator, write_problems

    data = write_problems(tmp_path / "problems.jsonl", 3)
    with Simulator(tokens_per_reply=40, seed=5) as sim:
        result = ted("distill", "--data", str(data), "--student", sim.spec("s"), "--teacher", sim.spec("t"), "--out", str(tmp_path / "lib.json"),
                     "--epochs", "1", "--rollouts", "2", "--batch-size", "3", "--json", env=environ("OPENAI_API_KEY"), timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout)
    library = Library.load(tmp_path / "lib.json")
    assert summary["library"] == str(tmp_path / "lib.json") and summary["items"] == len(library.items)
    assert summary["requests"] == library.cost.calls and summary["requests"]["student"] >= 3

"""Trust, third pass (issue 25's fresh hostile pass): one test per cause it found, each with variants.

The pass and its table of cases are in docs/limits.md ("The third hostile pass"). Fast: in process
where the cause lives in one function, through the CLI where the symptom is what the user sees.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ted.errors import ConfigError
from tests.reliability.common import assert_one_line_error, ted
from tests.reliability.hostile import write


# --------------------------------------------------------------------------- a prompt template builds nothing huge
@pytest.mark.parametrize(
    "template",
    [
        "{{ 'x' * 10**11 }}",
        "{{ ['a'] * 10**11 }}",
        "{{ 'x' | center(10**11) }}",
        "{{ 'ab' | indent(10**11) }}",
        "{{ '{:>99999999999}'.format(1) }}",
        "{{ '{x:>99999999999}'.format_map({'x': 1}) }}",
        "{{ '%99999999999d' % 1 }}",
        "{{ '%99999999999d' | format(1) }}",
        "{{ 9 ** (9 ** 9) }}",
        "{{ lipsum(10**11) }}",
    ],
)
def test_a_prompt_template_cannot_build_something_huge(tmp_path: Path, template: str) -> None:
    """Jinja's sandbox caps `range` but not what a template builds: each of these ran out of memory
    or computed for minutes. Now each is refused before it is built, as one line naming the file."""
    from ted import prompts

    write(tmp_path / "p" / "solve.md", template)
    with pytest.raises(ConfigError, match=r"solve\.md .* failed to render \(SecurityError") as err:
        prompts.load(tmp_path / "p").render("solve", question="q", options=None, images=0)
    assert "\n" not in str(err.value)


def test_a_prompt_template_still_builds_what_prompts_need(tmp_path: Path) -> None:
    from ted import prompts

    write(tmp_path / "p" / "solve.md", "{{ '=' * 3 }} {{ 'x' | center(5) }} {{ '{:>3}'.format(1) }} {{ '%02d' % 7 }} {{ 2 ** 10 }} {{ question }}")
    assert prompts.load(tmp_path / "p").render("solve", question="q", options=None, images=0) == "===   x     1 07 1024 q"


# --------------------------------------------------------------------------- a call log that never ends
@pytest.mark.parametrize("kind", ["fifo", "dev_zero", "folder"])
def test_ted_log_reads_only_a_regular_file(tmp_path: Path, kind: str) -> None:
    """`ted log` on a FIFO waited for a writer for ever, on /dev/zero read zeros for ever (no line
    ever ends): each is now one line, at once, as a folder named like a log already was."""
    import os

    log = tmp_path / "run.calls.jsonl"
    if kind == "fifo":
        os.mkfifo(log)
    elif kind == "dev_zero":
        log.symlink_to("/dev/zero")
    else:
        log.mkdir()
    assert_one_line_error(ted("log", str(log), cwd=tmp_path, timeout=30), "run.calls.jsonl", "regular file" if kind != "folder" else "no call log")


# --------------------------------------------------------------------------- files ted writes in place
def _plant(path: Path, kind: str, target: Path) -> None:
    import os

    if kind == "link":
        path.symlink_to(target)
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()


@pytest.mark.parametrize("kind", ["link", "fifo", "folder"])
def test_the_run_lock_and_call_log_are_never_written_through_a_link(tmp_path: Path, kind: str) -> None:
    """A run folder received from someone (a cloned repository) can hold `library.json.lock` or
    `library.json.calls.jsonl` as a link to `~/.bashrc`: ted truncated and overwrote the file it points
    to. A FIFO there hung the run, a folder crashed it. Each is now refused, the target untouched."""
    from ted.models.calllog import CallLog
    from ted.run_guard import RunLock

    precious = write(tmp_path / "home" / ".bashrc", "export PATH=$HOME/bin:$PATH\n")
    out = tmp_path / "run" / "library.json"
    out.parent.mkdir()
    _plant(out.with_name("library.json.lock"), kind, precious)
    with pytest.raises(ConfigError, match="library.json.lock") as err:
        RunLock(out).acquire()
    assert "\n" not in str(err.value)
    for resume_at in (None, 10):
        log = tmp_path / f"run{resume_at}" / "library.json.calls.jsonl"
        log.parent.mkdir()
        _plant(log, kind, precious)
        with pytest.raises(ConfigError, match="calls.jsonl"):
            CallLog(log).open(resume_at)
    assert precious.read_text() == "export PATH=$HOME/bin:$PATH\n"


def test_distill_refuses_a_linked_lock_with_one_line(tmp_path: Path) -> None:
    precious = write(tmp_path / "precious.txt", "keep me\n")
    data = write(tmp_path / "p.jsonl", '{"question": "What is 2+2?", "answer": "4"}\n')
    (tmp_path / "library.json.lock").symlink_to(precious)
    spec = "openai:m@http://127.0.0.1:9/v1"  # never reached: the lock is taken before any call
    proc = ted("distill", "--data", str(data), "--student", spec, "--teacher", spec, "--out", "library.json", cwd=tmp_path)
    assert_one_line_error(proc, "symbolic link")
    assert precious.read_text() == "keep me\n"

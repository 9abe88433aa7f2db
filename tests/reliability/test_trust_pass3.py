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
        "{% for i in range(100000) %}{% for j in range(100000) %}xxxxxxxx{% endfor %}{% endfor %}",  # each range capped, not their product
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


# --------------------------------------------------------------------------- one line, whatever a message quotes
@pytest.mark.parametrize(
    "args",
    [
        ("show", "libs/missing\nerror: everything is fine.json"),  # a newline in a path would forge a second line
        ("show", "gone\x1b]52;c;ZXZpbA==\x07.json"),  # an escape sequence would reach the terminal
        ("log", "run\u202e/lmth.calls.jsonl"),  # a bidi override would reverse what follows
    ],
)
def test_an_error_line_shows_what_it_quotes_literally(tmp_path: Path, args: tuple[str, ...]) -> None:
    proc = ted(*args, cwd=tmp_path)
    line = assert_one_line_error(proc)
    assert not any(ch in line for ch in "\x1b\x07\u202e") and ("\\x0a" in line or "\\x1b" in line or "\\u202e" in line), line


# --------------------------------------------------------------------------- --license goes into YAML front matter
@pytest.mark.parametrize("license", ["mit\npwned: true", "MIT License", "cc-by-4.0'; x: 'y", ""])
def test_a_license_id_is_one_token(tmp_path: Path, license: str) -> None:
    from tests.support import make_library

    make_library(["Check the units of the final answer against the question."], save=tmp_path / "lib.json")
    assert_one_line_error(ted("card", "lib.json", "--out", "card", "--license", license, cwd=tmp_path), "not a license id")
    assert not (tmp_path / "card").exists()
    assert ted("card", "lib.json", "--out", "card", "--license", "cc-by-4.0", cwd=tmp_path).returncode == 0
    assert "license: cc-by-4.0\n" in (tmp_path / "card" / "README.md").read_text()


# --------------------------------------------------------------------------- a base URL no request can use
@pytest.mark.parametrize("url", ["http://127.0.0.1:99999/v1", "http://127.0.0.1:port/v1", "http:///v1", "http://a host/v1", "http://h\n/v1"])
def test_an_unusable_base_url_is_a_usage_error_at_once(tmp_path: Path, url: str) -> None:
    """Port 99999 was retried for 22 s and reported as "cannot reach … is the server running?"."""
    from tests.support import make_library

    make_library(["Check the units of the final answer against the question."], save=tmp_path / "lib.json")
    proc = ted("ask", "lib.json", "--question", "q", "--student", f"openai:m@{url}", cwd=tmp_path, timeout=20)
    assert proc.returncode == 2
    assert_one_line_error(proc, "base URL")


# --------------------------------------------------------------------------- replies of an odd shape
@pytest.mark.parametrize(
    "body, texts",
    [
        (b"[" * 100_000 + b"]" * 100_000, None),  # nested past Python's recursion limit: was an internal error
        (b'{"choices": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", None),
        (b'{"choices": [{"message": {"content": "4"}}], "usage": "lots"}', ["4"]),  # a usage that is no object is no count
        (b'{"choices": [{"message": {"content": "4"}}], "usage": [1, 2]}', ["4"]),
    ],
)
def test_a_reply_of_an_odd_shape_is_refused_or_read_never_a_crash(body: bytes, texts: list[str] | None) -> None:
    import asyncio

    from tests.reliability.test_trust import serving
    from ted.errors import ModelError
    from ted.models.base import Message
    from ted.models.openai_api import OpenAIChatModel
    from http.server import BaseHTTPRequestHandler

    class Reply(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with serving(Reply) as url:
        model = OpenAIChatModel(f"openai:m@{url}", "m", url, max_retries=0, timeout=20)

        async def ask() -> list[str | None]:
            try:
                return (await model.chat([Message("user", "What is 2+2?")])).texts
            finally:
                await model.aclose()

        if texts is None:
            with pytest.raises(ModelError, match="not chat completions"):
                asyncio.run(ask())
        else:
            assert asyncio.run(ask()) == texts


# --------------------------------------------------------------------------- $COLUMNS
@pytest.mark.parametrize("columns, most", [("99999999", 1000), ("1001", 1000), ("0", 200), ("-5", 200), ("wide", 200)])
def test_output_width_is_bounded_whatever_columns_says(tmp_path: Path, columns: str, most: int) -> None:
    """COLUMNS=99999999 made `ted show` pad every line to it: 1.2 GB of spaces for a two-lesson library."""
    from tests.support import make_library

    lesson = "Check the units of the final answer against the question."
    make_library([lesson], save=tmp_path / "lib.json")
    proc = ted("show", "lib.json", cwd=tmp_path, env={"COLUMNS": columns}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    flat = "".join(ch for ch in proc.stdout if ch not in " \n│")  # the lesson's characters, however it wraps
    assert "".join(lesson.split()) in flat and max(map(len, proc.stdout.splitlines())) <= most


# --------------------------------------------------------------------------- references are taken exactly
@pytest.mark.parametrize("ref", ["alice/lib@v1\n", " alice/lib@v1", "alice/lib\t", "alice/lib@v2\r\n"])
def test_a_reference_with_whitespace_around_it_is_refused_not_trimmed(tmp_path: Path, ref: str) -> None:
    """`ted push lib.json 'org/name@v1<newline>'` published v1: the reference was trimmed, though
    references match exactly (docs/limits.md). Refused before any request, for every command."""
    from ted.errors import LibraryError
    from ted.hub_refs import parse_ref

    with pytest.raises(LibraryError, match="spaces or a newline around it"):
        parse_ref(ref)
    from tests.support import make_library

    make_library(["Check the units of the final answer against the question."], save=tmp_path / "lib.json")
    offline = {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_TOKEN": "hf_unusedUnusedUnused"}
    assert_one_line_error(ted("push", "lib.json", ref, cwd=tmp_path, env=offline), "spaces or a newline")
    assert_one_line_error(ted("pull", ref, cwd=tmp_path, env=offline), "spaces or a newline")


def test_a_local_name_with_a_trailing_space_still_loads(tmp_path: Path) -> None:
    from tests.support import make_library

    make_library(["Check the units of the final answer against the question."], save=tmp_path / "lib.json ")
    assert ted("show", "lib.json ", cwd=tmp_path).returncode == 0


# --------------------------------------------------------------------------- an --out where a file is
@pytest.mark.parametrize("out, blocker", [("lib.json", "lib.json"), ("lib.json/card", "lib.json"), ("/dev/null", "/dev/null"), ("/dev/full/x", "/dev/full")])
def test_an_out_folder_that_is_a_file_names_the_file(tmp_path: Path, out: str, blocker: str) -> None:
    """mkdir said only "File exists" (a FIFO, /dev/null or a library where `--out` wants a folder)."""
    from tests.support import make_library

    make_library(["Check the units of the final answer against the question."], save=tmp_path / "lib.json")
    assert_one_line_error(ted("card", "lib.json", "--out", out, cwd=tmp_path), f"{blocker} is there and is not a folder")


# --------------------------------------------------------------------------- float flags are finite
@pytest.mark.parametrize(
    "args, config",
    [
        (("ask", "lib.json", "--question", "q", "--temperature", "inf"), None),
        (("distill", "--request-timeout", "inf"), None),
        (("distill", "--teacher-temperature", "Infinity"), None),
        (("distill", "--config", "run.toml"), "temperature = inf\n"),  # was an internal error, after the run had started
        (("attribute", "lib.json", "--data", "p.jsonl", "--temperature", "inf"), None),
    ],
)
def test_a_float_option_is_finite(tmp_path: Path, args: tuple[str, ...], config: str | None) -> None:
    from tests.support import make_library

    make_library(["Check the units of the final answer against the question."], save=tmp_path / "lib.json")
    write(tmp_path / "p.jsonl", '{"question": "What is 2+2?", "answer": "4"}\n')
    if config:
        write(tmp_path / "run.toml", config)
    spec = "openai:m@http://127.0.0.1:9/v1"  # never reached
    rest = ("--data", "p.jsonl", "--student", spec, "--teacher", spec, "--out", "out/library.json") if args[0] == "distill" else ("--student", spec)
    proc = ted(*args, *rest, cwd=tmp_path)
    assert proc.returncode == 2
    assert_one_line_error(proc, "not a finite number")
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- --json output shows hidden characters too
def test_json_output_escapes_what_json_dumps_leaves_raw(tmp_path: Path) -> None:
    """`json.dumps(ensure_ascii=False)` escapes C0 controls only: a bidi override in a library's name or
    a model's reply, or a C1 control, reached the terminal raw through `--json`. Now escaped, same JSON."""
    import json

    name = "lib\u202eeman\u202c \u200b\u0085 ×"
    write(tmp_path / "lib.json", json.dumps({"format": "ted-library/1", "name": name, "items": [{"id": "E1", "text": "Check the units of the answer."}]}))
    proc = ted("show", "lib.json", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not any(ch in proc.stdout for ch in "\u202e\u202c\u200b\u0085") and "×" in proc.stdout
    assert json.loads(proc.stdout)["name"] == name  # the same JSON, read back
    from ted.commands.options import print_json

    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        print_json({"reply": "Hi \x1b]52;c;ZXZpbA==\x07 \u2066evil\u2069"})
    assert not any(ch in buffer.getvalue() for ch in "\x1b\x07\u2066\u2069") and json.loads(buffer.getvalue())["reply"].endswith("\u2069")


# --------------------------------------------------------------------------- closed standard streams
@pytest.mark.parametrize("redirect", [">&-", "2>&-", ">&- 2>&-"])
def test_closed_standard_streams_are_no_crash(tmp_path: Path, redirect: str) -> None:
    """`ted doctor --json >&-` printed a 60-line traceback: Python has no sys.stdout when fd 1 is closed
    (`ted show --json` here: the same write to stdout, without doctor's backend probes)."""
    import shlex
    import subprocess

    from tests.reliability.common import clean_env, ted_command
    from tests.support import ted_env

    command = " ".join(map(shlex.quote, ted_command("show", "missing.json"))) + " " + redirect + " ; echo rc=$? >&3"
    proc = subprocess.run(["bash", "-c", f"exec 3>&1; {command}"], cwd=tmp_path, env=ted_env(clean_env()), capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "rc=1" and "Traceback" not in proc.stderr, (proc.stdout, proc.stderr)
    from tests.support import make_library

    make_library(["Check the units of the final answer against the question."], save=tmp_path / "lib.json")
    shown = subprocess.run(["bash", "-c", " ".join(map(shlex.quote, ted_command("show", "lib.json", "--json"))) + " " + redirect], cwd=tmp_path,
                           env=ted_env(clean_env()), capture_output=True, text=True, timeout=60)  # fmt: skip
    assert shown.returncode == 0 and "Traceback" not in shown.stderr, shown.stderr[-2000:]


# --------------------------------------------------------------------------- data rows are parsed strictly
@pytest.mark.parametrize(
    "line, phrase",
    [
        ('{"question": "q", "answer": NaN}', "NaN is not a JSON number"),  # was read as the answer "nan"
        ('{"question": "q", "answer": Infinity}', "Infinity is not a JSON number"),
        ('{"question": "q", "answer": "4", "answer": "5"}', "appears twice"),  # which answer is the truth?
        ('{"question": "q", "answer": 1e999}', "too large"),
        ('{"question": "q", "answer": "4", "x": ' + "[" * 100 + "]" * 100 + "}", "nested too deeply"),
    ],
)
def test_a_data_row_has_one_meaning(tmp_path: Path, line: str, phrase: str) -> None:
    """Libraries and checkpoints were parsed strictly, JSONL data rows were not: a row's answer could
    be NaN or given twice (the last silently won), so the ground truth a run scored against was a guess."""
    from ted.errors import DataError
    from ted.tasks.data import load_problems

    write(tmp_path / "p.jsonl", '{"question": "fine", "answer": "1"}\n' + line + "\n")
    with pytest.raises(DataError, match=rf"p\.jsonl line 2: .*{phrase}"):
        load_problems(str(tmp_path / "p.jsonl"))


# --------------------------------------------------------------------------- counts that cannot be zero
@pytest.mark.parametrize("flag", ["--threads", "--parallel", "--ctx"])
def test_serve_refuses_a_zero_count_before_starting_anything(tmp_path: Path, flag: str) -> None:
    """`ted serve local --threads 0` started llama-server with 0 threads (its meaning left to llama.cpp)."""
    proc = ted("serve", "local:tiny", flag, "0", cwd=tmp_path, timeout=30)
    assert proc.returncode == 2
    assert_one_line_error(proc, flag)


# --------------------------------------------------------------------------- data that is no regular file
@pytest.mark.parametrize("kind", ["fifo", "dev_zero"])
def test_data_that_is_no_regular_file_says_so(tmp_path: Path, kind: str) -> None:
    import os

    from ted.errors import DataError
    from ted.tasks.data import load_problems

    data = tmp_path / "p.parquet"  # read through `datasets`, not ted's own JSONL reader
    if kind == "fifo":
        os.mkfifo(data)
    else:
        data.symlink_to("/dev/zero")
    with pytest.raises(DataError, match="not a regular file"):
        load_problems(str(data))

"""Hostile and bad input, table-driven, through the real entry points: the `ted` CLI (distill, show),
the Hub commands against a local Hub-compatible server, `ted eval` (the lm-eval tasks' library and
data resolution) and the Space over its HTTP API.

Every case asserts the same contract: a non-zero exit with exactly one `error: …` line on stderr
and no traceback (in the Space: a friendly one-line message), and not one byte changed on disk
(sha256 of every file in the workspace, the output folders and the Hub repositories, before/after).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from ted.distill.checkpoint import CHECKPOINT_FORMAT, problems_fingerprint
from ted.distill.config import RunConfig
from ted.library import Library
from ted.tasks.base import Problem
from tests.reliability.common import assert_one_line_error, clean_env, ted, ted_command, tree_digest
from tests.reliability.hostile import HOSTILE_LIBRARIES, LESSON, SVG, item, jsonl, library_json, nested_json, png, write

pytestmark = pytest.mark.integration  # the real entry points: the CLI, a local Hub server, lm-eval, the Space

DEAD = "openai:sim@http://127.0.0.1:9/v1"  # nothing listens there: no case may get as far as a call
MODELS = ("--student", DEAD, "--teacher", DEAD)
GOOD_ROWS = [{"id": "p1", "question": "Compute 12 + 30.", "answer": "42"}, {"id": "p2", "question": "Compute 7 × 6.", "answer": "42"}]
GOOD_PROBLEMS = [Problem(id=row["id"], question=row["question"], answer=row["answer"]) for row in GOOD_ROWS]  # as load_problems reads them


def run_config(out: Path, **changes: object) -> RunConfig:
    return RunConfig(data="problems.jsonl", student=DEAD, teacher=DEAD, out=str(out), **changes)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder with every bad file; the cases run with it as the working directory."""
    ws = tmp_path_factory.mktemp("hostile")
    write(ws / "problems.jsonl", jsonl(*GOOD_ROWS))
    for name, data in HOSTILE_LIBRARIES.items():
        write(ws / "libs" / f"{name}.json", data)
    write(ws / "libs" / "nested_600.json", nested_json(600))  # parses, then broke every recursive walk (RecursionError)
    write(ws / "libs" / "duplicate_keys.json", library_json([item(1)])[:-1] + b', "name": "other"}')
    write(ws / "libs" / "nan_cost.json", library_json([item(1)], cost={"usd": 1.0}).replace(b"1.0", b"NaN"))
    write(ws / "libs" / "negative_cost.json", library_json([item(1)], cost={"usd": -4.0}))
    good = Library(name="good")
    good.add(LESSON, 1)
    good.save(ws / "libs" / "good.json")
    good.save(ws / "out" / "library.json")  # an earlier result that a new run must not overwrite
    # Training data.
    write(ws / "data" / "truncated.jsonl", jsonl(GOOD_ROWS[0]) + '{"id": "p2", "question": "Compute 7')
    write(ws / "data" / "array_row.jsonl", jsonl(GOOD_ROWS[0], ["Compute 7 × 6.", "42"]))
    write(ws / "data" / "no_answer.jsonl", jsonl({"id": "p1", "question": "Compute 12 + 30."}))
    write(ws / "data" / "nested.jsonl", b'{"question": ' + b"[" * 100_000 + b"]" * 100_000 + b', "answer": "1"}\n')
    write(ws / "data" / "not_utf8.jsonl", b'{"question": "caf\xe9 costs?", "answer": "3"}\n')
    write(ws / "data" / "bomb.png", png(30_000, 30_000, pixels=False))
    write(ws / "data" / "bomb.jsonl", jsonl({"question": "What is shown?", "answer": "1", "images": ["bomb.png"]}))
    write(ws / "data" / "figure.svg", SVG)
    write(ws / "data" / "svg.jsonl", jsonl({"question": "What is shown?", "answer": "1", "images": ["figure.svg"]}))
    write(ws / "data" / "missing_image.jsonl", jsonl({"question": "What is shown?", "answer": "1", "images": ["nope.png"]}))
    write(ws / "data" / "list_question.jsonl", jsonl(GOOD_ROWS[0], {"id": "p2", "question": ["Compute", "7 × 6."], "answer": "42"}))
    write(ws / "data" / "duplicate_ids.jsonl", jsonl(GOOD_ROWS[0], {**GOOD_ROWS[1], "id": "p1"}))
    (ws / "data" / "a_folder.png").mkdir(parents=True)
    write(ws / "data" / "image_folder.jsonl", jsonl({"question": "What is shown?", "answer": "1", "images": ["a_folder.png"]}))
    write(ws / "data" / "large.jsonl", jsonl(*({"id": f"p{i}", "question": f"Compute {i} + 1.", "answer": str(i + 1)} for i in range(1001))))
    # Options.
    write(ws / "wrong_type.toml", 'epochs = "three"\n')
    write(ws / "not_toml.toml", "epochs = [\n")
    write(ws / "nested.toml", "epochs = " + "[" * 600 + "]" * 600 + "\n")
    os.mkfifo(ws / "fifo.toml")  # would block a reader for ever
    # Checkpoints: one written by another configuration, one damaged, one torn, one over other data.
    other = run_config(ws / "mismatch" / "library.json", epochs=5)
    checkpoint = {
        "format": CHECKPOINT_FORMAT,
        "fingerprint": other.fingerprint(),
        "config": other.recorded(),
        "epoch": 0,
        "batch": 1,
        "step": 2,
        "library": Library().model_dump(mode="json"),
    }
    write(ws / "mismatch" / "library.json.checkpoint.json", json.dumps(checkpoint))
    same = run_config(ws / "damaged" / "library.json")
    damaged = {**checkpoint, "fingerprint": same.fingerprint(), "config": same.recorded(), "epoch": "zero"}
    write(ws / "damaged" / "library.json.checkpoint.json", json.dumps(damaged))
    write(ws / "torn" / "library.json.checkpoint.json", json.dumps(checkpoint)[:200])
    other_data = {**damaged, "epoch": 0, "data": "0123456789abcdef"}  # written over other training problems
    write(ws / "datachanged" / "library.json.checkpoint.json", json.dumps(other_data))
    write(ws / "nodata" / "library.json.checkpoint.json", json.dumps({**other_data, "data": None}))  # no hash: no check, once
    write(ws / "pastend" / "library.json.checkpoint.json", json.dumps({**other_data, "data": problems_fingerprint(GOOD_PROBLEMS), "epoch": 9}))
    write(ws / "dupkeys" / "library.json.checkpoint.json", json.dumps(damaged)[:-1] + ', "epoch": 2}')
    return ws


def distill(*args: str) -> tuple[str, ...]:
    return ("distill", *MODELS, *args)


# (case id, arguments, words the one error line must contain)
CLI_CASES: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    # Libraries (ted show reads a library reference exactly as ted chat and the eval tasks do).
    ("show-malformed-json", ("show", "libs/truncated.json"), ("not valid JSON",)),
    ("show-not-utf8", ("show", "libs/not_utf8.json"), ("not UTF-8",)),
    ("show-nested-json", ("show", "libs/nested.json"), ("nested too deeply",)),
    ("show-wrong-types", ("show", "libs/wrong_types.json"), ("items", "valid list")),
    ("show-missing-field", ("show", "libs/missing_text.json"), ("items.0.text", "Field required")),
    ("show-foreign-format", ("show", "libs/foreign_format.json"), ("expected 'ted-library/1'",)),
    ("show-10000-items", ("show", "libs/ten_thousand_items.json"), ("10,000 items", "cap of 500")),
    ("show-1mb-text", ("show", "libs/megabyte_text.json"), ("items.0.text", "at most 2000 characters")),
    ("show-huge-file", ("show", "libs/huge_file.json"), ("over the 4,000,000-byte cap",)),
    ("show-control-chars", ("show", "libs/control_chars.json"), ("control characters",)),
    ("show-zero-width", ("show", "libs/zero_width.json"), ("invisible Unicode",)),
    ("show-bidi-override", ("show", "libs/bidi_override.json"), ("invisible Unicode",)),
    ("show-colliding-ids", ("show", "libs/colliding_ids.json"), ("duplicate experience id E1",)),
    ("show-traversal-id", ("show", "libs/bad_id.json"), ("items.0.id",)),
    ("show-missing-path", ("show", "libs/../../../nowhere/library.json"), ("no such file or folder",)),
    ("show-hub-traversal", ("show", "alice/../../etc"), ("path traversal",)),
    ("show-hub-version-traversal", ("show", "alice/lib@../../../etc"), ("path traversal",)),
    # Training data.
    ("distill-truncated-jsonl", distill("--data", "data/truncated.jsonl", "--out", "new.json"), ("line 2", "not valid JSON")),
    ("distill-row-not-object", distill("--data", "data/array_row.jsonl", "--out", "new.json"), ("line 2", "expected a JSON object")),
    ("distill-row-no-answer", distill("--data", "data/no_answer.jsonl", "--out", "new.json"), ("'answer'", "--field answer=")),
    ("distill-row-nested", distill("--data", "data/nested.jsonl", "--out", "new.json"), ("nested too deeply",)),
    ("distill-not-utf8", distill("--data", "data/not_utf8.jsonl", "--out", "new.json"), ("not UTF-8",)),
    ("distill-image-bomb", distill("--data", "data/bomb.jsonl", "--out", "new.json"), ("cannot decode image", "decompression bomb")),
    ("distill-image-svg", distill("--data", "data/svg.jsonl", "--out", "new.json"), ("cannot decode image", "figure.svg")),
    ("distill-image-missing", distill("--data", "data/missing_image.jsonl", "--out", "new.json"), ("image file not found",)),
    ("distill-row-list-question", distill("--data", "data/list_question.jsonl", "--out", "new.json"), ("line 2", "'question' is a list")),
    ("distill-duplicate-ids", distill("--data", "data/duplicate_ids.jsonl", "--out", "new.json"), ("line 2", "duplicate problem id 'p1'", "line 1")),
    ("distill-image-is-a-folder", distill("--data", "data/image_folder.jsonl", "--out", "new.json"), ("a_folder.png is a folder, not an image file",)),
    ("distill-negative-price", distill("--data", "problems.jsonl", "--out", "new.json", "--price", "teacher=-1/-2"), ("--price", "0 or more")),
    ("distill-budget-over-cap", distill("--data", "problems.jsonl", "--out", "new.json", "--budget-tokens", "99999999999999999999"), ("--budget-tokens",)),
    ("distill-epochs-over-cap", distill("--data", "problems.jsonl", "--out", "new.json", "--epochs", "1000000"), ("--epochs", "1000")),
    ("card-unwritable", ("card", "libs/good.json", "--out", "/proc/ted-card"), ("cannot write /proc/ted-card", "nothing was written")),
    ("distill-large-without-yes", distill("--data", "data/large.jsonl", "--out", "new.json", "--epochs", "1"), ("1,001 problems × 1 epochs", "requests", "completion tokens", "pass --yes")),
    ("distill-costly-without-yes", distill("--data", "problems.jsonl", "--out", "new.json", "--price", "teacher=5/400"), ("up to $", "for completion tokens alone", "pass --yes")),
    ("eval-limit-zero", ("eval", "--task", "ted_aime", "--library", "libs/good.json", "--limit", "0"), ("--limit 0", "1 or more")),
    ("distill-val-data-bad", distill("--data", "problems.jsonl", "--val-data", "data/truncated.jsonl", "--out", "new.json"), ("line 2",)),
    # Options.
    ("distill-unknown-student", ("distill", "--data", "problems.jsonl", "--student", "gpt4", "--teacher", DEAD, "--out", "new.json"), ("unknown model spec 'gpt4'",)),
    ("distill-unknown-backend", ("distill", "--data", "problems.jsonl", "--student", DEAD, "--teacher", "ollama:x", "--out", "new.json"), ("unknown model backend 'ollama'",)),
    ("distill-out-exists", distill("--data", "problems.jsonl", "--out", "out/library.json"), ("exists", "--force", "--resume")),
    ("distill-out-folder-exists", distill("--data", "problems.jsonl", "--out", "out"), ("exists", "--force")),
    ("distill-out-under-a-file", distill("--data", "problems.jsonl", "--out", "problems.jsonl/library.json"), ("is a file, not a folder",)),
    ("distill-out-unwritable", distill("--data", "problems.jsonl", "--out", "/proc/ted/library.json"), ("cannot write there",)),
    ("distill-budget-too-small", distill("--data", "problems.jsonl", "--out", "new.json", "--budget-tokens", "20"), ("smaller than one experience",)),
    ("distill-option-out-of-range", distill("--data", "problems.jsonl", "--out", "new.json", "--rollouts", "0"), ("--rollouts",)),
    ("distill-config-wrong-type", distill("--data", "problems.jsonl", "--out", "new.json", "--config", "wrong_type.toml"), ("--epochs", "three")),
    ("distill-config-not-toml", distill("--data", "problems.jsonl", "--out", "new.json", "--config", "not_toml.toml"), ("invalid TOML",)),
    ("distill-resume-mismatch", distill("--data", "problems.jsonl", "--out", "mismatch/library.json", "--resume"), ("different configuration", "epochs")),
    ("distill-resume-damaged", distill("--data", "problems.jsonl", "--out", "damaged/library.json", "--resume"), ("damaged checkpoint", "epoch", "--force")),
    ("distill-resume-torn", distill("--data", "problems.jsonl", "--out", "torn/library.json", "--resume"), ("unreadable checkpoint", "--force")),
    ("distill-resume-data-changed", distill("--data", "problems.jsonl", "--out", "datachanged/library.json", "--resume"), ("training problems", "changed", "--force")),
    ("distill-resume-no-data-hash", distill("--data", "problems.jsonl", "--out", "nodata/library.json", "--resume"), ("training problems", "changed", "--force")),
    ("distill-resume-past-the-end", distill("--data", "problems.jsonl", "--out", "pastend/library.json", "--resume"), ("damaged checkpoint", "epoch 9 of 3")),
    ("distill-resume-duplicate-keys", distill("--data", "problems.jsonl", "--out", "dupkeys/library.json", "--resume"), ("unreadable checkpoint", "'epoch' appears twice")),
    ("distill-config-dev-zero", distill("--data", "problems.jsonl", "--out", "new.json", "--config", "/dev/zero"), ("--config /dev/zero", "not a regular file")),
    ("distill-config-fifo", distill("--data", "problems.jsonl", "--out", "new.json", "--config", "fifo.toml"), ("not a regular file",)),
    ("distill-config-nested", distill("--data", "problems.jsonl", "--out", "new.json", "--config", "nested.toml"), ("nested too deeply",)),
    ("show-nested-600", ("show", "libs/nested_600.json"), ("nested too deeply",)),
    ("show-duplicate-keys", ("show", "libs/duplicate_keys.json"), ("'name' appears twice",)),
    ("show-nan-cost", ("show", "libs/nan_cost.json"), ("NaN",)),
    ("show-negative-cost", ("show", "libs/negative_cost.json"), ("cost.usd",)),
    ("distill-resume-and-force", distill("--data", "problems.jsonl", "--out", "out/library.json", "--resume", "--force"), ("contradict",)),
]


@pytest.mark.parametrize("args, phrases", [pytest.param(a, p, id=i) for i, a, p in CLI_CASES])
def test_cli_refuses_bad_input_with_one_line_and_changes_nothing(workspace: Path, args: tuple[str, ...], phrases: tuple[str, ...]) -> None:
    before = tree_digest(workspace)
    proc = ted(*args, cwd=workspace)
    assert_one_line_error(proc, *phrases)
    assert tree_digest(workspace) == before


def test_an_endpoint_answering_html_is_one_line_in_every_command(tmp_path: Path) -> None:
    """A login page or a web app at the base URL: a 200 with HTML, which `ted chat` used to print as an empty reply."""
    import http.server
    import threading

    class Html(http.server.BaseHTTPRequestHandler):
        def _page(self) -> None:
            body = b"<!doctype html><html><body>Please sign in</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _page

        def log_message(self, *args: object) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Html)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    spec = f"openai:m@http://127.0.0.1:{server.server_address[1]}/v1"
    write(tmp_path / "problems.jsonl", jsonl(*GOOD_ROWS))
    try:
        chat = subprocess.run(ted_command("chat", "--student", spec), input="hello\n", cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=120)
        lines = [assert_one_line_error(chat, "answered with an HTML page")]
        lines.append(assert_one_line_error(ted("distill", "--data", "problems.jsonl", "--student", spec, "--teacher", spec, "--out", "new.json", cwd=tmp_path), "HTML page"))
    finally:
        server.shutdown()
    assert not (tmp_path / "new.json").exists()

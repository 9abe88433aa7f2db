"""Hostile input at the integrations, table-driven: the Hub commands (real `huggingface_hub` client
against the local Hub-compatible server), `ted eval` (how the lm-eval tasks resolve a library), and
the Space (space/app.py in its own process, driven over its HTTP API with gradio_client).

CLI cases: non-zero exit, one `error: …` line, no traceback, the workspace and the Hub's repositories
byte-identical afterwards. Space cases: the request is refused with a friendly message naming the
problem, nothing reaches the model, and the Space keeps answering; a hostile library named in the
Space's settings stops it at start-up with one line.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gradio_client import Client, handle_file
from huggingface_hub import CommitOperationAdd, HfApi

from ted.errors import TedError
from ted.library import Library
from tests.integration.hub_server import HubServer, Token
from tests.reliability.common import REPO, assert_one_line_error, clean_env, ted, tree_digest
from tests.reliability.hostile import HOSTILE_LIBRARIES, LESSON, SVG, png, write
from tests.reliability.simulated import RecordingSimulator
from tests.space_app import running_space

pytestmark = pytest.mark.integration

WRITE = "hf_reliability_write"
API_KEY = "sk-space-planted-1234567890abcdef"
# Remote libraries: the Hub repo name, and the file that becomes its library.json (None: no library.json).
REMOTE = {
    "no-library": None,
    "huge": "huge_file",
    "ten-thousand": "ten_thousand_items",
    "megabyte-text": "megabyte_text",
    "zero-width": "zero_width",
    "bidi": "bidi_override",
    "colliding": "colliding_ids",
    "nested": "nested",
    "truncated": "truncated",
}


def publish(api: HfApi, repo: str, files: dict[str, bytes]) -> None:
    """A tagged v1 with exactly these files, through the plain Hub client (no ted validation in the way)."""
    api.create_repo(repo, repo_type="dataset")
    info = api.create_commit(repo, [CommitOperationAdd(p, data) for p, data in files.items()], commit_message="v1", repo_type="dataset")
    api.create_tag(repo, tag="v1", revision=info.oid, repo_type="dataset")


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    with HubServer(tmp_path_factory.mktemp("hub"), {WRITE: Token("alice", "write")}) as server:
        api = HfApi(endpoint=server.url, token=WRITE)
        for repo, name in REMOTE.items():
            files = {"README.md": b"---\nlicense: mit\n---\n# data\n", "data.csv": b"a\n1\n"} if name is None else {"library.json": HOSTILE_LIBRARIES[name]}
            publish(api, f"alice/{repo}", files)
        good = Library(name="good")
        good.add(LESSON, 1)
        publish(api, "alice/good", {"library.json": good.to_json().encode()})
        yield server


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = tmp_path_factory.mktemp("integrations")
    for name, data in HOSTILE_LIBRARIES.items():
        write(ws / "libs" / f"{name}.json", data)
    good = Library(name="local")
    good.add("Restate what the question asks before solving it.", 1)
    good.save(ws / "libs" / "good.json")
    good.save(ws / "pulled" / "library.json")  # a different library already where a pull would write
    return ws


def hub_env(hub: HubServer, ws: Path) -> dict[str, str]:
    return {"HF_ENDPOINT": hub.url, "HF_TOKEN": WRITE, "HF_HOME": str(ws.parent / f"{ws.name}-hf-home"),
            "HF_HUB_CACHE": str(ws.parent / f"{ws.name}-hf-cache")}  # fmt: skip


CLI_CASES: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    # The Hub: what a downloaded library may hold, and references that try to leave the cache.
    ("hub-repo-without-library", ("pull", "alice/no-library@v1"), ("not a ted library", "library.json")),
    ("hub-huge-library", ("pull", "alice/huge@v1"), ("over the 4,000,000-byte cap", "refusing to download")),
    ("hub-10000-items", ("pull", "alice/ten-thousand@v1", "--out", "fresh"), ("10,000 items", "cap of 500")),
    ("hub-1mb-text", ("show", "alice/megabyte-text@v1"), ("at most 2000 characters",)),
    ("hub-zero-width", ("show", "alice/zero-width"), ("invisible Unicode",)),
    ("hub-bidi-override", ("diff", "alice/bidi@v1", "libs/good.json"), ("invisible Unicode",)),
    ("hub-colliding-ids", ("pull", "alice/colliding@v1", "--out", "pulled"), ("duplicate experience id E1",)),
    ("hub-nested-json", ("show", "alice/nested@v1"), ("nested too deeply",)),
    ("hub-truncated-json", ("pull", "alice/truncated@v1"), ("not valid JSON",)),
    ("hub-version-traversal", ("pull", "alice/good@../../../../etc"), ("path traversal",)),
    ("hub-repo-traversal", ("show", "alice/../../../etc/passwd"), ("path traversal",)),
    ("hub-pull-would-overwrite", ("pull", "alice/good@v1", "--out", "pulled"), ("would overwrite", "--force")),
    ("hub-push-hostile-library", ("push", "libs/control_chars.json", "alice/new"), ("control characters",)),
    ("hub-push-bad-version", ("push", "libs/good.json", "alice/good", "--version", "v1/../../x"), ("not a valid version",)),
    # ted eval: the lm-eval tasks resolve the library exactly like this, before any model is called.
    ("eval-unknown-task", ("eval", "--task", "ted_nope", "--library", "libs/good.json"), ("unknown task 'ted_nope'",)),
    ("eval-10000-items", ("eval", "--task", "ted_aime", "--library", "libs/ten_thousand_items.json"), ("cap of 500",)),
    ("eval-bidi-override", ("eval", "--task", "ted_aime", "--library", "libs/bidi_override.json"), ("invisible Unicode",)),
    ("eval-traversal", ("eval", "--task", "ted_aime", "--library", "alice/../x"), ("path traversal",)),
    ("eval-record-remote", ("eval", "--task", "ted_aime", "--library", "alice/good@v1", "--record"), ("--record", "local library")),
]


@pytest.mark.parametrize("args, phrases", [pytest.param(a, p, id=i) for i, a, p in CLI_CASES])
def test_hub_and_eval_refuse_bad_input_with_one_line_and_change_nothing(
    hub: HubServer, workspace: Path, args: tuple[str, ...], phrases: tuple[str, ...]
) -> None:
    before = tree_digest(workspace, hub.root)
    proc = ted(*args, cwd=workspace, env=hub_env(hub, workspace))
    assert_one_line_error(proc, *phrases)
    assert tree_digest(workspace, hub.root) == before


def lm_eval_task_functions() -> Any:
    """eval_tasks/utils.py as lm-eval imports it (by path, through `!function utils.…` in the YAML)."""
    spec = importlib.util.spec_from_file_location("ted_eval_task_utils", REPO / "eval_tasks" / "utils.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# lm-eval calls the task's `custom_dataset` with --metadata as keyword arguments: a library reference among them.
TASK_CASES = [
    ("task-malformed-library", "libs/truncated.json", ("not valid JSON",)),
    ("task-10000-items", "libs/ten_thousand_items.json", ("cap of 500",)),
    ("task-megabyte-text", "libs/megabyte_text.json", ("at most 2000 characters",)),
    ("task-control-chars", "libs/control_chars.json", ("control characters",)),
    ("task-hub-traversal", "alice/../../etc", ("path traversal",)),
    ("task-missing-file", "./nowhere/library.json", ("no such file",)),
]


@pytest.mark.parametrize("ref, phrases", [pytest.param(r, p, id=i) for i, r, p in TASK_CASES])
def test_lm_eval_tasks_refuse_a_bad_library_with_one_line(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, ref: str, phrases: tuple[str, ...]
) -> None:
    monkeypatch.chdir(workspace)
    before = tree_digest(workspace)
    utils = lm_eval_task_functions()
    with pytest.raises(TedError) as refused:
        utils.aime(library=ref, data_files="unused.jsonl")  # the library is checked before any data is read
    line = str(refused.value)
    assert "\n" not in line and all(phrase in line for phrase in phrases), line
    assert tree_digest(workspace) == before


# --------------------------------------------------------------------------- the Space
@pytest.fixture(scope="module")
def student() -> Iterator[RecordingSimulator]:
    with RecordingSimulator(0.0, seed=1, tokens_per_reply=20, leak_auth=True) as sim:
        yield sim


@pytest.fixture(scope="module")
def space(hub: HubServer, student: RecordingSimulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Client, Path]]:
    folder = tmp_path_factory.mktemp("space")
    env = {
        "TED_STUDENT": student.spec("sim-student"),
        "TED_SPACE_LIBRARIES": "alice/good,alice/ten-thousand,alice/zero-width,alice/colliding",
        "TED_SPACE_MAX_IMAGE_MB": "1",
        "OPENAI_API_KEY": API_KEY,
        "HF_ENDPOINT": hub.url,
        "HF_TOKEN": WRITE,
        "HF_HOME": str(folder / "hf-home"),
        "HF_HUB_CACHE": str(folder / "hf-cache"),
    }
    with running_space(env, folder / "app.log") as url:
        yield Client(url, verbose=False, download_files=False), folder / "app.log"


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    write(folder / "bomb.png", png(30_000, 30_000, pixels=False))  # 900 megapixels declared, a few bytes sent
    write(folder / "large.png", png(5000, 5000))  # 25 megapixels: over the Space's 16.7
    write(folder / "heavy.png", png(64, 64) + b"\0" * 1_200_000)  # a valid PNG padded past 1 MB
    write(folder / "figure.svg", SVG)
    write(folder / "fake.png", b"GIF89a? no: a text file with an image's name\n")
    for i in range(5):
        write(folder / f"small{i}.png", png(8, 8))
    return folder


def ask(client: Client, text: str, key: str = "none", files: tuple[Path, ...] = (), version: str | None = None) -> tuple[Any, ...]:
    message = {"text": text, "files": [handle_file(str(path)) for path in files]}
    return client.predict(message, [], [], key, version, False, 0.0, 16, api_name="/chat_ui")


SPACE_CASES: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
    ("space-image-bomb", {"files": ("bomb.png",)}, ("bomb.png is not an image this Space can read",)),
    ("space-image-pixels", {"files": ("large.png",)}, ("5000×5000 pixels", "smaller image")),
    ("space-image-bytes", {"files": ("heavy.png",)}, ("exceeds the maximum file size",)),
    ("space-image-svg", {"files": ("figure.svg",)}, ("figure.svg is not an image this Space can read",)),
    ("space-image-fake", {"files": ("fake.png",)}, ("fake.png is not an image this Space can read",)),
    ("space-too-many-images", {"files": tuple(f"small{i}.png" for i in range(5))}, ("You attached 5 images; the limit is 4",)),
    ("space-message-too-long", {"text": "x" * 4001}, ("4,001 characters long", "limit here is 4,000")),
    ("space-picker-traversal", {"key": "../../../etc/passwd"}, ()),  # not a choice: refused by Gradio itself
    ("space-version-traversal", {"key": "alice/good", "version": "../../../etc"}, ("has no version", "pick one from the list")),
    ("space-hub-10000-items", {"key": "alice/ten-thousand"}, ("10,000 items", "cap of 500")),
    ("space-hub-zero-width", {"key": "alice/zero-width"}, ("invisible Unicode",)),
    ("space-hub-colliding-ids", {"key": "alice/colliding"}, ("duplicate experience id E1",)),
]


@pytest.mark.parametrize("request_, phrases", [pytest.param(r, p, id=i) for i, r, p in SPACE_CASES])
def test_space_refuses_bad_input_with_a_friendly_message(
    space: tuple[Client, Path], student: RecordingSimulator, images: Path, request_: dict[str, Any], phrases: tuple[str, ...]
) -> None:
    client, log = space
    student.clear()
    files = tuple(images / name for name in request_.get("files", ()))
    with pytest.raises(Exception) as refused:
        ask(client, request_.get("text", "What is shown?"), request_.get("key", "none"), files, request_.get("version"))
    message = str(refused.value)
    assert "Traceback" not in message and len(message) < 600, message
    for phrase in phrases:
        assert phrase in message, message
    assert student.seen == []  # refused before anything reached the model
    assert "Traceback" not in log.read_text(errors="replace")


def test_space_keeps_serving_and_never_shows_the_key(space: tuple[Client, Path], student: RecordingSimulator) -> None:
    """After all the refusals a question still reaches the model. The simulator cannot stream, so it
    answers with an error that quotes the Authorization header: the page must show it without the key."""
    client, log = space
    student.clear()
    answered = ask(client, "Compute 12 + 30.", key="alice/good")
    notice = "".join(part.get("text", "") for part in answered[1][-1]["content"])
    assert len(student.seen) == 1 and student.seen[0].stage == "student"  # it reached the model, with the good library
    assert LESSON in answered[3]
    assert notice.startswith("⚠️") and "Bearer ***" in notice and API_KEY not in json.dumps(answered)
    text = log.read_text(errors="replace")
    assert API_KEY not in text and "Traceback" not in text


@pytest.mark.parametrize("library", ["zero_width", "ten_thousand_items"])
def test_space_stops_at_start_up_on_a_hostile_library_in_its_settings(workspace: Path, library: str) -> None:
    env = clean_env({"TED_STUDENT": "openai:sim@http://127.0.0.1:9/v1", "TED_SPACE_LIBRARIES": str(workspace / "libs" / f"{library}.json")})
    proc = subprocess.run([sys.executable, str(REPO / "space" / "app.py")], env=env, capture_output=True, text=True, timeout=120)
    assert_one_line_error(proc, f"{library}.json")

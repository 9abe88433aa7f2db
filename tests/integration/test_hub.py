"""Libraries on the Hub, end to end: the real `huggingface_hub` client over HTTP against a local
Hub-compatible server (tests/integration/hub_server.py) backed by real git repositories.

The CLI runs as a subprocess (`python -m ted.cli`) with HF_ENDPOINT / HF_TOKEN / HF_HUB_CACHE in
its environment, exactly as a user runs it; the Python API is called in process with the same
settings passed explicitly. Nothing in huggingface_hub is patched.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from tests.integration.hub_server import HubServer, Token
from tests.support import CHECKOUT, assert_one_line_error, run_ted
from huggingface_hub import CommitOperationAdd, HfApi

import ted
from ted.cards import render_card, split_card
from ted.errors import LibraryError, TedError
from ted.hub import HubError, PushResult, VersionInfo
from ted.library import MAX_FILE_BYTES, CurvePoint, Library, RoleCost

pytestmark = pytest.mark.integration

WRITE, READ = "hf_write_token", "hf_read_token"
REPO_ROOT = CHECKOUT


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    with HubServer(tmp_path_factory.mktemp("hub"), {WRITE: Token("alice", "write"), READ: Token("bob", "read")}) as server:
        yield server


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "hf-cache"


@pytest.fixture
def api_kw(hub: HubServer, cache: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Settings for in-process API calls; HF_TOKEN is set so no saved login leaks in."""
    monkeypatch.setenv("HF_TOKEN", WRITE)
    return {"endpoint": hub.url, "cache_dir": str(cache)}


@pytest.fixture
def cli_env(hub: HubServer, tmp_path: Path, cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(
        HF_ENDPOINT=hub.url,
        HF_TOKEN=WRITE,
        HF_HOME=str(tmp_path / "hf-home"),
        HF_HUB_CACHE=str(cache),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_XET="1",  # the local Hub has no Xet storage (see hub_server.py)
        NO_COLOR="1",
        COLUMNS="200",
    )
    return env


def ted_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_ted(*args, env=env)


def make_library(path: Path, texts: list[str], *, name: str = "demo", with_library: float = 0.55) -> Path:
    lib = Library(
        name=name,
        student={"model": "gemma-3-270m", "backend": "llama_cpp"},
        teacher={"model": "gemma-3-270m", "backend": "llama_cpp"},
        source={"dataset": "local/arith", "split": "train", "revision": "abc123", "samples": 12, "epochs": 2, "rollouts": 2},
        budget={"max_tokens": 600, "max_items": 6},
    )
    for step, text in enumerate(texts, start=1):
        lib.add(text, step, sources=[f"sample-{step}"]).usage = step
    lib.metrics.task, lib.metrics.baseline, lib.metrics.with_library = "ted_demo", 0.4, with_library
    lib.metrics.curve = [
        CurvePoint(epoch=1, step=6, items=len(texts), tokens=80, train_accuracy=0.3, val_accuracy=0.45),
        CurvePoint(epoch=2, step=12, items=len(texts), tokens=90, train_accuracy=0.4, val_accuracy=with_library),
    ]
    lib.cost.calls = {"student": 48, "teacher": 24}
    lib.cost.roles = {"student": RoleCost(calls=48, prompt_tokens=9000, completion_tokens=3000, wall_s=30.5)}
    lib.save(path)
    return path


LESSONS = [
    "Restate what the question asks before computing anything.",
    "Check the units of the final answer against the question.",
    "When a figure is described, list its given quantities first.",
]


def tags_of(hub: HubServer, repo_id: str) -> dict[str, str]:
    return {t.name: t.target_commit for t in HfApi(endpoint=hub.url, token=WRITE).list_repo_refs(repo_id, repo_type="dataset").tags}


def head_of(hub: HubServer, repo_id: str) -> str:
    return hub.git("dataset", repo_id, "rev-parse", "refs/heads/main").strip()


def raw_commit(hub: HubServer, repo_id: str, files: dict[str, bytes], tag: str | None = "v1") -> None:
    """Put arbitrary files in a dataset repo with the plain Hub client (for hostile/odd repos)."""
    api = HfApi(endpoint=hub.url, token=WRITE)
    api.create_repo(repo_id, repo_type="dataset", exist_ok=True)
    info = api.create_commit(
        repo_id, [CommitOperationAdd(p, data) for p, data in files.items()], commit_message="raw", repo_type="dataset"
    )
    if tag:
        api.create_tag(repo_id, tag=tag, revision=info.oid, repo_type="dataset")


# --------------------------------------------------------------------------- round trip
def test_push_then_pull_gives_back_what_was_published(hub: HubServer, cli_env: dict[str, str], tmp_path: Path) -> None:
    lib_path = make_library(tmp_path / "lib.json", LESSONS)
    # Not ted's own formatting: a push publishes the library as ted re-serialises it (what it means, with
    # the loader's scrubbing), never the file's bytes; a pull gives back exactly what was published.
    lib_path.write_text(json.dumps(json.loads(lib_path.read_text()), indent=3, sort_keys=True, ensure_ascii=True))
    pushed = ted_cli(cli_env, "push", str(lib_path), "alice/roundtrip", "--message", "first version")
    assert pushed.returncode == 0, pushed.stderr
    assert f"{hub.url}/datasets/alice/roundtrip/tree/v1" in pushed.stdout

    # One commit on top of the repo's initial commit, tagged v1, holding the whole layout.
    assert tags_of(hub, "alice/roundtrip") == {"v1": head_of(hub, "alice/roundtrip")}
    assert hub.git("dataset", "alice/roundtrip", "rev-list", "--count", "main").strip() == "2"
    assert hub.git("dataset", "alice/roundtrip", "log", "-1", "--format=%s", "v1").strip() == "first version"
    tree = hub.git("dataset", "alice/roundtrip", "ls-tree", "-r", "--name-only", "v1").split()
    assert set(tree) >= {"library.json", "experiences.jsonl", "README.md", "assets/learning_curve.png", "assets/usage.png"}

    out = tmp_path / "pulled"
    pulled = ted_cli(cli_env, "pull", "alice/roundtrip@v1", "--out", str(out))
    assert pulled.returncode == 0, pulled.stderr
    published = hub.git("dataset", "alice/roundtrip", "show", "v1:library.json").encode()
    assert (out / "library.json").read_bytes() == published == Library.load(lib_path).to_json().encode()
    rows = [json.loads(line) for line in (out / "experiences.jsonl").read_text().splitlines()]
    assert [r["text"] for r in rows] == LESSONS and [r["usage"] for r in rows] == [1, 2, 3]
    assert (out / "assets/learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # No version: the newest tag; the cached file is the same bytes too.
    cached = ted_cli(cli_env, "pull", "alice/roundtrip")
    assert cached.returncode == 0, cached.stderr
    assert Path(cached.stdout.strip().splitlines()[-1]).read_bytes() == published


def test_card_has_valid_yaml_and_viewer_configs(hub: HubServer, api_kw: dict[str, str], tmp_path: Path) -> None:
    lib_path = make_library(tmp_path / "lib.json", LESSONS, with_library=0.6)
    ted.push_library(lib_path, "alice/carded", license="cc-by-4.0", **{k: v for k, v in api_kw.items() if k != "cache_dir"})
    result = ted.pull_library("alice/carded@v1", **api_kw)
    meta, body = split_card((result.folder / "README.md").read_text())

    assert meta["license"] == "cc-by-4.0" and meta["pretty_name"] == "TED experience library: demo"
    assert {"ted", "experience-library", "arxiv:2603.26778"} <= set(meta["tags"]) and meta["task_categories"]
    assert meta["source_datasets"] == ["local/arith"]  # a Hub id (no such path here)
    assert "](https://arxiv.org/abs/2603.26778)" in body and "eprint        = {2603.26778}" in body
    assert meta["configs"] == [{"config_name": "default", "data_files": [{"split": "train", "path": "experiences.jsonl"}]}]
    info = meta["ted"]
    assert info["student"]["model"] == "gemma-3-270m" and info["teacher"]["backend"] == "llama_cpp"
    assert info["source"]["dataset"] == "local/arith" and info["source"]["revision"] == "abc123"
    assert info["budget"]["max_tokens"] == 600 and info["compression"] == "teacher" and info["version"] == "v1"
    assert info["metrics"] == {"task": "ted_demo", "without_library": 0.4, "with_library": 0.6, "delta": 0.2}
    for section in ("## What this library is", "## How to use it", "## Experiences", "## Learning curve",
                    "## Cost of distillation", "## Limitations", "## Citation"):
        assert section in body
    assert "TED: Training-Free Experience Distillation for Multimodal Reasoning" in body and "25 Mar 2026" in body
    assert 'ted.load_library("alice/carded@v1")' in body and "lm_eval --model local-chat-completions" in body
    assert 'datasets.load_dataset("alice/carded", revision="v1", split="train")' in body
    for image in ("assets/learning_curve.png", "assets/usage.png"):
        assert f"]({image})" in body and (result.folder / image).is_file()

    # What the dataset viewer does: load the folder through the card's `configs`.
    import datasets

    rows = datasets.load_dataset(str(result.folder), split="train")
    assert rows["id"] == ["E1", "E2", "E3"] and rows["text"] == LESSONS


def test_source_datasets_holds_only_hub_ids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "train").mkdir(parents=True)
    lib = Library.load(make_library(tmp_path / "lib.json", LESSONS))
    for dataset, expected in [("MathLLMs/MathVision", ["MathLLMs/MathVision"]), ("gsm8k", ["gsm8k"]), ("data/train", None),
                              ("out/demo/problems.jsonl", None), ("/abs/problems.csv", None), ("../x/y", None)]:  # fmt: skip
        lib.source.dataset = dataset
        meta, _ = split_card(render_card(lib, ref="alice/x@v1"))
        assert meta.get("source_datasets") == expected, dataset


# --------------------------------------------------------------------------- versions
def test_versions_are_listed_in_version_order(hub: HubServer, api_kw: dict[str, str], cli_env: dict[str, str], tmp_path: Path) -> None:
    push_kw = {"endpoint": api_kw["endpoint"]}
    first = ted.push_library(make_library(tmp_path / "a.json", LESSONS[:1]), "alice/versioned", **push_kw)
    second = ted.push_library(make_library(tmp_path / "b.json", LESSONS[:2]), "alice/versioned", **push_kw)
    tenth = ted.push_library(make_library(tmp_path / "c.json", LESSONS), "alice/versioned", version="v10", **push_kw)
    after = ted.push_library(make_library(tmp_path / "d.json", LESSONS[1:], with_library=0.7), "alice/versioned", **push_kw)
    assert isinstance(first, PushResult)
    assert [first.version, second.version, tenth.version, after.version] == ["v1", "v2", "v10", "v11"]

    rows = ted.list_versions("alice/versioned", **api_kw)
    assert all(isinstance(r, VersionInfo) for r in rows)
    assert [(r.version, r.items, r.with_library) for r in rows] == [("v1", 1, 0.55), ("v2", 2, 0.55), ("v10", 3, 0.55), ("v11", 2, 0.7)]
    assert [r.commit for r in rows] == [first.commit, second.commit, tenth.commit, after.commit]
    assert all(r.date is not None and r.tokens > 0 and r.baseline == 0.4 for r in rows)

    newest = ted.load_library("alice/versioned", **api_kw)
    assert [item.text for item in newest.items] == LESSONS[1:]
    assert len(ted.load_library("alice/versioned@v2", **api_kw).items) == 2

    listed = ted_cli(cli_env, "versions", "alice/versioned")
    assert listed.returncode == 0, listed.stderr
    order = [line.split("│")[1].strip() for line in listed.stdout.splitlines() if line.startswith("│")]
    assert order == ["v1", "v2", "v10", "v11"], listed.stdout
    assert "0.700" in listed.stdout and "0.400" in listed.stdout


def test_existing_version_is_refused_unless_forced(hub: HubServer, api_kw: dict[str, str], cli_env: dict[str, str], tmp_path: Path) -> None:
    old = make_library(tmp_path / "old.json", LESSONS[:2])
    new = make_library(tmp_path / "new.json", LESSONS)
    assert ted_cli(cli_env, "push", str(old), "alice/forced").returncode == 0
    before = tags_of(hub, "alice/forced")

    refused = ted_cli(cli_env, "push", str(new), "alice/forced", "--version", "v1")
    assert_one_line_error(refused, "alice/forced@v1 already exists", "--force")
    assert tags_of(hub, "alice/forced") == before and head_of(hub, "alice/forced") == before["v1"]

    forced = ted_cli(cli_env, "push", str(new), "alice/forced", "--version", "v1", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "replaced alice/forced@v1" in forced.stdout
    after = tags_of(hub, "alice/forced")
    assert set(after) == {"v1"} and after["v1"] != before["v1"]
    assert len(ted.load_library("alice/forced@v1", **api_kw).items) == 3


def test_diff_between_versions_and_local_files(hub: HubServer, api_kw: dict[str, str], cli_env: dict[str, str], tmp_path: Path) -> None:
    v1 = make_library(tmp_path / "v1.json", LESSONS[:2])
    lib = Library.load(v1)
    lib.delete(["E1"], step=9)
    lib.items[0].text = "Check the units of every intermediate and final quantity."
    lib.add("Estimate the answer's size before solving exactly.", 9)
    v2 = tmp_path / "v2.json"
    lib.save(v2)
    ted.push_library(v1, "alice/diffed", endpoint=api_kw["endpoint"])
    ted.push_library(v2, "alice/diffed", endpoint=api_kw["endpoint"])

    shown = ted_cli(cli_env, "diff", "alice/diffed@v1", "alice/diffed@v2")
    assert shown.returncode == 0, shown.stderr
    assert "1 added, 1 removed, 1 rewritten" in shown.stdout
    assert "+ [E3] Estimate the answer's size" in shown.stdout
    assert f"- [E1] {LESSONS[0]}" in shown.stdout
    assert f"~ [E2] {LESSONS[1]}" in shown.stdout and "→ Check the units of every intermediate" in shown.stdout

    mixed = ted_cli(cli_env, "diff", str(v2), "alice/diffed@v2")
    assert mixed.returncode == 0 and "0 added, 0 removed, 0 rewritten" in mixed.stdout


# --------------------------------------------------------------------------- cache and offline
def test_pulled_version_works_offline(hub: HubServer, cli_env: dict[str, str], tmp_path: Path) -> None:
    lib_path = make_library(tmp_path / "lib.json", LESSONS)
    assert ted_cli(cli_env, "push", str(lib_path), "alice/travel").returncode == 0
    online = ted_cli(cli_env, "pull", "alice/travel@v1")
    assert online.returncode == 0, online.stderr

    # Offline, and the endpoint points at a closed port: only the Hub cache can answer.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    offline = {**cli_env, "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": dead}
    for ref, out in (("alice/travel@v1", "by-tag"), ("alice/travel", "newest")):
        proc = ted_cli(offline, "pull", ref, "--out", str(tmp_path / out))
        assert proc.returncode == 0, proc.stderr
        assert (tmp_path / out / "library.json").read_bytes() == lib_path.read_bytes()
    assert_one_line_error(ted_cli(offline, "pull", "alice/never-pulled@v1"), "not in the local Hub cache")

    # Online again with the Hub unreachable: newest version also falls back to the cache.
    unreachable = {**cli_env, "HF_ENDPOINT": dead}
    assert ted_cli(unreachable, "pull", "alice/travel").returncode == 0


# --------------------------------------------------------------------------- bad input
def test_unknown_repo_and_unknown_version(hub: HubServer, cli_env: dict[str, str], tmp_path: Path) -> None:
    assert_one_line_error(ted_cli(cli_env, "pull", "alice/does-not-exist"), "alice/does-not-exist", "no such dataset")
    assert ted_cli(cli_env, "push", str(make_library(tmp_path / "l.json", LESSONS)), "alice/known").returncode == 0
    assert_one_line_error(ted_cli(cli_env, "pull", "alice/known@v9"), "no version 'v9'", "ted versions alice/known")
    assert_one_line_error(ted_cli(cli_env, "versions", "alice/does-not-exist"), "no such dataset")


def test_push_without_token_or_with_read_only_token(hub: HubServer, cli_env: dict[str, str], tmp_path: Path) -> None:
    lib_path = str(make_library(tmp_path / "lib.json", LESSONS))
    no_token = {k: v for k, v in cli_env.items() if k != "HF_TOKEN"}
    assert_one_line_error(ted_cli(no_token, "push", lib_path, "alice/no-token"), "no Hugging Face token", "HF_TOKEN")
    assert not (hub.root / "datasets/alice/no-token.git").exists()

    read_only = {**cli_env, "HF_TOKEN": READ}
    assert_one_line_error(ted_cli(read_only, "push", lib_path, "alice/read-only"), "cannot write to alice/read-only", "403")
    assert not (hub.root / "datasets/alice/read-only.git").exists()

    # An existing repo: creation is skipped, the commit itself is refused, nothing changes.
    assert ted_cli(cli_env, "push", lib_path, "alice/existing").returncode == 0
    before = (tags_of(hub, "alice/existing"), head_of(hub, "alice/existing"))
    assert_one_line_error(ted_cli(read_only, "push", lib_path, "alice/existing"), "cannot write", "Nothing was published")
    assert (tags_of(hub, "alice/existing"), head_of(hub, "alice/existing")) == before

    bogus = {**cli_env, "HF_TOKEN": "hf_not_a_real_token"}
    assert_one_line_error(ted_cli(bogus, "push", lib_path, "alice/bogus"), "rejected your token")


def test_network_failure_mid_push_publishes_nothing(hub: HubServer, cli_env: dict[str, str], api_kw: dict[str, str], tmp_path: Path) -> None:
    lib_path = str(make_library(tmp_path / "lib.json", LESSONS))
    assert ted_cli(cli_env, "push", lib_path, "alice/flaky").returncode == 0
    before = (tags_of(hub, "alice/flaky"), head_of(hub, "alice/flaky"))

    hub.fail_next("commit")  # the server drops the connection of the commit request
    failed = ted_cli(cli_env, "push", lib_path, "alice/flaky")
    assert_one_line_error(failed, "network error", "Nothing was published")
    assert (tags_of(hub, "alice/flaky"), head_of(hub, "alice/flaky")) == before

    # The commit lands but tagging fails: still no new version visible to anyone, and the error says
    # what is on the Hub (the commit, on main) rather than that nothing was published.
    hub.fail_next("tag")
    with pytest.raises(HubError, match=r"the files were committed \(\w+, on main.*v2 is not published"):
        ted.push_library(lib_path, "alice/flaky", endpoint=api_kw["endpoint"])
    assert tags_of(hub, "alice/flaky") == before[0]
    assert [r.version for r in ted.list_versions("alice/flaky", **api_kw)] == ["v1"]


def test_malformed_oversized_and_foreign_remote_libraries(hub: HubServer, cli_env: dict[str, str]) -> None:
    raw_commit(hub, "alice/garbage", {"library.json": b"{not json"})
    assert_one_line_error(ted_cli(cli_env, "pull", "alice/garbage@v1"), "alice/garbage@v1", "not valid JSON")

    wrong = {"format": "ted-library/1", "items": [{"id": "E1", "text": "x" * 5000}]}
    raw_commit(hub, "alice/long-item", {"library.json": json.dumps(wrong).encode()})
    assert_one_line_error(ted_cli(cli_env, "pull", "alice/long-item@v1"), "invalid library at items.0.text")

    many = {"format": "ted-library/1", "items": [{"id": f"E{i}", "text": "lesson"} for i in range(1, 800)]}
    raw_commit(hub, "alice/too-many", {"library.json": json.dumps(many).encode()})
    assert_one_line_error(ted_cli(cli_env, "pull", "alice/too-many@v1"), "over the cap of 500")

    huge = json.dumps({"format": "ted-library/1", "name": "x" * (MAX_FILE_BYTES + 10)}).encode()
    raw_commit(hub, "alice/huge", {"library.json": huge})
    downloads_before = hub.requests.count(("GET", "resolve"))
    assert_one_line_error(ted_cli(cli_env, "pull", "alice/huge@v1"), "over the 4,000,000-byte cap", "refusing to download")
    assert hub.requests.count(("GET", "resolve")) == downloads_before  # checked before any download

    raw_commit(hub, "alice/plain-dataset", {"README.md": b"---\nlicense: mit\n---\n# just data\n", "data.csv": b"a,b\n1,2\n"})
    assert_one_line_error(ted_cli(cli_env, "pull", "alice/plain-dataset@v1"), "not a ted library", "library.json")
    raw_commit(hub, "alice/untagged", {"data.csv": b"a\n1\n"}, tag=None)
    assert_one_line_error(ted_cli(cli_env, "pull", "alice/untagged"), "no published version")


def test_path_traversal_in_references(cli_env: dict[str, str], tmp_path: Path) -> None:
    for ref in ("alice/../../etc/passwd", "alice/x@../../v1", "../../etc/passwd", "alice//x", "..\\..\\x"):
        proc = ted_cli(cli_env, "pull", ref)
        assert_one_line_error(proc)
    assert "path traversal" in assert_one_line_error(ted_cli(cli_env, "pull", "alice/../x"))
    assert "not accepted here" in assert_one_line_error(ted_cli(cli_env, "pull", "../../etc/passwd"))
    assert "no such file" in assert_one_line_error(ted_cli(cli_env, "diff", "../nope.json", "./also-nope"))


def test_private_library_needs_its_owners_token(hub: HubServer, api_kw: dict[str, str], cli_env: dict[str, str], tmp_path: Path) -> None:
    proc = ted_cli(cli_env, "push", str(make_library(tmp_path / "l.json", LESSONS)), "alice/secret", "--private")
    assert proc.returncode == 0, proc.stderr
    assert len(ted.load_library("alice/secret@v1", **api_kw).items) == 3
    anonymous = {k: v for k, v in cli_env.items() if k != "HF_TOKEN"}
    assert_one_line_error(ted_cli(anonymous, "pull", "alice/secret@v1"), "no such dataset", "private")
    with pytest.raises(TedError):
        ted.load_library("alice/secret@v1", token=READ, **api_kw)


def test_api_errors_are_ted_errors(hub: HubServer, api_kw: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(LibraryError, match="push takes a local library"):
        ted.push_library("alice/elsewhere", "alice/target", endpoint=api_kw["endpoint"])
    with pytest.raises(LibraryError, match="not a version tag"):
        ted.push_library(make_library(tmp_path / "l.json", LESSONS), "alice/target", version="latest", endpoint=api_kw["endpoint"])
    with pytest.raises(LibraryError, match="local paths are not accepted"):
        ted.load_library(str(tmp_path / "l.json"), allow_local=False, **api_kw)
    # A local path that exists wins over the Hub; an Hub id that is not a local folder goes to the Hub.
    folder = tmp_path / "alice" / "target"
    folder.mkdir(parents=True)
    make_library(folder / "library.json", LESSONS[:1])
    monkeypatch.chdir(tmp_path)
    assert len(ted.load_library("alice/target", **api_kw).items) == 1
    with pytest.raises(HubError, match="no such dataset"):
        ted.load_library("alice/not-a-folder-here", **api_kw)


# --------------------------------------------------------------------------- main is the newest version
def test_forced_repush_of_an_older_version_moves_only_its_tag(
    hub: HubServer, api_kw: dict[str, str], cli_env: dict[str, str], tmp_path: Path
) -> None:
    v1, v2, new_v1 = (make_library(tmp_path / f"{n}.json", texts) for n, texts in (("v1", LESSONS[:1]), ("v2", LESSONS[:2]), ("n", LESSONS)))
    for path, version in ((v1, "v1"), (v2, "v2")):
        assert ted_cli(cli_env, "push", str(path), "alice/ordered", "--version", version).returncode == 0
    main_before = head_of(hub, "alice/ordered")
    forced = ted_cli(cli_env, "push", str(new_v1), "alice/ordered", "--version", "v1", "--force")
    assert forced.returncode == 0, forced.stderr

    assert head_of(hub, "alice/ordered") == main_before  # main did not move
    assert hub.git("dataset", "alice/ordered", "show", "main:library.json").encode() == v2.read_bytes()
    assert hub.git("dataset", "alice/ordered", "show", "v1:library.json").encode() == new_v1.read_bytes()
    assert hub.git("dataset", "alice/ordered", "for-each-ref", "--format=%(refname)", "refs/heads").split() == ["refs/heads/main"]
    # What readers of `main` get (hf_hub_download, load_dataset, the viewer) is what `ted pull` gets.
    from huggingface_hub import hf_hub_download

    on_main = hf_hub_download("alice/ordered", "library.json", repo_type="dataset", **api_kw)
    pulled = ted_cli(cli_env, "pull", "alice/ordered")
    assert pulled.returncode == 0 and "alice/ordered@v2" in pulled.stdout, pulled.stderr
    assert Path(pulled.stdout.strip().splitlines()[-1]).read_bytes() == Path(on_main).read_bytes() == v2.read_bytes()
    assert [(r.version, r.items) for r in ted.list_versions("alice/ordered", **api_kw)] == [("v1", 3), ("v2", 2)]

    # A new version above v2 goes on main again; a new one below it (v1.5) does not.
    ted.push_library(new_v1, "alice/ordered", version="v1.5.0", endpoint=api_kw["endpoint"])
    assert head_of(hub, "alice/ordered") == main_before
    third = ted.push_library(v1, "alice/ordered", endpoint=api_kw["endpoint"])
    assert third.version == "v3" and head_of(hub, "alice/ordered") == third.commit


def test_an_empty_library_is_refused(hub: HubServer, cli_env: dict[str, str], tmp_path: Path) -> None:
    empty = make_library(tmp_path / "empty.json", [])
    assert_one_line_error(ted_cli(cli_env, "push", str(empty), "alice/empty"), "no experiences", "nothing to publish")
    assert not (hub.root / "datasets/alice/empty.git").exists()


# --------------------------------------------------------------------------- LFS (and Xet)
def test_charts_go_through_lfs_and_come_back_byte_identical(hub: HubServer, cli_env: dict[str, str], tmp_path: Path) -> None:
    # Charts no other test of this module draws, so the object store does not hold them yet.
    lib_path = make_library(tmp_path / "lib.json", [f"Lesson {n}: draw the figure before computing." for n in range(1, 6)])
    rendered = tmp_path / "rendered"
    assert ted_cli(cli_env, "card", str(lib_path), "--out", str(rendered), "--ref", "alice/charts@v1").returncode == 0
    charts = {path: (rendered / path).read_bytes() for path in ("assets/learning_curve.png", "assets/usage.png")}
    oids = {hashlib.sha256(data).hexdigest(): len(data) for data in charts.values()}
    hub.lfs_log.clear()
    pushed = ted_cli(cli_env, "push", str(lib_path), "alice/charts")
    assert pushed.returncode == 0, pushed.stderr

    # Each PNG: a batch request, a PUT of exactly its bytes, a verify; nothing else went through LFS.
    for action in ("batch-upload", "upload", "verify"):
        assert sorted((oid, size) for a, oid, size in hub.lfs_log if a == action) == sorted(oids.items()), action
    # git holds LFS pointers for the PNGs and the text files inline, as on the Hub.
    for path, data in charts.items():
        pointer = hub.git("dataset", "alice/charts", "show", f"v1:{path}")
        assert pointer == f"version https://git-lfs.github.com/spec/v1\noid sha256:{hashlib.sha256(data).hexdigest()}\nsize {len(data)}\n"
    assert hub.git("dataset", "alice/charts", "show", "v1:library.json").encode() == lib_path.read_bytes()

    out = tmp_path / "pulled"
    pulled = ted_cli(cli_env, "pull", "alice/charts@v1", "--out", str(out))
    assert pulled.returncode == 0, pulled.stderr
    assert {path: (out / path).read_bytes() for path in charts} == charts
    assert sorted((oid, size) for a, oid, size in hub.lfs_log if a == "download") == sorted(oids.items())

    # A git-lfs client's download through the batch API gets the same bytes.
    import httpx

    oid, size = next(iter(oids.items()))
    batch = httpx.post(
        f"{hub.url}/datasets/alice/charts.git/info/lfs/objects/batch",
        json={"operation": "download", "transfers": ["basic"], "objects": [{"oid": oid, "size": size}]},
        headers={"Accept": "application/vnd.git-lfs+json", "Authorization": f"Bearer {WRITE}"},
    ).json()
    assert batch["transfer"] == "basic"
    assert httpx.get(batch["objects"][0]["actions"]["download"]["href"]).content in charts.values()


def test_with_xet_enabled_the_client_asks_for_xet_storage(hub: HubServer, cli_env: dict[str, str], tmp_path: Path) -> None:
    """huggingface_hub 2.x with hf_xet installed uploads LFS-mode files through Xet, without
    asking the server: against the real Hub that path is taken, and this server cannot serve it."""
    pytest.importorskip("hf_xet")  # a dependency of huggingface_hub 2.x on every platform CI runs
    env = {k: v for k, v in cli_env.items() if k != "HF_HUB_DISABLE_XET"}
    before = hub.requests.count(("GET", "xet-token"))
    proc = ted_cli(env, "push", str(make_library(tmp_path / "lib.json", LESSONS)), "alice/xet")
    assert_one_line_error(proc, "Xet storage failed", "Nothing was published", "HF_HUB_DISABLE_XET=1")
    assert hub.requests.count(("GET", "xet-token")) > before
    assert ("POST", "lfs-batch") not in hub.requests[-3:] and tags_of(hub, "alice/xet") == {}


# --------------------------------------------------------------------------- the card's own commands
def card_commands(card: str) -> tuple[list[list[str]], list[str]]:
    """The shell commands (argv lists) and Python snippets in a card's fenced code blocks."""
    commands, snippets = [], []
    for lang, code in re.findall(r"```(\w+)\n(.*?)```", card, re.DOTALL):
        if lang == "python":
            snippets.append(code)
        elif lang == "bash":
            commands += [shlex.split(line, comments=True) for line in code.replace("\\\n", " ").splitlines() if line.strip()]
    return commands, snippets


def test_every_command_on_the_card_runs(hub: HubServer, cli_env: dict[str, str], llama_server: Any, tmp_path: Path, free_port: int) -> None:
    from ted.cards import STUDENT_URL
    from tests.fixtures import benchmarks as fx

    lib_path = make_library(tmp_path / "lib.json", LESSONS, name="card-demo")
    lib = Library.load(lib_path)
    lib.metrics.task, lib.source.split = "aime", "test"  # the card names its lm-eval task, ted_aime
    lib.save(lib_path)
    assert ted_cli(cli_env, "push", str(lib_path), "alice/card-cmds").returncode == 0
    work = tmp_path / "user"
    work.mkdir()
    (work / "eval_tasks").symlink_to(REPO_ROOT / "eval_tasks")  # "from a checkout of ted"
    data = tmp_path / "data"
    fx.write_aime25(data).rename(data / "aime.jsonl")
    env = {**cli_env, "TED_DATA_DIR": str(data), "HF_DATASETS_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}  # fmt: skip
    card = hub.git("dataset", "alice/card-cmds", "show", "v1:README.md")
    commands, snippets = card_commands(card)
    assert sorted(c[0] if c[0] != "ted" else f"ted {c[1]}" for c in commands) == ["lm_eval", "ted chat", "ted pull", "ted show", "ted space"]
    assert len(snippets) == 2  # ted.load_library and datasets.load_dataset

    # The commands and snippets are independent: run them side by side, the Space last.
    runs, space = [], None
    for argv in commands:
        argv = [arg.replace(STUDENT_URL, llama_server.base_url) for arg in argv]
        if argv[0] == "ted":
            argv = [sys.executable, "-m", "ted.cli", *argv[1:]]
        if "space" in argv[:4]:
            space = argv + ["--port", str(free_port)]
            continue
        extra, stdin = {"chat": (["--max-tokens", "8"], "What is 2 + 2?\n\n"), "lm_eval": (["--limit", "1", "--gen_kwargs", "max_gen_toks=4"], None)}.get(
            argv[3] if argv[0] == sys.executable else argv[0], ([], None)
        )
        runs.append((argv + extra, env, stdin))
    runs += [([sys.executable, "-c", code], cli_env, None) for code in snippets]
    with ThreadPoolExecutor(len(runs)) as pool:
        done = list(pool.map(lambda r: subprocess.run(r[0], env=r[1], cwd=work, input=r[2], capture_output=True, text=True, timeout=600), runs))
    for (argv, _, _), proc in zip(runs, done):
        assert proc.returncode == 0, (argv, proc.stderr[-2000:])
        if "show" in argv or argv[1] == "-c":
            assert LESSONS[0][:40] in proc.stdout or "[E1]" in proc.stdout, (argv, proc.stdout)
    assert (work / "library" / "library.json").read_bytes() == lib_path.read_bytes()
    assert space is not None
    check_space_serves(space, env, work, free_port)


def check_space_serves(argv: list[str], env: dict[str, str], cwd: Path, port: int) -> None:
    """`ted space …` comes up and offers the card's library."""
    from tests.processes import stop
    from tests.support import wait_for_gradio_config

    process = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        config = wait_for_gradio_config(process, port)
        labels = [c[0] for comp in config["components"] if comp.get("props", {}).get("elem_id") == "library" for c in comp["props"]["choices"]]
        assert any("alice/card-cmds" in label for label in labels), labels
    finally:
        stop(process)


# --------------------------------------------------------------------------- every published repo loads (keep last)
def test_every_published_repo_loads_with_datasets(hub: HubServer, cli_env: dict[str, str]) -> None:
    """`datasets.load_dataset` on `main` and on every tag of every ted-published repo of this module."""
    published = sorted(
        str(git.relative_to(hub.root / "datasets"))[: -len(".git")]
        for git in (hub.root / "datasets").glob("*/*.git")
        if "Publish " in hub.git("dataset", str(git.relative_to(hub.root / "datasets"))[: -len(".git")], "log", "--all", "--format=%s")
    )
    assert len(published) >= 10
    code = """
import json, sys, datasets
for repo, revisions in json.loads(sys.argv[1]).items():
    for revision, items in revisions.items():
        rows = datasets.load_dataset(repo, revision=revision, split="train")
        assert rows["id"] == items, (repo, revision, rows["id"], items)
print("loaded", sum(map(len, json.loads(sys.argv[1]).values())))
"""
    expected = {}
    for repo in published:
        revisions = ["main", *(t for t in hub.git("dataset", repo, "tag").split())]
        expected[repo] = {
            rev: [item["id"] for item in json.loads(hub.git("dataset", repo, "show", f"{rev}:library.json"))["items"]] for rev in revisions
        }
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(expected)], env=cli_env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"loaded {sum(map(len, expected.values()))}" in proc.stdout


def test_push_takes_the_reference_pull_takes_and_every_report_parses_as_json(hub: HubServer, cli_env: dict[str, str], tmp_path: Path) -> None:
    """`ted push LIB org/name@v3` (one reference form for push and pull), and `--json` on push, pull,
    versions and diff gives one parseable object with the same facts the text output says."""
    first, second = make_library(tmp_path / "a.json", LESSONS[:2]), make_library(tmp_path / "b.json", LESSONS)
    pushed = ted_cli(cli_env, "push", str(first), "alice/reffed@v3", "--json")
    assert pushed.returncode == 0, pushed.stderr
    shown = json.loads(pushed.stdout) | {"commit": "", "url": "", "files": []}
    assert shown == {"repo_id": "alice/reffed", "version": "v3", "replaced": False, "commit": "", "url": "", "files": [], "license": "unknown"}
    assert set(tags_of(hub, "alice/reffed")) == {"v3"}
    assert ted_cli(cli_env, "push", str(second), "alice/reffed").returncode == 0  # no version: the next one, v4

    clash = ted_cli(cli_env, "push", str(second), "alice/reffed@v5", "--version", "v6")
    assert_one_line_error(clash, "two versions")
    assert clash.returncode == 2 and set(tags_of(hub, "alice/reffed")) == {"v3", "v4"}

    pulled = json.loads(ted_cli(cli_env, "pull", "alice/reffed@v3", "--json").stdout)
    assert (pulled["version"], pulled["items"]) == ("v3", 2) and Path(pulled["library_file"]).is_file()
    listed = json.loads(ted_cli(cli_env, "versions", "alice/reffed", "--json").stdout)
    assert [(row["version"], row["items"]) for row in listed] == [("v3", 2), ("v4", 3)]
    changes = json.loads(ted_cli(cli_env, "diff", "alice/reffed@v3", "alice/reffed@v4", "--json").stdout)
    assert [item["text"] for item in changes["added"]] == LESSONS[2:] and changes["removed"] == []

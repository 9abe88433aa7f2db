"""Library references, version ordering and card rendering: the parts of ted.hub / ted.cards
that need no server (the Hub round trips are in tests/integration/test_hub.py)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ted.cards import experiences_jsonl, render_card, render_files, split_card
from ted.errors import LibraryError
from ted.hub import LibraryRef, next_version, newest_version, parse_ref, render_folder, version_key
from ted.library import CurvePoint, Library
from tests.support import CHECKOUT


def test_hub_references() -> None:
    assert parse_ref("alice/lib") == LibraryRef("hub", repo_id="alice/lib")
    assert parse_ref("alice/lib@v2") == LibraryRef("hub", repo_id="alice/lib", version="v2")
    assert parse_ref("Org-1/my_lib.v2@v1.0.0") == LibraryRef("hub", repo_id="Org-1/my_lib.v2", version="v1.0.0")
    with pytest.raises(LibraryError, match="spaces or a newline"):  # matched exactly, never trimmed (docs/limits.md)
        parse_ref(" Org-1/my_lib.v2@v1.0.0 ")
    assert str(parse_ref("alice/lib@v2")) == "alice/lib@v2"


@pytest.mark.parametrize(
    "ref",
    [
        "alice/../etc", "../alice/lib", "alice/lib@../../v1", "alice/lib@v1/../x", "/no/such/lib", "alice//lib",
        "alice/lib/extra", "alice\\lib", "alice/.hidden", "alice/lib@", "alice/lib@-rf", "a--b/lib", "lib",
        "alice/lib@v1@v2", "", "~/lib.json", "alice/lib.json",
    ],
)
def test_bad_references_are_refused(ref: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # nothing exists here, so nothing is taken as a local path
    with pytest.raises(LibraryError):
        parse_ref(ref)


def test_local_paths_win_only_when_they_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "alice" / "lib").mkdir(parents=True)
    assert parse_ref("alice/lib") == LibraryRef("local", path=Path("alice/lib"))
    assert parse_ref("alice/other").kind == "hub"
    with pytest.raises(LibraryError, match="no such file"):
        parse_ref("./missing.json")
    with pytest.raises(LibraryError, match="not accepted here"):
        parse_ref("./alice/lib", allow_local=False)
    assert parse_ref("alice/lib", allow_local=False).kind == "hub"


def test_version_order_and_next_version() -> None:
    tags = ["v2", "v10", "v1", "v1.10.0", "v1.9.3", "latest", "main", "v3-rc"]
    versions = sorted((t for t in tags if version_key(t)), key=lambda t: version_key(t) or (0, 0, 0))
    assert versions == ["v1", "v1.9.3", "v1.10.0", "v2", "v10"]
    assert newest_version(tags) == "v10" and newest_version(["main"]) is None
    assert next_version([]) == "v1" and next_version(["v1", "v2"]) == "v3" and next_version(["v1.4.0", "main"]) == "v2"


def hostile_library() -> Library:
    lib = Library(name="evil\n---\nlicense: stolen", student={"model": "x`; rm -rf ~ #"}, source={"dataset": "<img src=x>"})
    lib.add("Close the table | then <script>alert(1)</script> and **shout**", 1).usage = 2
    lib.add("A plain lesson.", 2)
    lib.metrics.curve = [CurvePoint(epoch=1, val_accuracy="NaN"), CurvePoint(epoch=2, val_accuracy=float("inf"), items=2)]
    return lib


def test_card_metadata_survives_hostile_text() -> None:
    card = render_card(hostile_library(), ref="alice/lib@v1", version="v1")
    meta, body = split_card(card)
    assert meta["license"] == "unknown" and meta["ted"]["name"] == "evil --- license: stolen"  # no license given: none picked
    assert "source_datasets" not in meta  # the Hub links Hub dataset ids only; "<img src=x>" is not one
    assert "<script>" not in body and "<img" not in body
    row = next(line for line in body.splitlines() if line.startswith("| E1 |"))
    assert row.count(" | ") == 3  # the lesson's `|` is escaped, so the row keeps four cells
    commands = "".join(body.split("```")[1::2])
    assert "rm -rf" not in commands and "model=STUDENT_MODEL" in commands  # an unsafe model id stays out of commands
    assert "No learning curve" not in body and "| 1 | — |" in body  # non-numeric curve values shown as —


def test_render_files_and_folder(tmp_path: Path) -> None:
    lib = hostile_library()
    files = render_files(lib, ref="alice/lib@v1", version="v1")
    assert set(files) == {"README.md", "experiences.jsonl", "assets/usage.png"}  # no finite accuracy: no curve chart
    assert experiences_jsonl(lib).count(b"\n") == 2
    source = tmp_path / "lib.json"
    lib.save(source)
    written = render_folder(source, tmp_path / "out", ref="alice/lib@v1")
    assert written == ["README.md", "assets/usage.png", "experiences.jsonl", "library.json"]
    assert (tmp_path / "out/library.json").read_bytes() == Library.load(source).to_json().encode()  # re-serialised, never copied
    assert yaml.safe_load((tmp_path / "out/README.md").read_text().split("---\n")[1])["configs"]


def test_import_ted_stays_light() -> None:
    code = "import sys, ted; ted.load_library; print('huggingface_hub' in sys.modules, 'matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_card_names_the_lm_eval_task_of_the_library() -> None:
    lib = Library(source={"split": "testmini"})
    lib.metrics.task = "mathvision"
    assert "--tasks ted_mathvision_testmini " in render_card(lib, ref="alice/lib@v1")
    lib.metrics.task = "generic"
    body = render_card(lib, ref="alice/lib@v1")
    assert "--tasks TASK " in body and "replace `TASK` with one of `ted_mathvision`" in body
    assert """--metadata '{"library": "alice/lib@v1"}'""" in body and "ted eval --task" not in body


@pytest.mark.parametrize("task", ["rg:chain_sum", "rg:chain_sum?split=test&n=200&seed=3"])
def test_a_reasoning_gym_librarys_card_names_ted_rg_and_its_problems(task: str) -> None:
    """Distilled on `rg:NAME` (or scored by `ted eval --task rg:NAME?… --record`): `ted_rg` with the
    problems in `--metadata`, and `ted eval --task` with the same spec, not "no lm-eval task"."""
    lib = Library()
    lib.metrics.task = task
    body = render_card(lib, ref="alice/lib@v1")
    assert "--tasks ted_rg " in body and "no lm-eval task" not in body
    (metadata,) = re.findall(r"--metadata '([^']*)'", body)
    assert json.loads(metadata) == {"library": "alice/lib@v1", "rg": task}
    assert f"ted eval --task '{task}' --library alice/lib@v1 " in body


def test_a_reasoning_gym_task_that_could_break_the_command_is_left_out() -> None:
    lib = Library()
    lib.metrics.task = "rg:chain_sum?n=1'; touch pwned; echo '"
    body = render_card(lib, ref="alice/lib@v1")
    commands = "".join(re.findall(r"```bash\n(.*?)```", body, re.DOTALL))
    assert "--tasks TASK " in commands and "pwned" not in commands and "ted eval --task" not in commands


def test_example_cards_are_current(tmp_path: Path) -> None:
    """The example libraries kept in the repo carry the card today's template renders."""
    examples = sorted((CHECKOUT / "library_cards" / "examples").glob("*/library.json"))
    assert examples, "library_cards/examples/ should hold at least one example library"
    for library_file in examples:
        render_folder(library_file, tmp_path / library_file.parent.name)
        for name in ("README.md", "experiences.jsonl"):
            fresh = (tmp_path / library_file.parent.name / name).read_text()
            assert fresh == (library_file.parent / name).read_text(), f"re-render {library_file.parent} with `ted card`"


def test_card_validates_as_a_hub_dataset_card_with_the_publishers_license() -> None:
    """The front matter is what `huggingface_hub.DatasetCard` reads: language, machine-generated
    creators, a generation task category and the license the publisher gave, not one ted picked."""
    from huggingface_hub import DatasetCard, DatasetCardData

    card = DatasetCard(render_card(hostile_library(), ref="alice/lib@v1", version="v1", license="cc-by-4.0"))
    data = card.data
    assert isinstance(data, DatasetCardData) and data.license == "cc-by-4.0" and data.language == ["en"]
    assert data.language_creators == data.annotations_creators == ["machine-generated"]
    assert data.task_categories == ["text-generation"] and data.size_categories == ["n<1K"]
    assert data.configs[0]["data_files"][0]["path"] == "experiences.jsonl" and data.ted["items"] == 2
    assert DatasetCardData(**data.to_dict()).to_dict() == data.to_dict()  # nothing the card type drops

import json
from pathlib import Path

import pytest

from ted.errors import LibraryError
from ted.library import MAX_ITEMS, Budget, Library, clean_text, diff


def make(n: int = 3) -> Library:
    lib = Library(name="t")
    for i in range(n):
        lib.add(f"Lesson number {chr(97 + i)}: check the units before concluding.", step=i)
    return lib


def test_save_load_roundtrip_is_byte_identical(tmp_path):
    lib = make()
    lib.items[0].usage = 4
    path = lib.save(tmp_path / "library.json")
    again = Library.load(tmp_path)  # a folder holding library.json resolves too
    assert again == lib
    assert again.to_json() == path.read_text()


def test_render_is_stable_and_in_id_order():
    lib = make(3)
    shuffled = Library.model_validate({**lib.model_dump(), "items": list(reversed(lib.model_dump()["items"]))})
    assert shuffled.render() == lib.render()
    lines = [line for line in lib.render().splitlines() if line.startswith("[E")]
    assert [line.split("]")[0] for line in lines] == ["[E1", "[E2", "[E3"]
    assert Library().render() == ""


def test_ids_are_never_reused():
    lib = make(3)
    lib.delete(["E3"], step=4)
    assert lib.add("A new general lesson about checking work.", 5).id == "E4"
    reloaded = Library.from_json(lib.to_json())
    assert reloaded.add("Another general lesson for the student.", 6).id == "E5"


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.update(format="other/1"), "format"),
        (lambda d: d["items"].append(dict(d["items"][0])), "duplicate experience id"),
        (lambda d: d["items"][0].update(text="hidden\u200binstruction"), "invisible"),
        (lambda d: d["items"][0].update(text="bell\x07"), "control"),
        (lambda d: d["items"][0].update(text="x" * 5000), "items.0.text"),
        (lambda d: d["items"][0].update(id="../E1"), "items.0.id"),
        (lambda d: d["items"][0].update(usage=-1), "items.0.usage"),
        (lambda d: d.update(items=[{"id": f"E{i + 1}", "text": "t"} for i in range(MAX_ITEMS + 1)]), "over the cap"),
        (lambda d: d.update(surprise=1), "surprise"),
    ],
)
def test_invalid_libraries_are_refused_with_one_line(mutate, message):
    data = json.loads(make().to_json())
    mutate(data)
    with pytest.raises(LibraryError) as err:
        Library.from_json(json.dumps(data))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_load_refuses_missing_malformed_and_huge_files(tmp_path):
    with pytest.raises(LibraryError, match="no library file"):
        Library.load(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(LibraryError, match="not valid JSON"):
        Library.load(bad)
    huge = tmp_path / "huge.json"
    huge.write_bytes(b" " * 5_000_000)
    with pytest.raises(LibraryError, match="cap"):
        Library.load(huge)


def test_budget_fit_counts_rendered_tokens():
    lib = make(3)
    tokens = lib.tokens()
    lib.budget = Budget(max_tokens=tokens, max_items=3)
    assert lib.fits()
    lib.budget = Budget(max_tokens=tokens - 1, max_items=3)
    assert not lib.fits()
    lib.budget = Budget(max_tokens=10_000, max_items=2)
    assert not lib.fits()


def test_diff_reports_added_removed_changed():
    a = make(3)
    b = a.copy_deep()
    b.delete(["E1"], step=9)
    b.get("E2").text = "Rewritten: restate the givens first."
    b.get("E3").usage = 7
    b.add("Fresh lesson about drawing a diagram first.", 9)
    d = diff(a, b)
    assert [e.id for e in d.added] == ["E4"]
    assert [e.id for e in d.removed] == ["E1"]
    assert [(x.id, y.text) for x, y in d.changed] == [("E2", "Rewritten: restate the givens first.")]
    assert d.usage == [("E3", 0, 7)]


def test_clean_text_strips_invisible_and_controls():
    assert clean_text(" a\u200b b\n\tc\x00 ") == "a b c"


def test_atomic_save_leaves_no_temp_files(tmp_path):
    make().save(tmp_path / "lib.json")
    make(2).save(tmp_path / "lib.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lib.json"]
    assert len(Library.load(tmp_path / "lib.json").items) == 2


def test_history_is_capped_so_a_long_run_always_loads_again(monkeypatch):
    import ted.library.model as library

    monkeypatch.setattr(library, "MAX_HISTORY", 5)
    lib = make(1)
    for step in range(8):
        lib.log(step, "rewrite", ["E1"])
    assert [h.step for h in lib.history] == [3, 4, 5, 6, 7]


def test_write_folder_leaves_nothing_half_written_when_a_write_fails(tmp_path: Path) -> None:
    """A full disk or a read-only folder mid-way (here: a name the file system refuses, as the third file)."""
    from ted.files import write_folder

    files: dict[str, str | bytes] = {"library.json": "{}", "README.md": "# card", "x" * 300: b"too long a name"}
    with pytest.raises(OSError):
        write_folder(tmp_path / "card", files)
    assert list(tmp_path.iterdir()) == []  # no card folder, no staging folder
    (tmp_path / "card").mkdir()
    (tmp_path / "card" / "README.md").write_text("old")
    with pytest.raises(OSError):
        write_folder(tmp_path / "card", files)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["card"] and (tmp_path / "card" / "README.md").read_text() == "old"
    write_folder(tmp_path / "card", {"library.json": "{}", "README.md": "# new"})
    assert (tmp_path / "card" / "README.md").read_text() == "# new" and sorted(p.name for p in tmp_path.iterdir()) == ["card"]

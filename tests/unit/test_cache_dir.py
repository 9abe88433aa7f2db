"""ted's cache folder: TED_CACHE, else the platform's user cache folder (platformdirs)."""

from pathlib import Path

import pytest

from ted.files import cache_dir


def test_ted_cache_wins_then_the_platform_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TED_CACHE", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("TED_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # what platformdirs reads on Linux
    assert cache_dir() == tmp_path / "xdg" / "ted"

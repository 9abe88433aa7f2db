"""The documentation as a reader meets it: a README that is a front page whose links resolve, every
docs page reachable from it, and the site (mkdocs-material) built in strict mode: a broken link or
anchor fails the build."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
FRONT_PAGE_BYTES = 12_000  # a front page (about 10 KB); the rest belongs in docs/
_LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")


def _local_links(page: Path) -> list[str]:
    return [target for target in _LINK.findall(page.read_text(encoding="utf-8")) if "://" not in target]


def test_the_readme_is_a_front_page_whose_links_resolve() -> None:
    assert len(README.read_bytes()) <= FRONT_PAGE_BYTES
    links = _local_links(README)
    assert links and all((ROOT / target).exists() for target in links), [t for t in links if not (ROOT / t).exists()]


def test_every_docs_page_is_linked_from_the_readme_or_the_docs_home() -> None:
    linked = {(ROOT / target).resolve() for target in _local_links(README)}
    linked |= {(DOCS / target).resolve() for target in _local_links(DOCS / "index.md")}
    pages = {page.resolve() for page in DOCS.glob("*.md")}
    assert pages - {(DOCS / "index.md").resolve()} <= linked, sorted(p.name for p in pages - linked)


def test_the_site_builds_with_no_broken_link(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
        capture_output=True, text=True, timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    assert (tmp_path / "site" / "index.html").is_file() and (tmp_path / "site" / "evaluate" / "index.html").is_file()

"""What PyPI and GitHub read from the repository: the license, the citation, the project links."""

import tomllib

import yaml

from ted.cards import PAPER_ARXIV, PAPER_AUTHORS, PAPER_TITLE
from tests.support import CHECKOUT

ROOT = CHECKOUT


def test_citation_cff_cites_the_paper_the_cards_cite() -> None:
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software" and cff["authors"]
    paper = cff["preferred-citation"]
    assert paper["title"] == PAPER_TITLE and PAPER_ARXIV in paper["url"]
    assert " and ".join(f"{a['given-names']} {a['family-names']}" for a in paper["authors"]) == PAPER_AUTHORS


def test_license_file_and_project_urls() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0" and "Version 2.0, January 2004" in (ROOT / "LICENSE").read_text()
    assert project["urls"]["Paper"].endswith(PAPER_ARXIV)

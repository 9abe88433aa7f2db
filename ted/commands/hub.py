"""`ted push`, `ted pull`, `ted versions`, `ted diff`, `ted card`: libraries on the Hugging Face Hub.

The work is done by `ted.hub` (imported inside each command, so `ted --help` stays fast); these
functions only parse options and print. Errors are `TedError`s: one line, non-zero exit.
"""

from pathlib import Path
from typing import Annotated, Optional

import functools
import re
from dataclasses import asdict
from typing import TYPE_CHECKING

import typer

from ted.commands.options import JsonFlag, print_json

if TYPE_CHECKING:  # rich loads inside the commands: `ted` imports this module at every start-up
    from rich.console import Console


@functools.cache
def _console() -> "Console":
    from rich.console import Console

    return Console(highlight=False)


_LICENSE_RE = re.compile(r"[a-z0-9][a-z0-9.+-]{0,63}\Z")  # the Hub's license ids: cc-by-4.0, apache-2.0, openrail++, other


def _license_id(value: Optional[str]) -> Optional[str]:
    """The id goes into the card's YAML front matter: one lower-case token, as the Hub lists them
    (a newline or a colon would be a different license, or another metadata field, to a reader)."""
    if value is not None and not _LICENSE_RE.match(value):
        raise typer.BadParameter(f"{value!r} is not a license id; use one the Hub lists, e.g. cc-by-4.0, apache-2.0, mit or other")
    return value


LicenseFlag = Annotated[
    Optional[str],
    typer.Option(
        "--license",
        callback=_license_id,
        help="License id for the card (e.g. cc-by-4.0, apache-2.0): yours to choose, as the lessons derive from your data and the teacher's outputs; none given: `unknown`, and said so.",
    ),
]


def _quiet_downloads() -> None:
    """Library files are tiny: progress bars would only clutter the output."""
    from huggingface_hub.utils import disable_progress_bars

    disable_progress_bars()


def push(
    library: Annotated[str, typer.Argument(help="A local library: library.json or a folder holding one.")],
    repo_id: Annotated[str, typer.Argument(metavar="ORG/NAME[@VERSION]", help="Hub dataset to publish to (created if needed), with the version tag (vN or vX.Y.Z; default: the next vN), as `ted pull` takes it.")],
    version: Annotated[Optional[str], typer.Option("--version", hidden=True, help="The version tag, as ORG/NAME@VERSION gives it.")] = None,
    private: Annotated[bool, typer.Option("--private", help="Create the dataset as private (only when it is new).")] = False,
    message: Annotated[Optional[str], typer.Option("--message", "-m", help="Commit message.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace a version that already exists.")] = False,
    license: LicenseFlag = None,
    as_json: JsonFlag = False,
) -> None:
    """Publish a library as a versioned Hub dataset: one commit (library, card, rows, charts) and a tag."""
    from ted.hub import push_library

    _quiet_downloads()
    result = push_library(library, repo_id, version=version, private=private, message=message, force=force, license=license)
    if as_json:
        print_json(asdict(result))
        return
    action = "replaced" if result.replaced else "published"
    _console().print(f"{action} {result.repo_id}@{result.version} (commit {result.commit[:10]}, license {result.license}{'' if license else ': pass --license ID to state one'})", markup=False)
    _console().print(result.url, soft_wrap=True, markup=False)


def pull(
    ref: Annotated[str, typer.Argument(metavar="ORG/NAME[@VERSION]", help="Hub library; no version means the newest.")],
    out: Annotated[Optional[Path], typer.Option("--out", help="Also copy the files into this folder.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite files in --out that differ.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Download a published library into the Hub cache (usable offline afterwards), and into --out."""
    from ted.hub import pull_library

    _quiet_downloads()
    result = pull_library(ref, out=out, force=force)
    if as_json:
        print_json({"repo_id": result.repo_id, "version": result.version, "commit": result.commit, "library_file": result.library_file, "items": len(result.library.items)})
        return
    _console().print(f"pulled {result.repo_id}@{result.version} (commit {result.commit[:10]}): {len(result.library.items)} experiences")
    _console().print(str(result.library_file), soft_wrap=True, markup=False)


def versions(repo_id: Annotated[str, typer.Argument(metavar="ORG/NAME")], as_json: JsonFlag = False) -> None:
    """List the published versions of a library: date, size and scores with and without it."""
    from rich.table import Table

    from ted.cards import fmt_score
    from ted.shown import literal
    from ted.hub import list_versions

    _quiet_downloads()
    rows = list_versions(repo_id)
    if as_json:
        print_json([asdict(row) for row in rows])
        return
    if not rows:
        _console().print(f"{repo_id}: no published versions yet")
        return
    table = Table(title=f"{repo_id}: {len(rows)} version(s)", title_justify="left")
    for column in ("version", "date", "commit", "items", "tokens", "task", "without", "with"):
        table.add_column(column, justify="right" if column in ("items", "tokens", "without", "with") else "left", no_wrap=column != "task")
    for row in rows:
        table.add_row(
            row.version,
            row.date.strftime("%Y-%m-%d %H:%M") if row.date else "—",
            row.commit[:10],
            "—" if row.items is None else str(row.items),
            "—" if row.tokens is None else str(row.tokens),
            literal(f"unreadable: {row.problem}" if row.problem else row.task or "—"),
            fmt_score(row.baseline),
            fmt_score(row.with_library),
        )
    _console().print(table)


def diff(
    ref_a: Annotated[str, typer.Argument(help="Library reference: a file, a folder, org/name or org/name@vN.")],
    ref_b: Annotated[str, typer.Argument(help="Library reference to compare with.")],
    as_json: JsonFlag = False,
) -> None:
    """Show the experiences added, removed and rewritten between two libraries (matched by ID)."""
    from ted.hub import load_library
    from ted.library import diff as library_diff
    from ted.shown import literal

    _quiet_downloads()
    changes = library_diff(load_library(ref_a), load_library(ref_b))
    if as_json:
        print_json(
            {
                "added": [{"id": i.id, "text": i.text} for i in changes.added],
                "removed": [{"id": i.id, "text": i.text} for i in changes.removed],
                "rewritten": [{"id": a.id, "before": a.text, "after": b.text} for a, b in changes.changed],
                "usage": [{"id": i, "before": old, "after": new} for i, old, new in changes.usage],
            }
        )
        return
    _console().print(
        f"{literal(ref_a)} → {literal(ref_b)}: {len(changes.added)} added, {len(changes.removed)} removed, "
        f"{len(changes.changed)} rewritten, {len(changes.usage)} usage changes"
    )
    for item in changes.added:
        _console().print(f"[green]+ [{item.id}] {literal(item.text)}[/green]", soft_wrap=True)
    for item in changes.removed:
        _console().print(f"[red]- [{item.id}] {literal(item.text)}[/red]", soft_wrap=True)
    for before, after in changes.changed:
        _console().print(f"[yellow]~ [{before.id}] {literal(before.text)}[/yellow]", soft_wrap=True)
        _console().print(f"[yellow]  → {literal(after.text)}[/yellow]", soft_wrap=True)
    for item_id, old, new in changes.usage:
        _console().print(f"  usage {item_id}: {old} → {new}")


def card(
    library: Annotated[str, typer.Argument(help="A local library: library.json or a folder holding one.")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write the Hub layout into.")],
    ref: Annotated[Optional[str], typer.Option("--ref", help="Reference shown in the card's usage commands (default ORG/NAME@VERSION).")] = None,
    license: LicenseFlag = None,
) -> None:
    """Render a library's card, rows and charts locally: exactly what `ted push` would upload."""
    from ted.hub import render_folder

    for path in render_folder(library, out, ref=ref, license=license):
        _console().print(str(out / path), soft_wrap=True, markup=False)


def register(app: typer.Typer) -> None:
    for command in (push, pull, versions, diff, card):
        app.command()(command)

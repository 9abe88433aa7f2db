"""Publish, version and fetch experience libraries as Hugging Face Hub datasets (DESIGN §3–4).

**References** (`org/name[@version]` or a local path) are parsed by `ted.hub_refs`; `load_library(ref)`
resolves one the same way everywhere (`ted show`, `ted chat`, `ted diff`, the eval tasks, the Space).

**Trust.** A downloaded library is untrusted: file sizes are checked against the caps from the
repo listing before anything is downloaded, `library.json` is validated and capped by
`Library.load`, and nothing is executed or unpickled. Only the files of the ted layout are fetched.

**Publishing.** `push_library` makes one commit (library.json as ted re-serialises it, experiences.jsonl,
README.md card, charts), then tags it with the version. The tag is created only after the commit
succeeded, so a failure mid-push publishes nothing. An existing version is refused unless
`force=True`. A library with no experiences is refused: its `experiences.jsonl` would be empty,
and `datasets.load_dataset(repo)` and the dataset viewer fail on a config with no rows.

**`main` is always the newest version**, because `load_dataset(repo)`, `hf_hub_download`, the
viewer and the repo page read `main` while `ted pull repo` takes the highest tag. A version at
least as high as every published one is committed on `main`. An older one (a forced re-push of
v1 after v2, or a new v1.5) is committed off-branch: on a temporary branch started at that
version's commit (or at `main`), tagged, and the branch deleted, so only the tag moves.

**Hub access.** Everything goes through `huggingface_hub`: the token comes from `HF_TOKEN` or
the saved login (`hf auth login`), the endpoint from `HF_ENDPOINT`, files are cached in the Hub
cache, and with `HF_HUB_OFFLINE=1` a version pulled before is served from that cache.
`huggingface_hub` is imported inside the functions, so `import ted.hub` stays light.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ted.cards import (
    CARD_FILE,
    CURVE_IMAGE,
    UNSTATED_LICENSE,
    EXPERIENCES_FILE,
    LIBRARY_FILE,
    USAGE_IMAGE,
    library_tokens,
    render_files,
)
from ted.errors import ConfigError, LibraryError
from ted.files import atomic_write, read_capped, write_folder
from ted.hub_client import MAX_ASSET_BYTES, REPO_TYPE, HubError, _Hub
from ted.hub_refs import LibraryRef, newest_version, next_version, parse_ref, version_key
from ted.library import Library
from ted.redact import scrub_text
from ted.shown import visible
from ted.repo_ids import check_repo_id, check_revision

if TYPE_CHECKING:
    from huggingface_hub import HfApi

LAYOUT = (LIBRARY_FILE, EXPERIENCES_FILE, CARD_FILE, CURVE_IMAGE, USAGE_IMAGE)
"""The files of a published version; only these are ever downloaded."""

# --------------------------------------------------------------------------- typed results
@dataclass(frozen=True)
class PushResult:
    repo_id: str
    version: str
    commit: str
    url: str
    replaced: bool
    files: tuple[str, ...]
    license: str
    """The card's license: the one given, or UNSTATED_LICENSE (ted picks none for the publisher)."""


@dataclass(frozen=True)
class PullResult:
    repo_id: str
    version: str
    commit: str
    folder: Path
    """Where the files are: the Hub cache snapshot, or the `out` folder."""
    library: Library = field(compare=False)

    @property
    def library_file(self) -> Path:
        return self.folder / LIBRARY_FILE


@dataclass(frozen=True)
class VersionInfo:
    version: str
    commit: str
    date: datetime | None
    items: int | None
    tokens: int | None
    task: str | None
    baseline: float | None
    with_library: float | None
    problem: str | None = None  # why this version's library cannot be read (the others are still listed)


# --------------------------------------------------------------------------- public API
def load_library(
    ref: str | os.PathLike[str],
    *,
    allow_local: bool = True,
    token: str | None = None,
    endpoint: str | None = None,
    cache_dir: str | None = None,
) -> Library:
    """Load a validated library from any reference: a local file or folder, `org/name[@version]`."""
    parsed = parse_ref(ref, allow_local=allow_local)
    if parsed.kind == "local":
        assert parsed.path is not None
        return Library.load(parsed.path)
    assert parsed.repo_id is not None
    hub = _Hub(token=token, endpoint=endpoint, cache_dir=cache_dir)
    version = hub.resolve_version(parsed.repo_id, parsed.version)
    folder, _ = hub.fetch(parsed.repo_id, version, (LIBRARY_FILE,))
    return _load_fetched(folder, f"{parsed.repo_id}@{version}")


def pull_library(
    ref: str,
    *,
    out: str | os.PathLike[str] | None = None,
    force: bool = False,
    token: str | None = None,
    endpoint: str | None = None,
    cache_dir: str | None = None,
) -> PullResult:
    """Download a published version (library, card, rows, charts) into the Hub cache, and into `out` if given.

    Files already in `out` with other content are not overwritten unless `force`.
    """
    parsed = parse_ref(ref, allow_local=False)
    assert parsed.repo_id is not None
    hub = _Hub(token=token, endpoint=endpoint, cache_dir=cache_dir)
    version = hub.resolve_version(parsed.repo_id, parsed.version)
    folder, _ = hub.fetch(parsed.repo_id, version, LAYOUT)
    library = _load_fetched(folder, f"{parsed.repo_id}@{version}")
    commit = folder.name  # cache snapshots are named after their commit
    if out is not None:
        folder = _copy_out(folder, Path(out), force)
    return PullResult(parsed.repo_id, version, commit, folder, library)


def list_versions(
    repo_id: str, *, token: str | None = None, endpoint: str | None = None, cache_dir: str | None = None
) -> list[VersionInfo]:
    """Every published version of a library, oldest first, with its size and scores."""
    check_repo_id(repo_id)
    hub = _Hub(token=token, endpoint=endpoint, cache_dir=cache_dir)
    with hub.errors(repo_id):
        tags = hub.tags(repo_id)
    rows = []
    for version in sorted((t for t in tags if version_key(t)), key=lambda t: version_key(t) or (0, 0, 0)):
        try:
            folder, date = hub.fetch(repo_id, version, (LIBRARY_FILE,))
            library = _load_fetched(folder, f"{repo_id}@{version}")
        except LibraryError as err:  # one damaged or foreign version must not hide the others
            rows.append(VersionInfo(version, tags[version], None, None, None, None, None, None, problem=str(err)))
            continue
        rows.append(
            VersionInfo(
                version=version,
                commit=tags[version],
                date=date,
                items=len(library.items),
                tokens=library_tokens(library),
                task=library.metrics.task,
                baseline=library.metrics.baseline,
                with_library=library.metrics.with_library,
            )
        )
    return rows


def push_library(
    source: Library | str | os.PathLike[str],
    repo_id: str,
    *,
    version: str | None = None,
    private: bool = False,
    message: str | None = None,
    force: bool = False,
    license: str | None = None,
    token: str | None = None,
    endpoint: str | None = None,
    attachments: dict[str, bytes] | None = None,
) -> PushResult:
    """Publish a library as one commit plus a version tag on the Hub dataset `repo_id`.

    `attachments` are more files for the same commit (e.g. `ted reproduce`'s report), by path in the repo.

    `source` is a Library or a local reference; a file is re-serialised (see `_local_source`). The repo is
    created if needed (`private` applies only then). `repo_id` may carry the version as pull takes
    it (`org/name@v3`); without one (there or in `version`) the next `vN` is used.
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, get_token

    target = parse_ref(repo_id, allow_local=False)
    if version and target.version and version != target.version:
        raise ConfigError(f"{repo_id} and version {version} name two versions: give one (org/name@{target.version})")
    repo_id, version = str(target.repo_id), version or target.version
    raw, library = _local_source(source)
    if not library.items:
        raise LibraryError(
            f"{library.name}: the library has no experiences, so there is nothing to publish (a dataset with no rows "
            "cannot be loaded by datasets or shown by the viewer); distil on more or other problems, then push"
        )
    check_repo_id(repo_id)
    if version is not None:
        check_revision(version)
        if version_key(version) is None:
            raise LibraryError(f"{version!r} is not a version tag: use vN or vX.Y.Z (e.g. v2, v1.0.0)")
    token = token or get_token()
    if not token:
        raise HubError("no Hugging Face token: set HF_TOKEN or run `hf auth login` (pushing needs a token with write access)")
    hub = _Hub(token=token, endpoint=endpoint)
    with hub.errors(repo_id, version, writing=True):
        hub.api.create_repo(repo_id, repo_type=REPO_TYPE, private=private, exist_ok=True)
        refs = hub.api.list_repo_refs(repo_id, repo_type=REPO_TYPE)
        tags = {tag.name: tag.target_commit for tag in refs.tags}
        version = version or next_version(list(tags))
        replaced = version in tags
        if replaced and not force:
            raise HubError(
                f"{repo_id}@{version} already exists; pass --force to replace it, or push to {repo_id} (no version) to publish {next_version(list(tags))}"
            )
        head = next((b.target_commit for b in refs.branches if b.name == "main"), None)
        newest = newest_version([t for t in tags if t != version])
        on_main = newest is None or (version_key(version) or (0, 0, 0)) >= (version_key(newest) or (0, 0, 0))
        base = head if on_main else tags.get(version, head)
        files = {LIBRARY_FILE: raw, **render_files(library, ref=f"{repo_id}@{version}", version=version, license=license)}
        clash = sorted(set(attachments or {}) & set(files))
        if clash:
            raise LibraryError(f"attachment {clash[0]!r} would replace a file of the library layout; attach it under another path")
        files.update(attachments or {})
        present = hub.api.list_repo_files(repo_id, repo_type=REPO_TYPE, revision=base) if base else []
        stale = [p for p in present if p in LAYOUT and p not in files]
        operations = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=data) for p, data in files.items()]
        operations += [CommitOperationDelete(path_in_repo=p) for p in stale]
        with _publish_branch(hub.api, repo_id, None if on_main else base) as branch:
            commit = hub.api.create_commit(
                repo_id,
                operations,
                commit_message=message or f"Publish {visible(library.name)} {version}",  # the Hub shows it: no hidden characters
                commit_description=f"ted library {visible(library.name)}: {len(library.items)} experiences.",
                repo_type=REPO_TYPE,
                revision=branch,
                parent_commit=base,
            )
        oid = str(commit.oid)
        if replaced:
            hub.api.delete_tag(repo_id, tag=version, repo_type=REPO_TYPE)
        try:
            hub.api.create_tag(repo_id, tag=version, revision=oid, tag_message=f"ted library {visible(library.name)} {version}", repo_type=REPO_TYPE)
        except Exception as err:  # noqa: BLE001 - any failure here leaves a commit without its tag: say exactly what is on the Hub
            raise HubError(_untagged(hub.api, repo_id, version, oid, on_main, tags.get(version) if replaced else None, err)) from None
    url = f"{hub.endpoint}/datasets/{repo_id}/tree/{version}"
    return PushResult(repo_id, version, oid, url, replaced, tuple(sorted(files)), license or UNSTATED_LICENSE)


# --------------------------------------------------------------------------- helpers
def _untagged(api: HfApi, repo_id: str, version: str, oid: str, on_main: bool, old: str | None, err: Exception) -> str:
    """What a push whose tag could not be made leaves on the Hub, in one line. A replaced version's
    old tag (deleted first: a tag cannot be moved) is put back, so the version still means what it did."""
    restored = ""
    if old is not None:
        try:
            api.create_tag(repo_id, tag=version, revision=old, repo_type=REPO_TYPE)
            restored = f"; {version} still names its old commit {old[:10]}"
        except Exception:  # noqa: BLE001 - the line below says so
            restored = f"; the old {version} tag (commit {old[:10]}) is gone too"
    where = "on main, where the dataset viewer shows it" if on_main else "on no branch"
    detail = scrub_text(" ".join(str(err).split())[:200]) or type(err).__name__
    return (
        f"{repo_id}: the files were committed ({oid[:10]}, {where}) but tagging them {version} failed ({detail}), "
        f"so {version} is not published{restored}; run the same push again{' with --force' if old else ''}"
    )


@contextmanager
def _publish_branch(api: HfApi, repo_id: str, start: str | None) -> Iterator[str]:
    """`main`, or (given a start commit) a temporary branch there, deleted afterwards: a commit
    for an older version must not move `main`, and the tag keeps it reachable."""
    if start is None:
        yield "main"
        return
    branch = f"ted-publish-{os.urandom(4).hex()}"
    api.create_branch(repo_id, branch=branch, revision=start, repo_type=REPO_TYPE)
    try:
        yield branch
    finally:
        api.delete_branch(repo_id, branch=branch, repo_type=REPO_TYPE)


def _local_source(source: Library | str | os.PathLike[str]) -> tuple[bytes, Library]:
    """The bytes to upload and the validated library. A file is re-serialised from what `Library.load`
    made of it, never copied: what is published is what ted means by it, with the same scrubbing
    (credentials in `config`, say, from an older version or a hand edit) as anything ted loads."""
    if isinstance(source, Library):
        return source.to_json().encode("utf-8"), source
    parsed = parse_ref(source)
    if parsed.kind != "local" or parsed.path is None:
        raise LibraryError(f"{source}: push takes a local library (a library.json or a folder holding one)")
    library = Library.load(parsed.path)
    return library.to_json().encode("utf-8"), library


def _load_fetched(folder: Path, where: str) -> Library:
    path = folder / LIBRARY_FILE
    if not path.is_file():
        raise LibraryError(f"{where}: not a ted library (no {LIBRARY_FILE})")
    try:
        return Library.load(path)
    except LibraryError as err:
        raise LibraryError(f"{where}: {str(err).removeprefix(str(path) + ': ')}") from None


def _copy_out(snapshot: Path, out: Path, force: bool) -> Path:
    """Copy the fetched files (real bytes, not cache symlinks) into `out` without clobbering."""
    fetched = [p for p in LAYOUT if (snapshot / p).is_file()]
    # What is there already is read only if it is a regular file of a size a library file may have:
    # a FIFO or a device placed in --out would block or never end.
    present = {p: read_capped(out / p, MAX_ASSET_BYTES, LibraryError, f"--out {out / p}") for p in fetched if (out / p).exists()}
    clashes = [p for p, data in present.items() if data != (snapshot / p).read_bytes()]
    if clashes and not force:
        raise LibraryError(f"{out}: would overwrite {', '.join(clashes)} with different content; pass --force or pick another --out")
    for path in fetched:
        atomic_write(out / path, (snapshot / path).read_bytes())
    return out


def render_folder(source: str | os.PathLike[str], out: str | os.PathLike[str], *, ref: str | None = None, license: str | None = None) -> list[str]:
    """Write the Hub layout of a local library into `out` (exactly what `push` would upload), to preview or keep it."""
    raw, library = _local_source(source)
    files = {LIBRARY_FILE: raw, **render_files(library, ref=ref or "ORG/NAME@VERSION", license=license)}
    try:
        write_folder(Path(out), files)
    except OSError as err:
        raise LibraryError(f"cannot write {out}: {err.strerror or err}; nothing was written there") from None
    return sorted(files)

"""The one configured Hugging Face Hub client ted uses, and its errors as one line each.

Everything goes through `huggingface_hub` (imported inside, so `import ted.hub` stays light): the
token from `HF_TOKEN` or the saved login, the endpoint from `HF_ENDPOINT`, files in the Hub cache.
Sizes are checked against the caps from the repo listing before anything is downloaded.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ted.cards import LIBRARY_FILE
from ted.errors import LibraryError, TedError
from ted.hub_refs import newest_version
from ted.library import MAX_FILE_BYTES
from ted.redact import scrub_text

if TYPE_CHECKING:
    from huggingface_hub import HfApi

REPO_TYPE = "dataset"
MAX_ASSET_BYTES = 10_000_000
"""Cap on each non-library file of a pulled version (card, rows, charts)."""


class HubError(TedError):
    """The Hub refused a request, cannot be reached, or holds no such repo or version."""


@dataclass
class _Hub:
    """One configured client: endpoint, token and cache, read from the environment at call time."""

    token: str | None = None
    endpoint: str | None = None
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        from huggingface_hub import HfApi, constants, get_token

        from ted.redact import remember_secret

        remember_secret(self.token or get_token())  # the saved login's token too: an error line never shows it
        self.endpoint = (self.endpoint or os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")
        self.cache_dir = self.cache_dir or os.environ.get("HF_HUB_CACHE") or None
        self.api: HfApi = HfApi(endpoint=self.endpoint, token=self.token)

    @contextmanager
    def errors(self, repo_id: str, version: str | None = None, writing: bool = False) -> Iterator[None]:
        """Turn `huggingface_hub` and network exceptions into one clear line each."""
        import httpx2
        from huggingface_hub import errors as hf

        where = f"{repo_id}@{version}" if version else repo_id
        unpublished = " Nothing was published." if writing else ""
        try:
            yield
        except hf.RepositoryNotFoundError:
            raise HubError(
                f"{repo_id}: no such dataset on the Hub at {self.endpoint} (or it is private and your token cannot see it)"
            ) from None
        except hf.RevisionNotFoundError:
            raise HubError(f"{repo_id}: no version {version!r}; `ted versions {repo_id}` lists the published ones") from None
        except hf.RemoteEntryNotFoundError:
            raise LibraryError(f"{where}: not a ted library (the repo has no {LIBRARY_FILE})") from None
        except (hf.LocalEntryNotFoundError, hf.OfflineModeIsEnabled):
            raise HubError(
                f"{where}: not in the local Hub cache and the Hub cannot be reached (HF_HUB_OFFLINE is set or the "
                "network is down); pull it once while online"
            ) from None
        except hf.HfHubHTTPError as err:
            status = err.response.status_code if err.response is not None else None
            if status == 401:
                message = "the Hub rejected your token (401): set a valid HF_TOKEN or run `hf auth login`"
            elif status == 403:
                message = f"your token cannot write to {repo_id} (403: a read-only token, or no rights on that namespace); use a token with write access"
            elif status == 412:
                message = f"{repo_id} changed while pushing (someone else pushed): run the push again"
            else:
                detail = scrub_text((err.server_message or str(err)).strip().splitlines()[0])
                message = f"the Hub answered {status} for {where}: {detail}"
            raise HubError(message + unpublished) from None
        except hf.HFValidationError as err:
            raise LibraryError(f"{repo_id!r}: not a valid Hub dataset id ({err})") from None
        except ConnectionError as err:  # hf_xet (Xet storage) reports its failures as builtin ConnectionErrors
            detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise HubError(
                f"the Hub's Xet storage failed for {where} ({detail}).{unpublished} Try again, or set HF_HUB_DISABLE_XET=1 to use LFS"
            ) from None
        except httpx2.HTTPError as err:
            raise HubError(
                f"network error talking to the Hub at {self.endpoint} ({type(err).__name__}: {err}).{unpublished} "
                "Check your connection or HF_ENDPOINT and try again"
            ) from None

    def tags(self, repo_id: str) -> dict[str, str]:
        """Tag name → commit, from the Hub."""
        refs = self.api.list_repo_refs(repo_id, repo_type=REPO_TYPE)
        return {tag.name: tag.target_commit for tag in refs.tags}

    def cached_tags(self, repo_id: str) -> list[str]:
        """Tags of `repo_id` already in the Hub cache (to resolve "newest" while offline)."""
        from huggingface_hub import scan_cache_dir
        from huggingface_hub.errors import CacheNotFound

        try:
            cache = scan_cache_dir(self.cache_dir)
        except CacheNotFound:
            return []
        return [ref for repo in cache.repos if repo.repo_id == repo_id and repo.repo_type == REPO_TYPE for ref in repo.refs]

    def resolve_version(self, repo_id: str, version: str | None) -> str:
        """The version to fetch: as given, or the newest tag (from the cache when offline)."""
        import httpx2
        from huggingface_hub import is_offline_mode

        if version:
            return version
        with self.errors(repo_id):
            tags: list[str] | None = None
            if not is_offline_mode():
                try:
                    tags = list(self.tags(repo_id))
                except httpx2.TransportError:
                    tags = None
            newest = newest_version(tags if tags is not None else self.cached_tags(repo_id))
        if newest is None:
            if tags is None:
                raise HubError(f"{repo_id}: the Hub cannot be reached and no version of it is in the local cache")
            raise HubError(f"{repo_id}: no published version (no vN tag); push one with `ted push LIB {repo_id}`")
        return newest

    def fetch(self, repo_id: str, version: str, patterns: tuple[str, ...]) -> tuple[Path, datetime | None]:
        """Download the files of one version matching `patterns` into the Hub cache.

        Returns the cache snapshot folder and the date of the version's commit (None offline).

        Online, the repo listing is checked first: it must hold a library.json, and every file to
        fetch must be within the caps. Offline (or if the Hub cannot be reached), the cached
        snapshot is used.
        """
        import httpx2
        from huggingface_hub import is_offline_mode, snapshot_download

        date, checked = None, None
        with self.errors(repo_id, version):
            online = not is_offline_mode()
            if online:
                try:
                    info = self.api.dataset_info(repo_id, revision=version, files_metadata=True)
                except httpx2.TransportError:
                    online = False
                else:
                    date, checked = info.last_modified, info.sha
                    sizes = {s.rfilename: s.size or 0 for s in info.siblings or []}
                    _check_listing(f"{repo_id}@{version}", sizes, patterns)
            folder = snapshot_download(
                repo_id,
                repo_type=REPO_TYPE,
                revision=version,
                allow_patterns=list(patterns),
                cache_dir=self.cache_dir,
                endpoint=self.endpoint,
                token=self.token,
                local_files_only=not online,
            )
        if checked is not None and Path(folder).name != checked:  # snapshots are named after their commit
            raise HubError(f"{repo_id}@{version} moved while downloading (a forced push?); run the command again")
        return Path(folder), date


def _check_listing(where: str, sizes: dict[str, int], patterns: tuple[str, ...]) -> None:
    if LIBRARY_FILE not in sizes:
        raise LibraryError(f"{where}: not a ted library (the repo has no {LIBRARY_FILE})")
    for path in patterns:
        cap = MAX_FILE_BYTES if path == LIBRARY_FILE else MAX_ASSET_BYTES
        if sizes.get(path, 0) > cap:
            raise LibraryError(f"{where}: {path} is {sizes[path]:,} bytes, over the {cap:,}-byte cap; refusing to download it")

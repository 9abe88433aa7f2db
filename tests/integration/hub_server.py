"""A small Hugging Face Hub-compatible server for tests: real git repositories behind HTTP.

No write-capable Hub server can be installed here, so the tests run the real `huggingface_hub`
client against this one. It implements the part of the Hub HTTP API that `ted` uses, with the
same routes, JSON shapes and headers as the Hub (read from the client's source):

    POST   /api/repos/create                          create a repo (409 if it exists)
    POST   /api/validate-yaml                         check a README's YAML front matter
    GET    /api/whoami-v2                             who the token belongs to
    GET    /api/{type}s/{ns}/{name}[/revision/{rev}]  repo info: sha, lastModified, siblings
    GET    /api/{type}s/{ns}/{name}/refs              branches and tags
    GET    /api/{type}s/{ns}/{name}/tree/{rev}[/{p}]  file listing (recursive or one level)
    POST   /api/{type}s/{ns}/{name}/preupload/{rev}   upload mode per file: "lfs" or "regular", as the Hub decides
    POST   /api/{type}s/{ns}/{name}/commit/{rev}      NDJSON commit: base64 inline files and `lfsFile` pointers
    POST   /api/{type}s/{ns}/{name}/tag/{rev}         create a tag (409 if it exists)
    DELETE /api/{type}s/{ns}/{name}/tag/{tag}         delete a tag
    POST   /api/{type}s/{ns}/{name}/branch/{branch}   create a branch at `startingPoint` (409 if it exists)
    DELETE /api/{type}s/{ns}/{name}/branch/{branch}   delete a branch (never main)
    POST   /api/{type}s/{ns}/{name}/paths-info/{rev}  metadata of given paths (what `datasets` asks)
    GET    /api/{type}s/{ns}/{name}/xet-write-token/… answered 501: Xet storage is not implemented (see below)
    POST   /api/spaces/{ns}/{name}/secrets            set a Space secret (kept in `space_secrets`, never in git)
    HEAD   /{prefix}{ns}/{name}/resolve/{rev}/{path}  file metadata: X-Repo-Commit, ETag, size
    GET    /{prefix}{ns}/{name}/resolve/{rev}/{path}  file content (Range supported); LFS files redirect
    POST   /{prefix}{ns}/{name}.git/info/lfs/objects/batch   Git LFS batch API, `basic` transfer
    PUT    /lfs/upload/{oid}?sig=…                    LFS object upload (the batch answer's signed URL)
    POST   /{prefix}{ns}/{name}.git/info/lfs/objects/verify  LFS verify (authenticated)
    GET    /lfs/objects/{oid}?sig=…                   LFS object download (signed URL, the "CDN")

**Uploads take the path the Hub forces.** preupload answers `lfs` for binary files (a NUL byte or
invalid UTF-8 in the sample), files of 10 MB and more, and paths matching a `filter=lfs` pattern of
the repo's `.gitattributes` (a new repo gets the Hub's default patterns, `*.png` among them), and
a commit that carries such a file inline is rejected, as the Hub rejects binary files outside
LFS. The client then asks the batch API for upload actions, PUTs the bytes to the signed URL the
server returned, calls verify, and commits an `lfsFile` pointer: git stores the LFS pointer text,
the object store holds the bytes (checked against the sha256 oid and size). `resolve` of an LFS
file answers, as the Hub does, with a redirect to another host carrying `X-Linked-Etag` (the
sha256) and `X-Linked-Size`; the download URL uses `localhost` instead of `127.0.0.1`, so the
client treats it as an off-Hub CDN. `lfs_log` records every batch, upload, verify and download.

**Xet is not implemented.** With `hf_xet` installed, `huggingface_hub` 2.x sends every LFS-mode
file through Xet storage (client side, without asking the server: a write token from
`xet-write-token`, then chunk upload to a CAS service), and downloads through Xet when `resolve`
carries `X-Xet-Hash`. No Xet CAS server installs here, so this server answers the token request
with 501 and never sends Xet headers; tests set `HF_HUB_DISABLE_XET=1`, the client's documented
switch, to take the LFS path the Hub still accepts.

Every repo is a bare git repository; commits and tags are made with git plumbing, and a branch
moves only by compare-and-swap (`git update-ref NEW OLD`), so a failed request changes nothing.
Errors carry the Hub's `X-Error-Code` / `X-Error-Message` headers, which the client maps to
`RepositoryNotFoundError`, `RevisionNotFoundError`, `RemoteEntryNotFoundError`.

Tokens are configured per server: a `write` token may create repos, commit and tag; a `read`
token gets 403 on any write. Private repos are visible only to their owner's tokens.

`fail_next(kind)` drops the connection of the next request of that kind (e.g. "commit")
without answering, to test what a client does when the network fails mid-request.

Run standalone: `python tests/integration/hub_server.py --root DIR --port 8765 --token hf_x:alice:write`.
"""

from __future__ import annotations

import argparse
import base64
import fnmatch
import hashlib
import hmac
import json
import os
import re
import socket
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

import yaml

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$")
_REF_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")
_SHA_RE = re.compile(r"^[0-9a-f]{40}$")
# The patterns a new Hub repo's .gitattributes sends to LFS (a subset of the Hub's default list).
_INITIAL_FILES = {
    ".gitattributes": "".join(
        f"{pattern} filter=lfs diff=lfs merge=lfs -text\n"
        for pattern in ("*.bin", "*.gguf", "*.gz", "*.jpg", "*.jpeg", "*.parquet", "*.png", "*.safetensors", "*.whl", "*.zip")
    ).encode()
}
LFS_THRESHOLD = 10 * 1024 * 1024  # the Hub stores files of 10 MB and more through LFS
_LFS_POINTER = re.compile(rb"^version https://git-lfs.github.com/spec/v1\noid sha256:([0-9a-f]{64})\nsize ([0-9]+)\n$")
_OID_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Token:
    user: str
    role: str  # "read" or "write"


class HubHTTPError(Exception):
    """An error answer, with the Hub's error headers."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}
        self.body = body or {}


@dataclass
class _Repo:
    repo_type: str
    repo_id: str
    git_dir: Path
    meta: dict[str, Any] = field(default_factory=dict)


class _DropConnection(Exception):
    """Raised to close the socket without any answer (a simulated network failure)."""


class HubServer:
    """A Hub-compatible HTTP server on 127.0.0.1 backed by bare git repositories under `root`."""

    def __init__(self, root: str | os.PathLike[str], tokens: dict[str, Token] | None = None, port: int = 0) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.tokens = dict(tokens or {})
        self.requests: list[tuple[str, str]] = []
        self.lfs_log: list[tuple[str, str, int]] = []
        """(action, oid, size) of each LFS batch object, upload, verify and download."""
        self.lfs_dir = self.root / "lfs-objects"
        self.lfs_dir.mkdir(exist_ok=True)
        self._secret = os.urandom(16)
        self.space_secrets: dict[str, dict[str, str]] = {}
        """repo id → secret name → value, as the Space's settings hold them."""
        self._faults: dict[str, int] = {}
        self._lock = threading.RLock()
        handler = type("Handler", (_Handler,), {"hub": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> HubServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="hub-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def fail_next(self, kind: str, times: int = 1) -> None:
        """Drop the connection of the next `times` requests of `kind` ("commit", "tag", "resolve", …)."""
        with self._lock:
            self._faults[kind] = self._faults.get(kind, 0) + times

    def _take_fault(self, kind: str) -> bool:
        with self._lock:
            if self._faults.get(kind, 0) > 0:
                self._faults[kind] -= 1
                return True
            return False

    # ------------------------------------------------------------------ git
    def git(self, repo_type: str, repo_id: str, *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None) -> str:
        """Run git in a repo's bare directory (also handy for tests that inspect the storage)."""
        return self._git(self._git_dir(repo_type, repo_id), *args, stdin=stdin, env=env).decode()

    @staticmethod
    def _git(git_dir: Path, *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None) -> bytes:
        full_env = {
            **os.environ,
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_AUTHOR_NAME": "hub",
            "GIT_AUTHOR_EMAIL": "hub@localhost",
            "GIT_COMMITTER_NAME": "hub",
            "GIT_COMMITTER_EMAIL": "hub@localhost",
            **(env or {}),
        }
        proc = subprocess.run(
            ["git", f"--git-dir={git_dir}", *args], input=stdin, capture_output=True, env=full_env, check=False
        )
        if proc.returncode != 0:
            raise subprocess.CalledProcessError(proc.returncode, args, proc.stdout, proc.stderr)
        return proc.stdout

    def _git_dir(self, repo_type: str, repo_id: str) -> Path:
        return self.root / f"{repo_type}s" / f"{repo_id}.git"

    def _repo(self, repo_type: str, repo_id: str) -> _Repo | None:
        git_dir = self._git_dir(repo_type, repo_id)
        meta_file = git_dir / "hub.json"
        if not meta_file.is_file():
            return None
        return _Repo(repo_type, repo_id, git_dir, json.loads(meta_file.read_text()))

    def _resolve(self, repo: _Repo, revision: str) -> str:
        """A branch, tag or full commit sha → commit sha (no other revision syntax is accepted)."""
        if _REF_RE.match(revision) and ".." not in revision:
            candidates = [revision] if _SHA_RE.match(revision) else []
            candidates += [f"refs/heads/{revision}", f"refs/tags/{revision}"]
            for candidate in candidates:
                try:
                    return self._git(repo.git_dir, "rev-parse", "--verify", "--quiet", f"{candidate}^{{commit}}").decode().strip()
                except subprocess.CalledProcessError:
                    continue
        raise HubHTTPError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def _ls_tree(self, repo: _Repo, commit: str, recursive: bool, path: str = "") -> list[dict[str, Any]]:
        args = ["ls-tree", "-l", "-z"] + (["-r"] if recursive else []) + [commit]
        if path:
            args += ["--", path.rstrip("/") + ("/" if not recursive else "")]
        out = self._git(repo.git_dir, *args).decode()
        entries = []
        for record in filter(None, out.split("\0")):
            meta, name = record.split("\t", 1)
            _mode, kind, oid, size = meta.split()
            if recursive and path and not (name == path or name.startswith(path.rstrip("/") + "/")):
                continue
            if kind == "blob":
                entry: dict[str, Any] = {"type": "file", "oid": oid, "size": int(size), "path": name}
                pointer = self._lfs_pointer(repo, oid, int(size))
                if pointer is not None:
                    entry["lfs"] = {"oid": pointer[0], "size": pointer[1], "pointerSize": int(size)}
                    entry["size"] = pointer[1]
                entries.append(entry)
            elif kind == "tree":
                entries.append({"type": "directory", "oid": oid, "size": 0, "path": name})
        return entries

    def _lfs_pointer(self, repo: _Repo, blob: str, size: int) -> tuple[str, int] | None:
        """(sha256, size) if the blob is a Git LFS pointer file, else None."""
        if size > 200:
            return None
        match = _LFS_POINTER.match(self._git(repo.git_dir, "cat-file", "blob", blob))
        return (match.group(1).decode(), int(match.group(2))) if match else None

    # ------------------------------------------------------------------ LFS storage
    def _lfs_path(self, oid: str) -> Path:
        if not _OID_RE.match(oid):
            raise HubHTTPError(400, f"Invalid LFS oid {oid!r}")
        return self.lfs_dir / oid

    def _sign(self, action: str, oid: str) -> str:
        return hmac.new(self._secret, f"{action}:{oid}".encode(), hashlib.sha256).hexdigest()

    def _check_signature(self, action: str, oid: str, params: dict[str, str]) -> None:
        if not hmac.compare_digest(params.get("sig", ""), self._sign(action, oid)):
            raise HubHTTPError(403, "Request has expired or the signature does not match")

    def _cdn_url(self) -> str:
        """The download host: this server under another name, so the client sees an off-Hub redirect."""
        return self.url.replace("127.0.0.1", "localhost")

    def _wants_lfs(self, repo: _Repo, revision: str, path: str, size: int, sample: bytes) -> bool:
        """The Hub's rule: binary content, 10 MB and more, or a `filter=lfs` pattern of .gitattributes."""
        if size >= LFS_THRESHOLD or b"\0" in sample:
            return True
        try:
            sample.decode("utf-8")
        except UnicodeDecodeError as err:
            if err.start < len(sample) - 3:  # not just a character cut at the sample's end
                return True
        try:
            commit = self._resolve(repo, revision)
            attributes = self._git(repo.git_dir, "cat-file", "blob", f"{commit}:.gitattributes").decode()
        except (HubHTTPError, subprocess.CalledProcessError):
            attributes = ""
        for line in attributes.splitlines():
            pattern, *attrs = line.split()
            if "filter=lfs" in attrs and (fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path.rsplit("/", 1)[-1], pattern)):
                return True
        return False

    def lfs_batch(self, repo: _Repo, token: Token | None, body: dict[str, Any]) -> dict[str, Any]:
        """The Git LFS batch API (basic transfer): upload or download actions per object."""
        operation = body.get("operation")
        if operation == "upload":
            self._writable(repo.repo_type, repo.repo_id, token)
        elif operation != "download":
            raise HubHTTPError(400, f"Unknown LFS operation {operation!r}")
        if "basic" not in (body.get("transfers") or ["basic"]):
            raise HubHTTPError(400, "Only the basic transfer is supported")
        answers = []
        for obj in body.get("objects") or []:
            oid, size = str(obj.get("oid")), obj.get("size")
            if not _OID_RE.match(oid) or not isinstance(size, int) or size < 0:
                raise HubHTTPError(422, f"Invalid LFS object {obj!r}")
            self.lfs_log.append((f"batch-{operation}", oid, size))
            stored = self._lfs_path(oid)
            answer: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            if operation == "upload" and not stored.is_file():
                answer["actions"] = {
                    "upload": {"href": f"{self.url}/lfs/upload/{oid}?sig={self._sign('upload', oid)}", "header": {}},
                    "verify": {"href": f"{self.url}/{URL_PREFIX[repo.repo_type]}{repo.repo_id}.git/info/lfs/objects/verify"},
                }
            elif operation == "download":
                if not stored.is_file():
                    answer = {"oid": oid, "size": size, "error": {"code": 404, "message": "Object does not exist"}}
                else:
                    answer["actions"] = {"download": {"href": f"{self._cdn_url()}/lfs/objects/{oid}?sig={self._sign('download', oid)}"}}
            answers.append(answer)
        return {"transfer": "basic", "objects": answers, "hash_algo": "sha256"}

    def lfs_upload(self, oid: str, params: dict[str, str], data: bytes) -> None:
        self._check_signature("upload", oid, params)
        if hashlib.sha256(data).hexdigest() != oid:
            raise HubHTTPError(400, "The uploaded content does not match its sha256 oid")
        self.lfs_log.append(("upload", oid, len(data)))
        path = self._lfs_path(oid)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def lfs_verify(self, repo: _Repo, body: dict[str, Any]) -> None:
        oid, size = str(body.get("oid")), body.get("size")
        path = self._lfs_path(oid)
        if not path.is_file() or path.stat().st_size != size:
            raise HubHTTPError(404, f"LFS object {oid} of size {size} was not uploaded")
        self.lfs_log.append(("verify", oid, size))

    def lfs_object(self, oid: str, params: dict[str, str]) -> bytes:
        self._check_signature("download", oid, params)
        path = self._lfs_path(oid)
        if not path.is_file():
            raise HubHTTPError(404, "Object does not exist")
        data = path.read_bytes()
        self.lfs_log.append(("download", oid, len(data)))
        return data

    def _commit_date(self, repo: _Repo, commit: str) -> str:
        stamp = int(self._git(repo.git_dir, "show", "-s", "--format=%ct", commit).decode().strip())
        return _iso(datetime.fromtimestamp(stamp, tz=timezone.utc))

    # ------------------------------------------------------------------ auth
    def _token(self, headers: Any) -> Token | None:
        auth = headers.get("Authorization") or ""
        if not auth:
            return None
        value = auth[7:] if auth.lower().startswith("bearer ") else auth
        token = self.tokens.get(value)
        if token is None:
            raise HubHTTPError(401, "Invalid credentials in Authorization header")
        return token

    def _readable(self, repo_type: str, repo_id: str, token: Token | None) -> _Repo:
        repo = self._repo(repo_type, repo_id)
        if repo is None or (repo.meta.get("private") and (token is None or token.user != repo.meta.get("owner"))):
            raise HubHTTPError(404, "Repository not found", "RepoNotFound")
        return repo

    def _writable(self, repo_type: str, repo_id: str, token: Token | None) -> _Repo:
        if token is None:
            raise HubHTTPError(401, "You must be authenticated to write to a repository")
        repo = self._readable(repo_type, repo_id, token)
        if token.role != "write":
            raise HubHTTPError(403, f"You don't have the rights to write to {repo_id}: the token is read-only")
        return repo

    # ------------------------------------------------------------------ endpoints
    def create_repo(self, token: Token | None, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if token is None:
            raise HubHTTPError(401, "You must be authenticated to create a repository")
        if token.role != "write":
            raise HubHTTPError(403, "You don't have the rights to create a repository: the token is read-only")
        repo_type = body.get("type") or "model"
        name, namespace = body.get("name") or "", body.get("organization") or token.user
        if repo_type not in URL_PREFIX or not all(_valid_name(part) for part in (namespace, name)):
            raise HubHTTPError(400, f"Invalid repository name or type: {namespace}/{name} ({repo_type})")
        repo_id = f"{namespace}/{name}"
        if repo_type == "space" and body.get("sdk") not in ("gradio", "docker", "static", "streamlit"):
            raise HubHTTPError(400, "Invalid or missing sdk for a Space (gradio, docker, static)")
        private = body.get("visibility") == "private" or bool(body.get("private"))
        url = f"{self.url}/{URL_PREFIX[repo_type]}{repo_id}"
        with self._lock:
            if self._repo(repo_type, repo_id) is not None:
                raise HubHTTPError(409, "You already created this repo", body={"url": url})
            git_dir = self._git_dir(repo_type, repo_id)
            git_dir.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch=main", str(git_dir)], check=True)
            repo = _Repo(repo_type, repo_id, git_dir)
            self._write_commit(repo, "refs/heads/main", None, "initial commit", "", _INITIAL_FILES, [])
            meta = {"private": private, "owner": token.user, "createdAt": _iso(datetime.now(timezone.utc))}
            meta.update({key: body[key] for key in ("sdk", "hardware") if body.get(key)})
            (git_dir / "hub.json").write_text(json.dumps(meta))
        return 200, {"url": url, "name": repo_id, "id": repo_id}

    def repo_info(self, repo: _Repo, revision: str) -> dict[str, Any]:
        commit = self._resolve(repo, revision)
        siblings = [
            {"rfilename": e["path"], "size": e["size"], "blobId": e["oid"], **({"lfs": _sibling_lfs(e["lfs"])} if "lfs" in e else {})}
            for e in self._ls_tree(repo, commit, recursive=True)
            if e["type"] == "file"
        ]
        namespace = repo.repo_id.split("/")[0]
        return {
            "_id": repo.repo_id,
            "id": repo.repo_id,
            "author": namespace,
            "sha": commit,
            "createdAt": repo.meta.get("createdAt"),
            "lastModified": self._commit_date(repo, commit),
            "private": bool(repo.meta.get("private")),
            "gated": False,
            "disabled": False,
            "tags": [],
            "siblings": siblings,
            **({"sdk": repo.meta["sdk"]} if "sdk" in repo.meta else {}),
        }

    def refs(self, repo: _Repo) -> dict[str, Any]:
        out = self._git(repo.git_dir, "for-each-ref", "--format=%(refname)%09%(objectname)%09%(*objectname)").decode()
        branches, tags = [], []
        for line in out.splitlines():
            ref, oid, peeled = line.split("\t")
            info = {"name": ref.split("/", 2)[2], "ref": ref, "targetCommit": peeled or oid}
            (branches if ref.startswith("refs/heads/") else tags).append(info)
        return {"branches": branches, "converts": [], "tags": tags, "pullRequests": []}

    def preupload(self, repo: _Repo, revision: str, body: dict[str, Any]) -> dict[str, Any]:
        commit = self._resolve(repo, revision)
        existing = {e["path"]: e["oid"] for e in self._ls_tree(repo, commit, recursive=True) if e["type"] == "file"}
        files = body.get("files")
        if not isinstance(files, list):
            raise HubHTTPError(400, "files must be a list")
        answers = []
        for f in files:
            sample = base64.b64decode(f.get("sample") or "")
            lfs = self._wants_lfs(repo, revision, f["path"], int(f.get("size") or 0), sample)
            answers.append({"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": existing.get(f["path"])})
        return {"files": answers, "commitOid": commit}

    def commit(self, repo: _Repo, revision: str, raw: bytes, token: Token) -> dict[str, Any]:
        lines = [json.loads(line) for line in raw.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubHTTPError(400, "The first line of a commit must be its header")
        header = lines[0]["value"]
        files: dict[str, bytes] = {}
        deletions: list[tuple[str, bool]] = []
        for line in lines[1:]:
            key, value = line.get("key"), line.get("value") or {}
            path = _check_path(value.get("path", ""))
            if key == "file":
                if value.get("encoding") != "base64":
                    raise HubHTTPError(400, "Only base64 file content is supported")
                content = base64.b64decode(value.get("content", ""), validate=True)
                if self._wants_lfs(repo, revision, path, len(content), content[:512]):
                    raise HubHTTPError(
                        400, f"Your push was rejected because it contains binary files ({path}): store them with LFS or Xet", "BinaryFile"
                    )
                files[path] = content
            elif key == "lfsFile":
                oid, size = str(value.get("oid")), value.get("size")
                stored = self._lfs_path(oid)
                if value.get("algo") != "sha256" or not stored.is_file() or stored.stat().st_size != size:
                    raise HubHTTPError(422, f"LFS object {oid} of {path} was not uploaded")
                files[path] = f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n".encode()
            elif key in ("deletedFile", "deletedFolder"):
                deletions.append((path, key == "deletedFolder"))
            else:
                raise HubHTTPError(400, f"Unsupported commit operation {key!r} (this server stores files inline)")
        with self._lock:
            branch_ref = f"refs/heads/{revision}"
            try:
                parent = self._git(repo.git_dir, "rev-parse", "--verify", "--quiet", branch_ref).decode().strip()
            except subprocess.CalledProcessError:
                raise HubHTTPError(404, f"Invalid rev id: {revision} (commits go to a branch)", "RevisionNotFound") from None
            if header.get("parentCommit") and header["parentCommit"] != parent:
                raise HubHTTPError(412, "A commit has happened since. Please refresh and try again.")
            message = header.get("summary") or "update"
            description = header.get("description") or ""
            oid = self._write_commit(repo, branch_ref, parent, message, description, files, deletions, author=token.user)
        return {
            "success": True,
            "commitOid": oid,
            "commitUrl": f"{self.url}/{URL_PREFIX[repo.repo_type]}{repo.repo_id}/commit/{oid}",
            "hookOutput": "",
        }

    def _write_commit(
        self,
        repo: _Repo,
        branch_ref: str,
        parent: str | None,
        summary: str,
        description: str,
        files: dict[str, bytes],
        deletions: list[tuple[str, bool]],
        author: str = "hub",
    ) -> str:
        """Build a tree from the parent plus changes in a private index, commit it, move the branch (CAS)."""
        with tempfile.TemporaryDirectory() as tmp:
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index"), "GIT_AUTHOR_NAME": author}
            if parent:
                self._git(repo.git_dir, "read-tree", parent, env=env)
            for path, is_folder in deletions:
                listed = self._git(repo.git_dir, "ls-files", "-z", "--", path, env=env).decode()
                targets = [p for p in listed.split("\0") if p and (p == path or (is_folder and p.startswith(path.rstrip("/") + "/")))]
                if not targets:
                    raise HubHTTPError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                self._git(repo.git_dir, "update-index", "--force-remove", "-z", "--stdin", stdin="\0".join(targets).encode(), env=env)
            for path, content in files.items():
                blob = self._git(repo.git_dir, "hash-object", "-w", "--stdin", stdin=content).decode().strip()
                self._git(repo.git_dir, "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=env)
            tree = self._git(repo.git_dir, "write-tree", env=env).decode().strip()
        text = summary + (f"\n\n{description}" if description else "") + "\n"
        args = ["commit-tree", tree] + (["-p", parent] if parent else [])
        oid = self._git(repo.git_dir, *args, stdin=text.encode(), env={"GIT_AUTHOR_NAME": author}).decode().strip()
        self._git(repo.git_dir, "update-ref", branch_ref, oid, parent or "0" * 40)
        return oid

    def create_tag(self, repo: _Repo, revision: str, body: dict[str, Any]) -> None:
        tag = body.get("tag") or ""
        if not _REF_RE.match(tag) or ".." in tag:
            raise HubHTTPError(400, f"Invalid tag name {tag!r}")
        with self._lock:
            commit = self._resolve(repo, revision)
            ref = f"refs/tags/{tag}"
            try:
                self._git(repo.git_dir, "rev-parse", "--verify", "--quiet", ref)
            except subprocess.CalledProcessError:
                pass
            else:
                raise HubHTTPError(409, f"Tag {tag} already exists")
            self._git(repo.git_dir, "tag", "--annotate", f"--message={body.get('message') or tag}", tag, commit)

    def delete_tag(self, repo: _Repo, tag: str) -> None:
        ref = f"refs/tags/{tag}"
        with self._lock:
            try:
                current = self._git(repo.git_dir, "rev-parse", "--verify", "--quiet", ref).decode().strip()
            except subprocess.CalledProcessError:
                raise HubHTTPError(404, f"Tag {tag} not found", "RevisionNotFound") from None
            self._git(repo.git_dir, "update-ref", "-d", ref, current)

    def add_secret(self, repo: _Repo, body: dict[str, Any]) -> None:
        key, value = body.get("key"), body.get("value")
        if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key) or not isinstance(value, str):
            raise HubHTTPError(400, "A secret needs a key (letters, digits, _) and a string value")
        with self._lock:
            self.space_secrets.setdefault(repo.repo_id, {})[key] = value

    def create_branch(self, repo: _Repo, branch: str, body: dict[str, Any]) -> None:
        if not _REF_RE.match(branch) or ".." in branch:
            raise HubHTTPError(400, f"Invalid branch name {branch!r}")
        with self._lock:
            commit = self._resolve(repo, body.get("startingPoint") or "main")
            try:
                self._git(repo.git_dir, "update-ref", f"refs/heads/{branch}", commit, "0" * 40)
            except subprocess.CalledProcessError:
                raise HubHTTPError(409, f"Reference already exists: refs/heads/{branch}") from None

    def delete_branch(self, repo: _Repo, branch: str) -> None:
        if branch == "main":
            raise HubHTTPError(403, "You cannot delete the default branch")
        with self._lock:
            try:
                current = self._git(repo.git_dir, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}").decode().strip()
            except subprocess.CalledProcessError:
                raise HubHTTPError(404, f"Branch {branch} not found", "RevisionNotFound") from None
            self._git(repo.git_dir, "update-ref", "-d", f"refs/heads/{branch}", current)

    def paths_info(self, repo: _Repo, revision: str, paths: list[str]) -> list[dict[str, Any]]:
        commit = self._resolve(repo, revision)
        entries = {e["path"]: e for e in self._ls_tree(repo, commit, recursive=True)}
        return [entries[path] for path in paths if path in entries]

    def file(self, repo: _Repo, revision: str, path: str) -> tuple[str, str, int]:
        """(commit, blob oid, size) of a file at a revision."""
        commit = self._resolve(repo, revision)
        out = self._git(repo.git_dir, "ls-tree", "-l", "-z", commit, "--", path).decode()
        for record in filter(None, out.split("\0")):
            meta, name = record.split("\t", 1)
            _mode, kind, oid, size = meta.split()
            if name == path and kind == "blob":
                return commit, oid, int(size)
        raise HubHTTPError(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": commit})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hub: HubServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (silence the default stderr log)
        return

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    # ------------------------------------------------------------------ plumbing
    def _dispatch(self, method: str) -> None:
        raw_path, _, query = self.path.partition("?")
        parts = [unquote(p) for p in raw_path.split("/")[1:]]
        params = {k: v[-1] for k, v in parse_qs(query).items()}
        body = self._body()
        try:
            kind, handler = self._route(method, parts)
            self.hub.requests.append((method, kind))
            if self.hub._take_fault(kind):
                raise _DropConnection
            token = self.hub._token(self.headers)
            handler(token, body, params)
        except _DropConnection:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        except HubHTTPError as err:
            headers = {"X-Error-Message": err.message, **err.headers}
            if err.code:
                headers["X-Error-Code"] = err.code
            self._send(err.status, {"error": err.message, **err.body}, headers, head=method == "HEAD")
        except (json.JSONDecodeError, ValueError, subprocess.CalledProcessError) as err:
            self._send(400, {"error": f"Bad request: {err}"}, {"X-Error-Message": "Bad request"})

    def _body(self) -> bytes:
        if (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
            chunks = []
            while (size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)) > 0:
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _route(self, method: str, parts: list[str]) -> tuple[str, Any]:
        hub = self.hub
        if parts[:1] == ["api"]:
            rest = parts[1:]
            if method == "POST" and rest == ["repos", "create"]:
                return "create", lambda t, b, p: self._send(*hub.create_repo(t, _json(b)))
            if method == "POST" and rest == ["validate-yaml"]:
                return "validate-yaml", lambda t, b, p: self._send(*_validate_yaml(_json(b)))
            if method == "GET" and rest == ["whoami-v2"]:
                return "whoami", lambda t, b, p: self._whoami(t)
            if len(rest) >= 3 and rest[0] in REPO_TYPES:
                repo_type, repo_id, tail = REPO_TYPES[rest[0]], f"{rest[1]}/{rest[2]}", rest[3:]
                read = lambda t: hub._readable(repo_type, repo_id, t)  # noqa: E731
                write = lambda t: hub._writable(repo_type, repo_id, t)  # noqa: E731
                if method == "GET" and not tail:
                    return "info", lambda t, b, p: self._send(200, hub.repo_info(read(t), "main"))
                if method == "GET" and len(tail) == 2 and tail[0] == "revision":
                    return "info", lambda t, b, p: self._send(200, hub.repo_info(read(t), tail[1]))
                if method == "GET" and tail == ["refs"]:
                    return "refs", lambda t, b, p: self._send(200, hub.refs(read(t)))
                if method == "GET" and len(tail) >= 2 and tail[0] == "tree":
                    return "tree", lambda t, b, p: self._tree(read(t), tail[1], "/".join(tail[2:]), p)
                if method == "POST" and len(tail) == 2 and tail[0] == "preupload":
                    return "preupload", lambda t, b, p: self._send(200, hub.preupload(write(t), tail[1], _json(b)))
                if method == "POST" and len(tail) == 2 and tail[0] == "commit":
                    return "commit", lambda t, b, p: self._send(200, hub.commit(write(t), tail[1], b, t))
                if method == "POST" and len(tail) == 2 and tail[0] == "tag":
                    return "tag", lambda t, b, p: self._done(hub.create_tag(write(t), tail[1], _json(b)))
                if method == "DELETE" and len(tail) == 2 and tail[0] == "tag":
                    return "tag", lambda t, b, p: self._done(hub.delete_tag(write(t), tail[1]))
                if method == "POST" and len(tail) >= 2 and tail[0] == "branch":
                    return "branch", lambda t, b, p: self._done(hub.create_branch(write(t), "/".join(tail[1:]), _json(b)))
                if method == "DELETE" and len(tail) >= 2 and tail[0] == "branch":
                    return "branch", lambda t, b, p: self._done(hub.delete_branch(write(t), "/".join(tail[1:])))
                if method == "POST" and len(tail) == 2 and tail[0] == "paths-info":
                    return "paths-info", lambda t, b, p: self._send(200, hub.paths_info(read(t), tail[1], _form_paths(self.headers, b)))
                if method == "POST" and tail == ["secrets"] and repo_type == "space":
                    return "secret", lambda t, b, p: self._done(hub.add_secret(write(t), _json(b)))
                if tail[:1] == ["xet-write-token"] or tail[:1] == ["xet-read-token"]:
                    return "xet-token", lambda t, b, p: self._not_xet()
        elif parts[:1] == ["lfs"] and len(parts) == 3:
            oid = parts[2]
            if method == "PUT" and parts[1] == "upload":
                return "lfs-upload", lambda t, b, p: self._done(hub.lfs_upload(oid, p, b))
            if method == "GET" and parts[1] == "objects":
                return "lfs-download", lambda t, b, p: self._send_bytes(hub.lfs_object(oid, p))
        elif method == "POST" and len(parts) >= 6 and parts[-4:-1] == ["info", "lfs", "objects"]:
            repo_type = {"datasets": "dataset", "spaces": "space"}.get(parts[0], "model")
            rest = parts if repo_type == "model" else parts[1:]
            if len(rest) == 6 and rest[1].endswith(".git"):
                repo_id = f"{rest[0]}/{rest[1].removesuffix('.git')}"
                read = lambda t: hub._readable(repo_type, repo_id, t)  # noqa: E731
                if parts[-1] == "batch":
                    return "lfs-batch", lambda t, b, p: self._send(200, hub.lfs_batch(read(t), t, _json(b)), {"Content-Type": "application/vnd.git-lfs+json"})
                if parts[-1] == "verify":
                    return "lfs-verify", lambda t, b, p: self._done(hub.lfs_verify(hub._writable(repo_type, repo_id, t), _json(b)))
        elif method in ("GET", "HEAD"):
            repo_type = {"datasets": "dataset", "spaces": "space"}.get(parts[0] if parts else "", "model")
            rest = parts if repo_type == "model" else parts[1:]
            if len(rest) >= 5 and rest[2] == "resolve":
                repo_id, revision, path = f"{rest[0]}/{rest[1]}", rest[3], "/".join(rest[4:])
                return "resolve", lambda t, b, p: self._resolve_file(hub._readable(repo_type, repo_id, t), revision, path, method)
        raise HubHTTPError(404, f"No route for {method} /{'/'.join(parts)}")

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None, head: bool = False) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if not head:
            self.wfile.write(data)

    def _done(self, _: None) -> None:
        self._send(200, {})

    def _send_bytes(self, data: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _not_xet(self) -> None:
        raise HubHTTPError(501, "Xet storage is not implemented by this test server (set HF_HUB_DISABLE_XET=1)")

    def _whoami(self, token: Token | None) -> None:
        if token is None:
            raise HubHTTPError(401, "Invalid credentials in Authorization header")
        self._send(200, {"type": "user", "name": token.user, "orgs": [], "auth": {"type": "access_token", "accessToken": {"role": token.role}}})

    def _tree(self, repo: _Repo, revision: str, path: str, params: dict[str, str]) -> None:
        commit = self.hub._resolve(repo, revision)
        recursive = params.get("recursive", "").lower() in ("1", "true")
        self._send(200, self.hub._ls_tree(repo, commit, recursive, path))

    def _resolve_file(self, repo: _Repo, revision: str, path: str, method: str) -> None:
        commit, oid, size = self.hub.file(repo, revision, _check_path(path))
        pointer = self.hub._lfs_pointer(repo, oid, size)
        if pointer is not None:  # as the Hub: a redirect to the storage host, the metadata on this answer
            sha, real_size = pointer
            self.send_response(302)
            self.send_header("Location", f"{self.hub._cdn_url()}/lfs/objects/{sha}?sig={self.hub._sign('download', sha)}")
            self.send_header("X-Repo-Commit", commit)
            self.send_header("X-Linked-Etag", f'"{sha}"')
            self.send_header("X-Linked-Size", str(real_size))
            self.send_header("ETag", f'"{oid}"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        content = self.hub._git(repo.git_dir, "cat-file", "blob", oid)
        start = 0
        match = re.match(r"bytes=(\d+)-$", self.headers.get("Range") or "")
        if match and int(match.group(1)) < size:
            start = int(match.group(1))
        self.send_response(206 if start else 200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size - start))
        self.send_header("ETag", f'"{oid}"')
        self.send_header("X-Repo-Commit", commit)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        self.end_headers()
        if method == "GET":
            self.wfile.write(content[start:])


def _json(body: bytes) -> dict[str, Any]:
    data = json.loads(body or b"{}")
    if not isinstance(data, dict):
        raise HubHTTPError(400, "Expected a JSON object")
    return data


def _sibling_lfs(lfs: dict[str, Any]) -> dict[str, Any]:
    """Repo info names the LFS sha256 `sha256`; the tree listing names it `oid`."""
    return {"sha256": lfs["oid"], "size": lfs["size"], "pointerSize": lfs["pointerSize"]}


def _form_paths(headers: Any, body: bytes) -> list[str]:
    """The `paths` of a paths-info request (form-encoded, as the client sends it, or JSON)."""
    if "json" in (headers.get("Content-Type") or ""):
        return list(_json(body).get("paths") or [])
    return parse_qs(body.decode()).get("paths", [])


def _valid_name(name: str) -> bool:
    return bool(_NAME_RE.match(name)) and "--" not in name and ".." not in name


def _check_path(path: str) -> str:
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in ("", ".", "..", ".git") for p in parts):
        raise HubHTTPError(400, f"Invalid path in repository: {path!r}")
    return path


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _validate_yaml(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Parse the README's front matter the way the Hub does before accepting a commit."""
    content = str(body.get("content") or "")
    match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", content, re.DOTALL)
    if not match:
        return 200, {"errors": [], "warnings": [{"message": "empty or missing yaml metadata in repo card"}]}
    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError as err:
        return 400, {"errors": [{"message": f"Invalid YAML: {err}"}]}
    if data is not None and not isinstance(data, dict):
        return 400, {"errors": [{"message": "YAML metadata must be a mapping"}]}
    return 200, {"errors": [], "warnings": []}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", required=True)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--token", action="append", default=[], help="TOKEN:USER:ROLE, ROLE being read or write")
    args = parser.parse_args()
    tokens = {}
    for spec in args.token:
        value, user, role = spec.split(":")
        tokens[value] = Token(user, role)
    server = HubServer(args.root, tokens, port=args.port)
    print(f"hub server on {server.url} (root {args.root})", flush=True)
    try:
        server._httpd.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

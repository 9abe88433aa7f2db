"""llama.cpp's own `llama-server` for the local models: started on 127.0.0.1, health-waited, stopped.

Why a server at all: llama-server decodes several sequences together over `--parallel` slots
(continuous batching) and reuses the longest matching prompt prefix it holds, so a stage's shared
instructions and the library block are prefilled once, not per call; the in-process engine runs one
request at a time per model. docs/local-models.md has the figures behind using it for `local*`.

The binary is built by `scripts/llama-wheel --server` from the same llama-cpp-python sdist and the
same portable flags as the wheel, into the same wheelhouse (`native.build_dir`); `$TED_LLAMA_SERVER`
names another binary.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.metadata
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ted.errors import ModelError
from ted.files import cache_dir
from ted.models import local
from ted.models.base import BaseChatModel
from ted.models.native import build_dir, local_threads, quiet_waits

BUILD_HINT = "build it once: LLAMA_CPP_VERSION=<installed llama-cpp-python version> scripts/llama-wheel --server (make demo does)"
DEFAULT_PARALLEL = 6
"""Slots per server: 4 sequences decode together at ~2.2x one's rate on 2 cores, and 2 more keep a
batch's primed prompt heads (`ted.distill.prime`) from being the least recently used slot that a
wave's requests take over (docs/local-models.md)."""
DEFAULT_CTX_PER_SLOT = 8192
START_TIMEOUT_S = 300.0


def server_binary() -> Path | None:
    """The llama-server built for the installed llama-cpp-python, or `$TED_LLAMA_SERVER`; None if neither exists."""
    named = os.environ.get("TED_LLAMA_SERVER")
    if named:
        return Path(named) if os.access(named, os.X_OK) else None
    try:
        version = importlib.metadata.version("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError:
        return None
    binary = build_dir("llama-server", version) / "llama-server"
    return binary if os.access(binary, os.X_OK) else None


def thread_split(count: int, cores: int | None = None) -> list[int]:
    """Threads for `count` servers: all cores each. With waits that sleep (`quiet_waits`), two
    servers sharing the cores cost each other little, and one alone keeps the whole machine."""
    return [cores or local_threads()] * count


@dataclass
class ManagedServer:
    """One llama-server child process serving one local model."""

    spec: str
    parallel: int = DEFAULT_PARALLEL
    ctx_per_slot: int = DEFAULT_CTX_PER_SLOT
    threads: int | None = None
    port: int | None = None
    log_path: Path | None = None
    host: str = "127.0.0.1"
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _workdir: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    @property
    def model(self) -> local.LocalModel:
        return local.get(self.spec)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def openai_spec(self) -> str:
        """The ted spec that reaches this server: `openai:NAME@http://127.0.0.1:PORT/v1`."""
        return f"openai:{self.model.name}@{self.base_url}"

    def command(self, binary: Path, model_path: str, workdir: Path) -> list[str]:
        threads = self.threads or local_threads()
        args = [
            str(binary), "--model", model_path, "--alias", self.model.name,
            "--host", self.host, "--port", str(self.port),
            "--ctx-size", str(self.ctx_per_slot * self.parallel), "--parallel", str(self.parallel),
            "--threads", str(threads), "--threads-batch", str(threads),
            "--jinja", "--metrics", "--no-webui", "--cache-reuse", "256",
        ]  # fmt: skip
        if self.model.template == "gemma":  # the tiny base GGUF has no template: ours keeps the system message
            from ted.models.llama_cpp import GEMMA_CHAT_TEMPLATE

            template = workdir / "gemma.jinja"
            template.write_text(GEMMA_CHAT_TEMPLATE)
            args += ["--chat-template-file", str(template)]
        return args

    def start(self, timeout: float = START_TIMEOUT_S) -> ManagedServer:
        """Start the child on a free port and wait until it has loaded the model (`/health` says ok)."""
        binary = server_binary()
        if binary is None:
            raise ModelError(f"llama-server is not built; {BUILD_HINT}")
        model_path = local.model_path(self.spec)  # assembled and checked before anything loads it
        self._workdir = tempfile.TemporaryDirectory(prefix="ted-llama-server-")
        workdir = Path(self._workdir.name)
        self.port = self.port or _free_port()
        self.log_path = self.log_path or cache_dir() / "logs" / f"llama-server-{self.model.name}-{os.getpid()}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.command(binary, model_path, workdir), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=quiet_waits(os.environ), preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )  # fmt: skip
        atexit.register(self.stop)
        started = time.monotonic()
        while not self._healthy():
            if self.process.poll() is not None or time.monotonic() - started > timeout:
                tail = self.log_tail()
                self.stop()
                raise ModelError(f"llama-server for {self.spec} did not start ({tail}); log: {self.log_path}")
            time.sleep(0.2)
        return self

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.host}:{self.port}/health", timeout=2) as reply:
                return reply.status == 200
        except (OSError, ValueError):
            return False

    def log_tail(self, lines: int = 1) -> str:
        try:
            text = Path(self.log_path or "").read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        return " | ".join(text[-lines:]) or "no output"

    def metrics(self) -> dict[str, float]:
        """The server's Prometheus counters (`/metrics`), by name without the `llamacpp:` prefix."""
        with urllib.request.urlopen(f"http://{self.host}:{self.port}/metrics", timeout=5) as reply:
            text = reply.read().decode()
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                with contextlib.suppress(ValueError):
                    values[name.removeprefix("llamacpp:")] = float(value)
        return values

    def stop(self) -> None:
        """Stop the child (SIGTERM, then SIGKILL after 10 s); idempotent."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._workdir is not None:  # the template file
            self._workdir.cleanup()
            self._workdir = None

    def __enter__(self) -> ManagedServer:
        return self if self.process else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGTERM it when ted's process dies, so no server outlives a killed run."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve(specs: Sequence[str], *, parallel: int = DEFAULT_PARALLEL, ctx_per_slot: int = DEFAULT_CTX_PER_SLOT,
          threads: Sequence[int] | None = None) -> Iterator[list[ManagedServer]]:  # fmt: skip
    """One server per distinct local spec, started in order and all stopped on the way out."""
    specs = list(dict.fromkeys(specs))
    threads = list(threads or thread_split(len(specs)))
    servers = []
    try:
        for spec, count in zip(specs, threads, strict=True):
            servers.append(ManagedServer(spec, parallel=parallel, ctx_per_slot=ctx_per_slot, threads=count).start())
        yield servers
    finally:
        for server in servers:
            server.stop()


_RUNNING: dict[str, ManagedServer] = {}


def load_served(spec: str, *, max_concurrency: int = 8, **bounds: float | int) -> BaseChatModel:
    """The OpenAI backend on a managed llama-server for `spec`, started on first use and shared by
    every later load of the same spec in this process (a student that is also the teacher: one server)."""
    from ted.models.openai_api import OpenAIChatModel

    server = _RUNNING.get(spec)
    if server is None or server.process is None or server.process.poll() is not None:
        server = _RUNNING[spec] = ManagedServer(spec).start()
    model = OpenAIChatModel(spec, server.model.name, base_url=server.base_url, max_concurrency=max_concurrency, **bounds)
    model.server = server  # type: ignore[attr-defined]  # for the run summary's cache figures
    model.supports_images = False  # the local GGUFs are text models (no vision projector), as in process
    # Its slots share a prefix only once one has read it (ted.distill.prime); $TED_LOCAL_PRIME=0 sends no primes.
    model.primes_prefixes = os.environ.get("TED_LOCAL_PRIME", "").strip() != "0"
    return model

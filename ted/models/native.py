"""llama.cpp on the user's CPU: the portable build flags, and a probe that runs it in a child process.

Why: llama-cpp-python's default build uses GGML_NATIVE=ON, which enables every instruction set the
build machine *advertises*. Cloud VMs often advertise AMX without granting its tile state, and the
first AMX instruction kills the process with SIGILL, with no Python error to catch. So we build with
the flags below (x86-64-v3: AVX2/FMA/F16C, never AVX-512 or AMX), and before the first in-process load
of a build we decode two tokens in a child process: a crash there becomes one line naming the fix.

Runnable without ted installed (`python ted/models/native.py --cmake-args`): scripts/llama-wheel uses it.
"""

from __future__ import annotations

import hashlib
import os
import platform
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

_X86 = (
    "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON "
    "-DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
)
# Other architectures: ggml's generic baseline for the architecture, without tuning to this CPU.
_OTHER = "-DGGML_NATIVE=OFF"


def portable_cmake_args(machine: str | None = None) -> str:
    """The CMAKE_ARGS for a llama-cpp-python build that runs on any machine of this architecture."""
    return _X86 if (machine or platform.machine()).lower() in {"x86_64", "amd64"} else _OTHER


def build_dir(kind: str, version: str, machine: str | None = None) -> Path:
    """Where scripts/llama-wheel keeps a build of llama-cpp-python `version` with the portable flags
    (`$TED_LLAMA_CMAKE_ARGS` overrides them, as there). `kind`: "llama-cpp-python" for the wheel,
    "llama-server" for the server binary. The key is the script's, byte for byte."""
    machine = machine or platform.machine()
    flags = os.environ.get("TED_LLAMA_CMAKE_ARGS") or portable_cmake_args(machine)
    key = hashlib.sha256(f"{version}\n{flags}\n{machine}\n".encode()).hexdigest()[:16]
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ted" / "wheels"
    return root / f"{kind}-{version}-{key}"


def rebuild_hint() -> str:
    return (
        f'rebuild llama-cpp-python portably: CMAKE_ARGS="{portable_cmake_args()}" '
        "pip install --force-reinstall --no-cache-dir --no-deps llama-cpp-python (or run `make demo` in the checkout)"
    )


def cpu_flags() -> set[str]:
    """The instruction-set flags the CPU advertises (Linux; empty elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def physical_cores() -> int:
    """Cores this process may use, not hardware threads: llama.cpp's matrix work gains little from a
    core's second thread, and llama-cpp-python's own default (cpu_count // 2) is one thread on 2 vCPUs."""
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        pairs = set()
        physical = core = ""
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "physical id":
                physical = value.strip()
            elif key == "core id":
                core = value.strip()
                pairs.add((physical, core))
        if pairs:
            return min(len(pairs), allowed)
    except OSError:
        pass
    return allowed


def quiet_waits(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment with OpenMP's threads sleeping, not spinning, while they wait for each other.

    Why: llama.cpp's build uses OpenMP, whose threads spin at every barrier by default. When the
    cores are shared (student and teacher servers, or anything else running), a spinning thread
    burns the time slice its partner needs: measured on 2 busy cores, the 0.5B decoded 0.4-0.5 tok/s
    with 2 spinning threads, 4.3 with 2 sleeping ones, 5.2-5.6 with one (docs/local-models.md)."""
    return {**environ, "OMP_WAIT_POLICY": environ.get("OMP_WAIT_POLICY", "PASSIVE")}


def local_threads() -> int:
    """Threads for a local model: `$TED_LOCAL_THREADS`, else all physical cores."""
    named = os.environ.get("TED_LOCAL_THREADS", "").strip()
    if named:
        from ted.errors import ModelError

        if not named.isdigit() or int(named) < 1:
            raise ModelError(f"TED_LOCAL_THREADS={named!r}: give a whole number of threads, at least 1")
        return int(named)
    return physical_cores()


_PROBE = """
import sys
from llama_cpp import Llama
llm = Llama(model_path=sys.argv[1], n_ctx=128, n_threads=1, verbose=False)
out = llm.create_completion("1 + 1 =", max_tokens=2, temperature=0)
print(repr(out["choices"][0]["text"]))
"""


def probe(model_path: str, timeout: float = 300) -> tuple[bool, str]:
    """Load `model_path` and decode two tokens in a child process. Returns (ran, what happened)."""
    try:
        done = subprocess.run([sys.executable, "-c", _PROBE, model_path], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"the llama.cpp probe did not finish in {timeout:.0f} s"
    if done.returncode == 0:
        return True, f"decoded {done.stdout.strip()}"
    if done.returncode < 0:
        name = signal.Signals(-done.returncode).name
        why = "an instruction this CPU does not run" if name == "SIGILL" else "a native crash"
        return False, f"llama.cpp died with {name} ({why})"
    last = (done.stderr.strip().splitlines() or ["no output"])[-1]
    return False, f"llama.cpp failed to run: {last}"


def _build_key() -> str:
    """Identifies the installed llama.cpp build on this CPU: a new build or a new CPU probes again."""
    import importlib.util

    spec = importlib.util.find_spec("llama_cpp")
    parts = [platform.machine(), " ".join(sorted(cpu_flags()))]
    if spec and spec.origin:
        for lib in sorted(Path(spec.origin).parent.rglob("*.so*")) + sorted(Path(spec.origin).parent.rglob("*.dylib")):
            stat = lib.stat()
            parts.append(f"{lib.name}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def ensure_runs(model_path: str, cache: Path) -> None:
    """Probe once per (llama.cpp build, CPU) before loading in process; raise ModelError if it crashes."""
    from ted.errors import ModelError

    if os.environ.get("TED_SKIP_LLAMA_PROBE"):
        return
    marker = cache / "probes" / f"llama-cpp-{_build_key()}.ok"
    if marker.is_file():
        return
    ran, what = probe(model_path)
    if not ran:
        raise ModelError(f"{what}; {rebuild_hint()}")
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(what + "\n")
    except OSError:
        pass  # an unwritable cache only means probing again next time


if __name__ == "__main__":
    if sys.argv[1:] == ["--cmake-args"]:
        print(portable_cmake_args())
    else:
        sys.exit("usage: python ted/models/native.py --cmake-args")

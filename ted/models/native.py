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

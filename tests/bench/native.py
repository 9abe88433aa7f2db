"""Decode speed of two llama-cpp-python builds side by side, on the bundled model, in one run.

    python -m tests.bench.native WHEEL_A WHEEL_B [--tokens 96] [--rounds 3]

Each wheel goes into its own throw-away venv that reuses this environment's other packages;
the builds alternate round by round so machine noise hits both. Prints tokens per CPU-second (one thread) per build and the
ratio B/A. Used to decide whether an AVX-512 build is worth shipping (README, Install).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from ted.models.local import model_path

_DECODE = """
import sys, time
from llama_cpp import Llama
llm = Llama(model_path=sys.argv[1], n_ctx=512, n_threads=1, n_threads_batch=1, verbose=False)
llm.create_completion("Once upon a time", max_tokens=4, temperature=0)  # warm-up
start = time.process_time()  # CPU time of one thread: far less sensitive to a busy machine than wall time
out = llm.create_completion("Once upon a time", max_tokens=int(sys.argv[2]), temperature=0)
elapsed = time.process_time() - start
print(out["usage"]["completion_tokens"] / elapsed)
"""


def venv_with(wheel: Path, root: Path) -> Path:
    env = root / wheel.parent.name
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    python = env / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True, check=True).stdout.strip()
    (Path(site) / "_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True)
    return python


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheels", type=Path, nargs=2)
    parser.add_argument("--tokens", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    model = model_path("local:tiny")
    with tempfile.TemporaryDirectory() as tmp:
        pythons = [venv_with(wheel.resolve(), Path(tmp)) for wheel in args.wheels]
        speeds: list[list[float]] = [[], []]
        for _ in range(args.rounds):
            for i, python in enumerate(pythons):
                done = subprocess.run([str(python), "-c", _DECODE, model, str(args.tokens)], capture_output=True, text=True)
                if done.returncode != 0:
                    sys.exit(f"build {args.wheels[i].parent.name} failed: exit {done.returncode}: {done.stderr[-500:]}")
                speeds[i].append(float(done.stdout.strip().splitlines()[-1]))
    a, b = (statistics.median(s) for s in speeds)
    for wheel, s in zip(args.wheels, speeds):
        print(f"{wheel.parent.name}: median {statistics.median(s):.1f} tok per CPU-s over {len(s)} rounds ({', '.join(f'{x:.1f}' for x in s)})")
    print(f"native: ratio_b_over_a={b / a:.3f}")


if __name__ == "__main__":
    main()

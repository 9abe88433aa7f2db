"""A deterministic simulator and the library of one uninterrupted run against it.

The crash, Ctrl-C and outage tests interrupt the same run in different ways, resume it, and compare
the result with this reference: same data, options and seed, so the libraries must be equal.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.reliability.common import clean_env, ted_command
from tests.reliability.simulated import RecordingSimulator, comparable, distill_args
from tests.sim import write_problems

# 12 problems in batches of 3 over 4 epochs: 16 checkpoints, compression every batch or two.
RUN_OPTIONS = ("--epochs", "4", "--rollouts", "2", "--batch-size", "3", "--budget-tokens", "250", "--max-items", "4",
               "--max-tokens", "64", "--json-max-tokens", "512", "--seed", "7")  # fmt: skip


@dataclass
class Deterministic:
    sim: RecordingSimulator
    data: Path
    reference: dict[str, object]

    def args(self, out: Path, *extra: str) -> list[str]:
        return distill_args(self.sim, self.data, out, *RUN_OPTIONS, *extra)


@pytest.fixture(scope="session")
def deterministic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deterministic]:
    folder = tmp_path_factory.mktemp("deterministic")
    data = write_problems(folder / "problems.jsonl", 12, seed=5)
    # 0.1 s per call stretches the run over a few seconds, so kills land in every phase of it.
    with RecordingSimulator(0.1, seed=11, tokens_per_reply=40) as sim:
        out = folder / "reference" / "library.json"
        proc = subprocess.run(ted_command(*distill_args(sim, data, out, *RUN_OPTIONS)), cwd=folder, env=clean_env(),
                              capture_output=True, text=True, timeout=180)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        reference = comparable(out)
        assert reference["items"] and reference["history"], "the reference run learned nothing: the comparison would be empty"
        yield Deterministic(sim, data, reference)

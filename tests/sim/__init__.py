"""A simulated OpenAI-compatible server for benchmarks and fault tests (see `server`)."""

from tests.sim.replies import write_problems
from tests.sim.server import FAULTS, Latency, Simulator, Stats

__all__ = ["FAULTS", "Latency", "Simulator", "Stats", "write_problems"]

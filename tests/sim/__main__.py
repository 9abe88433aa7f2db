"""`python -m tests.sim`: run the simulator in the foreground (for manual tests against any client)."""

from __future__ import annotations

import argparse
import threading

from tests.sim.server import FAULTS, Latency, Simulator


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the TED simulator (an OpenAI-compatible test server) in the foreground.")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per call (fixed)")
    parser.add_argument("--teacher-latency", type=float, default=None, help="seconds per teacher call (default: --latency)")
    parser.add_argument("--per-token", type=float, default=0.0, help="seconds added per completion token (both roles)")
    parser.add_argument("--failure-rate", type=float, default=0.0)
    parser.add_argument("--faults", default=",".join(FAULTS), help="comma-separated fault kinds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tokens", type=int, default=200, help="about this many tokens per solve reply")
    parser.add_argument("--reasoning", choices=["field", "think"], default=None,
                        help="a thinking model: reasoning in message.reasoning_content, or inline <think>")
    parser.add_argument("--long-rate", type=float, default=0.0, help="share of solve replies that think 8x longer")
    parser.add_argument("--max-model-len", type=int, default=None, help="context window (reported in /v1/models)")
    args = parser.parse_args()
    teacher = Latency(args.teacher_latency, per_token=args.per_token) if args.teacher_latency is not None else None
    sim = Simulator(Latency(args.latency, per_token=args.per_token), teacher_latency=teacher, failure_rate=args.failure_rate, faults=args.faults.split(","), seed=args.seed,
                    tokens_per_reply=args.tokens, port=args.port, reasoning=args.reasoning, long_rate=args.long_rate,
                    max_model_len=args.max_model_len)
    with sim:
        print(f"simulator at {sim.base_url} (Ctrl-C stops)", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()

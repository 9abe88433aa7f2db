"""The screen behind experiments/local-rg.toml: the student's baseline accuracy on candidate
reasoning-gym tasks, measured before the plan was fixed, on problems the experiment never uses.

Each task's problems are the *validation* split (`rg:NAME?split=validation&n=N&seed=S`): disjoint by
item seed and by question text from the train split the libraries are distilled on and the test
split they are evaluated on (see ted/tasks/rg.py). The student answers as in the experiment's
baseline arm (the task's system prompt, no library, greedy), through any OpenAI-compatible server;
replies are graded by the task (reasoning-gym's own score_answer).

    python experiments/screen.py --student openai:qwen05b@http://127.0.0.1:PORT/v1 \
        --tasks gsm_symbolic,basic_arithmetic,chain_sum,time_intervals --n 50 --out experiments/screen
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import shlex
import sys
import time
from pathlib import Path


async def screen_task(name: str, n: int, seed: int, student: str, max_tokens: int, concurrency: int, out: Path) -> dict:
    """Screen one task; each answer is appended to `out/NAME.jsonl` as it comes, so a killed screen resumes
    where it stopped (answers already there are not asked again)."""
    from ted.distill.rollouts import student_messages
    from ted.models import SamplingParams, load_model
    from ted.tasks import get_task
    from ted.tasks.data import load_problems

    task = get_task(f"rg:{name}")
    spec = f"rg:{name}?split=validation&n={n}&seed={seed}"
    problems = load_problems(spec)
    rows_path = out / f"{name}.jsonl"
    done = {row["id"]: row for row in map(json.loads, rows_path.read_text().splitlines())} if rows_path.exists() else {}
    model = load_model(student, max_concurrency=concurrency, timeout=3600)
    params = SamplingParams(temperature=0.0, max_tokens=max_tokens, seed=seed)
    started = time.perf_counter()

    async def one(problem, log):  # noqa: ANN001, ANN202
        began = time.perf_counter()
        result = await model.chat(student_messages(None, problem, task), params)
        text = result.texts[0] if result.texts else ""
        grade = task.grade(text, problem)
        row = {"id": problem.id, "correct": bool(grade.correct), "answer": grade.answer, "gold": problem.answer,
               "answer_line": "answer:" in text.lower(), "truncated": result.truncated(0),
               "completion_tokens": result.usage.completion_tokens, "seconds": round(time.perf_counter() - began, 1)}  # fmt: skip
        log.write(json.dumps(row) + "\n")
        log.flush()
        done[problem.id] = row

    try:
        with rows_path.open("a", encoding="utf-8") as log:
            await asyncio.gather(*(one(p, log) for p in problems if p.id not in done))
    finally:
        await model.aclose()
    rows = [done[p.id] for p in problems]
    correct = sum(r["correct"] for r in rows)
    return {
        "task": f"rg:{name}", "data": spec, "n": len(rows), "correct": correct, "accuracy": correct / len(rows),
        "answer_lines": sum(r["answer_line"] for r in rows), "truncated": sum(r["truncated"] for r in rows),
        "completion_tokens": sum(r["completion_tokens"] for r in rows), "wall_s_this_session": round(time.perf_counter() - started, 1),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--student", required=True)
    parser.add_argument("--tasks", required=True, help="comma-separated reasoning-gym generators")
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-tokens", type=int, default=1024)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("experiments/screen"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    summary = []
    for name in [t.strip() for t in args.tasks.split(",") if t.strip()]:
        result = asyncio.run(screen_task(name, args.n, args.seed, args.student, args.max_tokens, args.concurrency, args.out))
        summary.append(result)
        print(f"{result['task']}: {result['correct']}/{result['n']} = {result['accuracy']:.2f} "
              f"(Answer: line in {result['answer_lines']}, cut off {result['truncated']})", flush=True)  # fmt: skip
        (args.out / "summary.json").write_text(json.dumps({
            "command": shlex.join(["python", *sys.argv]), "python": platform.python_version(), "tasks": summary,
        }, indent=1) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()

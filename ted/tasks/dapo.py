"""DAPO-Math-17k (BytedTsinghua-SIA/DAPO-Math-17k): 17,917 competition problems with integer answers.

The paper's source for the text library. Rows: data_source, prompt (chat messages; the user turn
wraps the problem in the DAPO instruction, "Solve the following math problem step by step. …"
before it and "Remember to put your answer on its own line after "Answer:"." after), ability,
reward_model {ground_truth, style}, extra_info {index}. The published file repeats every problem
100 times (1.79M rows); one copy of each is kept, in first-seen order, before anything else.

The problem is the text between the instruction's lines; the answer is `ground_truth`. Prompt and
grading are AIME's (`ted_aime25`), the benchmark the text library is scored on, so rollouts on DAPO
problems are graded the way the evaluation will grade them.
"""

from __future__ import annotations

import re
from typing import Any

from ted.tasks.aime import AimeTask

# The instruction DAPO wraps around each problem (kept out of the question: ted asks in its own words).
_BEFORE = re.compile(r"^\s*Solve the following math problem step by step\..*?problem\.\s*\n", re.S)
_AFTER = re.compile(r"\n\s*Remember to put your answer on its own line after \"Answer:\"\.?\s*$")


def problem_text(prompt: Any) -> str:
    """The problem inside a DAPO prompt (a list of chat messages, or a plain string)."""
    if isinstance(prompt, list):
        prompt = next((m.get("content", "") for m in prompt if isinstance(m, dict) and m.get("role") == "user"), "")
    text = _AFTER.sub("", _BEFORE.sub("", str(prompt or ""), count=1), count=1)
    return text.strip()


class DapoMathTask(AimeTask):
    name = "dapo_math"
    display_name = "DAPO-Math-17k"
    dataset = "BytedTsinghua-SIA/DAPO-Math-17k"
    revision = None  # no commit of the Hub repository could be confirmed offline, so none is pinned
    default_split = "train"
    lm_eval_tasks = {}  # a training source: no lm-eval task
    required = ("prompt", "reward_model")

    def prepare(self, dataset: Any) -> Any:
        """One row per problem: the published file repeats each one 100 times."""
        seen: set[str] = set()
        keep: list[int] = []
        for start in range(0, len(dataset), 50_000):
            for offset, prompt in enumerate(dataset[start : start + 50_000]["prompt"]):
                text = problem_text(prompt)
                if text not in seen:
                    seen.add(text)
                    keep.append(start + offset)
        return dataset if len(keep) == len(dataset) else dataset.select(keep)

    def canonical_row(self, row: dict[str, Any]) -> dict[str, Any]:
        reward = row.get("reward_model") if isinstance(row.get("reward_model"), dict) else {}
        extra = row.get("extra_info") if isinstance(row.get("extra_info"), dict) else {}
        return {
            "id": extra.get("index"),
            "question": problem_text(row.get("prompt")),
            "answer": reward.get("ground_truth"),
            "source": row.get("data_source"),
        }

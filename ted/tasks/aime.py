"""AIME: `aime` is AIME 2025 (math-ai/aime25, test, 30 rows: problem, answer); `aime24` is
AIME 2024 (Maxwell-Jia/AIME_2024, train, 30 rows: ID, Problem, Solution, Answer).

`acc` follows lm-eval's `aime25` / `aime24` (lm-eval 0.4.13, `lm_eval/tasks/aime`): the prompt
`Question: …\\nAnswer:`, and the answer is the last `\\boxed{}` if one closes, else the text
between the first and last `$`, else the whole reply, compared with the gold after MATH-style
normalisation — so `\\boxed{70}` is right, a bare `Answer: 70` is not, and `070` is not `70`.
`acc_lenient` compares integers (`\\boxed{070}`, `Answer: 70` and `70.0` agree with `70`).
"""

from __future__ import annotations

from typing import Any

from ted import prompts
from ted.library import strip_trailer
from ted.tasks import answers
from ted.tasks.base import Grade, Problem
from ted.tasks.benchmark import BenchmarkTask

_NORMALISE = answers.MathNormaliser(
    drop_all_dollars=False, equals_lhs_max=2, split_approx=False, strict=True, fracs_only_with_sqrt=False
)


class AimeTask(BenchmarkTask):
    name = "aime"
    display_name = "AIME 2025"
    dataset = "math-ai/aime25"
    # Only a short commit id (7510e41) could be confirmed offline; the Hub needs a full SHA.
    revision = None
    default_split = "test"
    lm_eval_tasks = {"ted_aime25": "test"}  # as upstream's aime25 (upstream's `aime` is 1983-2024)
    required = ("problem", "answer")
    answer_hint = "an integer from 0 to 999"
    protocol = "lm-eval 0.4.13 aime25"
    max_gen_toks = 32768

    def canonical_row(self, row: dict[str, Any]) -> dict[str, Any]:
        lowered = {key.lower(): value for key, value in row.items()}
        return {**row, "question": lowered.get("problem"), "answer": lowered.get("answer"), "id": lowered.get("id")}

    def format_prompt(self, problem: Problem) -> str:
        return prompts.render("aime_question", question=problem.question, strip=False)

    def grade(self, text: str, problem: Problem) -> Grade:
        predicted = read_answer(strip_trailer(text, ""))
        return Grade(predicted if predicted.strip() else None, equivalent(predicted, str(problem.answer)))

    def is_correct(self, predicted: str, problem: Problem) -> bool:
        """The lenient verdict: integers compare as integers, anything else by equivalence."""
        gold, value = answers.to_integer(problem.answer), answers.to_integer(predicted)
        if gold is not None and value is not None:
            return gold == value
        return answers.free_form_equal(problem.answer, predicted, self.tolerance)


def read_answer(reply: str) -> str:
    """The harness's answer: the last closed `\\boxed{…}`, else between the first and last `$`, else all."""
    dollars = [i for i, char in enumerate(reply) if char == "$"]
    answer = reply[dollars[0] + 1 : dollars[-1]] if len(dollars) > 1 else reply
    if "\\boxed " in reply:
        return reply.split("\\boxed ")[-1].split("$")[0]
    boxed = answers.last_boxed(reply)
    if boxed is not None and boxed.startswith("\\boxed{") and boxed.endswith("}"):
        return boxed[len("\\boxed{") : -1]
    return answer


def equivalent(predicted: str, gold: str) -> bool:
    """Equal after normalisation; where normalisation fails on malformed LaTeX, equal as raw text."""
    try:
        return _NORMALISE(predicted) == _NORMALISE(gold)
    except ValueError:
        return predicted == gold


class Aime24Task(AimeTask):
    name = "aime24"
    display_name = "AIME 2024"
    dataset = "Maxwell-Jia/AIME_2024"
    revision = "8d88b2876a82a080e2f172cc9b25d0d9d2cb4792"
    default_split = "train"
    lm_eval_tasks = {"ted_aime24": "train"}
    required = (("Problem", "problem"), ("Answer", "answer"))
    protocol = "lm-eval 0.4.13 aime24"

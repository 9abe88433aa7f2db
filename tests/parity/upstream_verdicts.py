"""Run in a child process with the upstream folder first on sys.path: the harnesses' own verdicts.

Reads {"mathvision": [[gold, options, reply], ...], "visualpuzzles": [...], "prompts": {...}} on
stdin and prints the same shape with each case replaced by the upstream verdict (true/false,
or "guess" where VisualPuzzles would pick a random letter) and each prompt doc by its text.
"""

from __future__ import annotations

import json
import sys

from pathlib import Path

import lmms_eval.tasks.mathvision.utils as mathvision
import lmms_eval.tasks.VisualPuzzles.utils as visualpuzzles
import yaml

_GUESS = object()


def mathvision_verdict(gold: str, options: list[str] | None, reply: str) -> bool:
    doc = {"answer": gold, "options": options or []}
    return bool(mathvision.mathvision_process_results(doc, [reply])["mathvision_standard_eval"]["scores"][0])


def visualpuzzles_verdict(gold: str, options: list[str] | None, reply: str) -> bool | str:
    visualpuzzles.random.choice = lambda choices: _GUESS  # the harness guesses here; report it
    index2ans = dict(zip("ABCD", options)) if options else None
    letter = visualpuzzles.parse_response(reply.strip(), ["A", "B", "C", "D"], index2ans)
    if letter is _GUESS:
        return "guess"
    return letter.lower() == gold.lower()


class _Loader(yaml.SafeLoader):
    """Reads a task YAML; its `!function` tags are not needed for the prompt settings."""


_Loader.add_multi_constructor("!", lambda loader, suffix, node: None)


def task_kwargs(module: object, config: str) -> dict[str, str]:
    """The prompt settings of an upstream task YAML (its lmms_eval_specific_kwargs.default)."""
    path = Path(module.__file__).with_name(config)
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)["lmms_eval_specific_kwargs"]["default"]


def main() -> None:
    request = json.load(sys.stdin)
    out = {
        "mathvision": [mathvision_verdict(*case) for case in request["mathvision"]],
        "visualpuzzles": [visualpuzzles_verdict(*case) for case in request["visualpuzzles"]],
        "prompts": {
            "mathvision": [
                mathvision.mathvision_doc_to_text(doc, task_kwargs(mathvision, "mathvision_test.yaml"))
                for doc in request["prompts"]["mathvision"]
            ],
            "visualpuzzles": [
                visualpuzzles.VisualPuzzles_doc_to_text(doc, task_kwargs(visualpuzzles, "VisualPuzzles_cot.yaml"))
                for doc in request["prompts"]["visualpuzzles"]
            ],
        },
    }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()

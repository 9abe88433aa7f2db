"""MathVision (MathLLMs/MathVision): competition math over figures; `test` 3040, `testmini` 304.

Rows: id, question, options (a list; empty for free-form), decoded_image (PIL) or image (a path
in the dataset repo), answer, solution, level, subject.

`acc` follows lmms-eval's `mathvision_test` / `mathvision_testmini` (lmms-eval 0.7.3, its
"standard" rule-based scorer, no LLM judge): the same prompt (one `\\boxed{}`, "Choices:"), and
the same answer reading — the last box (or the text after "the answer is"), MATH-style
normalisation, then equality as text, as a tuple, or as numbers rounded to 2 decimals where
the answer is plain arithmetic. A multiple-choice reply is right when it names the gold letter
or the gold option's text. `acc_lenient` is ted's own reading (see `ted.tasks.answers`).
"""

from __future__ import annotations

import re
from typing import Any

from ted import prompts
from ted.library import strip_trailer
from ted.tasks import answers
from ted.tasks.base import Grade, Problem
from ted.tasks.benchmark import BenchmarkTask

_NORMALISE = answers.MathNormaliser(
    drop_all_dollars=True, equals_lhs_max=None, split_approx=True, strict=False, fracs_only_with_sqrt=True
)
_PHRASES = ("the final answer is", "the answer is", "the correct answer is", "the answer should be")
# Removed from the boxed text before normalising, in this order (units, formatting, degree signs).
_CLEANUP = (
    (" ", ""), ("\\,", ""), ("∞", "\\infty"), ("+\\infty", "\\infty"), ("\\\\", "\\"), ("\n", ""),
    ("\\text", ""), ("\\mbox", ""), ("bmatrix", "pmatrix"), ("\\left", ""), ("\\right", ""),
    ("^{\\circ}", ""), ("^\\circ", ""), ("{m}^3", ""), ("m^3", ""), ("{units}", ""), ("units", ""),
    ("{km}", ""), ("km", ""),
)  # fmt: skip
_LETTER_WRAPPERS = tuple((wrap.format(c), c) for c in "abcde" for wrap in ("({})", "{{{}}}"))


class MathVisionTask(BenchmarkTask):
    name = "mathvision"
    display_name = "MathVision"
    dataset = "MathLLMs/MathVision"
    revision = "08d26d67d45431e1e88ed7e70f4737615b519aad"
    default_split = "test"
    lm_eval_tasks = {"ted_mathvision": "test", "ted_mathvision_testmini": "testmini"}
    required = ("id", "question", "options", ("decoded_image", "image"), "answer")
    category_field = "subject"
    has_images = True
    tolerance = answers.Tolerance(decimals=2)
    protocol = "lmms-eval 0.7.3 mathvision_test / mathvision_testmini"
    max_gen_toks = 16384

    def canonical_row(self, row: dict[str, Any]) -> dict[str, Any]:
        image = row.get("decoded_image") or row.get("image")
        return {**{k: v for k, v in row.items() if k not in ("decoded_image", "image")}, "images": [image] if image else []}

    def format_prompt(self, problem: Problem) -> str:
        letters = answers.LETTERS[: len(problem.options or [])]
        options = list(zip(letters, problem.options or []))
        return prompts.render("mathvision_question", question=problem.question, options=options, strip=False)

    def grade(self, text: str, problem: Problem) -> Grade:
        """The harness's verdict; a wrong reply with no box and no 'the answer is' counts as no answer."""
        reply = strip_trailer(text, "")
        predicted = read_answer(reply)
        gold = str(problem.answer)
        gold_text = ""
        if problem.options and len(gold) == 1 and 0 <= ord(gold.upper()) - 65 < len(problem.options):
            gold_text = problem.options[ord(gold.upper()) - 65]
        correct = equal(gold, predicted) or equal(gold_text, predicted)
        marked = "oxed{" in reply or any(phrase in reply.lower() for phrase in _PHRASES)
        return Grade(predicted if predicted and (correct or marked) else None, correct)


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_answer(reply: str) -> str:
    """The answer string the harness compares: boxed content or the text after 'the answer is'."""
    text = reply.strip()
    for c in "ABCDE":
        if text.endswith((f" {c}.", f" ({c}).")) or text.startswith((f"{c}\n", f"({c})\n", f"({c}) {c}\n")):
            text = c
    if _is_float(tail := text.split("is ")[-1].rstrip(".")):
        text = tail
    if "oxed{" not in text:
        for phrase in _PHRASES:
            for variant in (phrase, phrase.replace("the", "The")):
                had = variant in text
                text = text.split(variant)[-1].strip()
                if had:
                    text = text.split("\n")[0].split(". ")[0]
    elif text.count("oxed{") > 1:
        text = "\\boxed{" + text.split("oxed{")[-1]
    text = boxed_content(text)
    for old, new in _LETTER_WRAPPERS:
        text = text.replace(old, new)
    return text.rstrip(".").lstrip(":").strip()


def boxed_content(text: str) -> str:
    """Lower-cased content from the first `oxed{` to the last `}` (or the whole text), normalised."""
    text = text.lower().replace("{}", "")
    match = re.search(r"oxed{(.*)}", text, flags=re.S)
    found = match.group(1) if match else text
    close, open_ = found.find("}"), found.find("{")
    if close != -1 and (open_ == -1 or close < open_):
        found = found.split("}")[0]
    found = found.split("=")[-1].split("\\approx")[-1]
    for old, new in _CLEANUP:
        found = found.replace(old, new)
    return _NORMALISE(found)


def _tuple_values(text: str) -> str:
    """`(1/2, 3)` → `(0.5,3)`: each element as its value rounded to 2 decimals; unchanged if any fails."""
    inner = text[1:-1].split(",")
    if len(inner) < 2 or (text[0], text[-1]) not in (("(", ")"), ("[", "]")):
        return text
    out = []
    for element in inner:
        if "infty" in element or element in ("a", "-a"):
            out.append(element)
            continue
        number = answers.python_number(element)
        if number is None:
            return text
        out.append(str(round(number, 2)))
    return text[0] + ",".join(out) + text[-1]


def equal(gold: str, predicted: str) -> bool:
    """The harness's equality: case-insensitive text, then tuples element-wise, then 2-decimal values."""
    gold, predicted = gold.lower(), predicted.lower()
    if not gold.replace(" ", "") or not predicted.replace(" ", ""):
        return False
    if gold.strip() == predicted.strip():
        return True
    gold, predicted = _tuple_values(gold), _tuple_values(predicted)
    if gold == predicted:
        return True
    a, b = answers.python_number(gold), answers.python_number(predicted)
    if a is None or b is None:
        return False
    try:
        return round(a, 2) == round(b, 2)
    except (TypeError, OverflowError):
        return False

"""What the simulator says: a valid reply for each TED pipeline stage, as a pure function of the request.

Stages are recognised by the opening sentence of the prompt templates in `ted/prompts/` (read from
the files, so a reworded prompt still routes correctly as long as its first sentence is kept).
Every reply is derived from a hash of the request, never from call order, so a run is reproducible
and a killed-and-resumed run sees exactly the replies an uninterrupted one would.

Problems are "Compute A + B." style questions (`write_problems`); the simulated student solves
them right with probability `student_accuracy`, cites a few `[E#]` ids of the library in its
system prompt, and pads its reasoning to about `tokens` tokens. A thinking model (`thinking`)
puts that reasoning apart from the answer; `long_rate` makes some replies think much longer.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

# Prompt template → stage name used in counters. `solve` is the student's system prompt.
STAGE_TEMPLATES = {
    "solve": "student",
    "teacher_solve": "teacher_solve",
    "structure": "structure",
    "extract": "extract",
    "compress": "compress",
}
SOLVE_STAGES = frozenset({"student", "teacher_solve"})
JSON_STAGES = frozenset({"structure", "extract", "compress"})

_PROBLEM = re.compile(r"Compute (-?\d+) ([+\-×]) (-?\d+)")
_LIBRARY_ID = re.compile(r"^\[(E\d+)\] ", re.M)
_TRACE = re.compile(r"^## Trace (\d+) \(", re.M)
_ANSWER = re.compile(r"Answer:\s*(\S+)")
_BUDGET = re.compile(r"at most (\d+) items and (\d+) tokens")
_COMPRESS_ITEM = re.compile(r"^\[(E\d+)\] usage=(\d+) priority=([\d.]+) tokens=(\d+)[^:\n]*: ", re.M)
_EXTRACT_PROBLEM = re.compile(r"^## Problem\n(.*?)\n\n## Ground-truth answer", re.M | re.S)
_STUDENT_VERDICT = re.compile(r"^### Student attempt \d+: (CORRECT|WRONG)", re.M)
_ATTEMPT_CITED = re.compile(r"^### Student attempt \d+: (CORRECT|WRONG).*?cited: ([^)]*)\)$", re.M)

# Vocabulary for lessons and padding: enough combinations that distinct problems give distinct lessons.
_WHEN = ["a problem mixes several operations", "the numbers are large", "a result looks surprising", "signs are involved",
         "a sum has many terms", "units appear", "the question asks for a difference", "a product is required",
         "an estimate is easy", "the order of operations matters", "intermediate results are reused",
         "the answer must be an integer", "a step carries a digit", "two quantities are compared",
         "a subtraction could go negative", "the problem restates a quantity"]
_DO = ["write each intermediate result", "estimate the magnitude first", "recompute with a different grouping",
       "check the sign of every term", "align the place values", "restate what is asked", "verify by the inverse operation",
       "round both operands to compare", "split the larger number into parts", "track carries explicitly",
       "compare against a quick bound", "name each quantity before combining"]
_THEN = ["before giving the final answer", "and compare the two results", "so that slips are caught early",
         "and discard answers outside the bound", "then state the answer on its own line", "before moving to the next step",
         "and redo the step if they disagree", "so the final line matches the work"]
_FILLER = ["we read the givens again", "the operation is applied to the operands", "each partial result is kept",
           "the magnitude is checked against an estimate", "nothing in the question changes the operation",
           "the intermediate value is written down", "the units are consistent", "the result is compared with a bound"]


@dataclass(frozen=True)
class Reply:
    """One choice: its answer text, its reasoning (thinking models) and whether it was cut at `max_tokens`."""

    text: str
    truncated_by_length: bool = False
    reasoning: str = ""


def digest(*parts: object) -> int:
    """A stable 64-bit hash; the only source of randomness in the simulator."""
    data = "\x1f".join(p if isinstance(p, str) else json.dumps(p, sort_keys=True, default=str) for p in parts)
    return int.from_bytes(hashlib.blake2b(data.encode(), digest_size=8).digest(), "big")


def unit(*parts: object) -> float:
    """A uniform number in [0, 1) derived from `parts`."""
    return digest(*parts) / 2**64


def estimate_tokens(text: str) -> int:
    """About four characters a token: what the usage fields report (cheap, no tokenizer)."""
    return max(1, len(text) // 4) if text else 0


@cache
def _markers() -> dict[str, str]:
    """The opening sentence of each prompt template → its stage."""
    folder = resources.files("ted.prompts")
    markers = {}
    for template, stage in STAGE_TEMPLATES.items():
        first_line = folder.joinpath(f"{template}.md").read_text(encoding="utf-8").lstrip().splitlines()[0]
        markers[first_line.split(".")[0]] = stage
    return markers


def message_text(message: dict) -> str:
    """The text of one wire message, whether content is a string or a list of parts."""
    content = message.get("content") or ""
    if isinstance(content, str):
        return content
    return "\n".join(part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text")


def stage_of(messages: list[dict]) -> str:
    """Which pipeline stage sent these messages ("chat" for anything else)."""
    first = message_text(messages[0]) if messages else ""
    for marker, stage in _markers().items():
        if first.startswith(marker):
            return stage
    return "chat"


def solve(question: str) -> str | None:
    """The exact answer to a "Compute A op B." question, or None for any other question."""
    match = _PROBLEM.search(question)
    if not match:
        return None
    a, op, b = int(match.group(1)), match.group(2), int(match.group(3))
    return str(a + b if op == "+" else a - b if op == "-" else a * b)


def write_problems(path: Path, n: int, seed: int = 0) -> Path:
    """A JSONL training set the simulator can solve: `{"id", "question", "answer"}` per line."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(n):
            a, b, op = rng.randint(12, 999), rng.randint(12, 999), rng.choice("+-×")
            question = f"Compute {a} {op} {b}."
            handle.write(json.dumps({"id": f"sim-{i + 1}", "question": question, "answer": solve(question)}) + "\n")
    return path


@dataclass(frozen=True)
class Behaviour:
    """How the simulated models behave (not faults: those live in the server)."""

    tokens: int = 200  # about this many completion tokens per solve reply
    student_accuracy: float = 0.6
    teacher_accuracy: float = 0.95
    compress_target: float = 0.7  # the simulated teacher compresses to this share of the budget
    thinking: bool = False  # a thinking model: the working goes to `Reply.reasoning`, the answer to `text`
    long_rate: float = 0.0  # share of solve replies that think 8 times longer (to run into max_tokens)
    boxed: bool = False  # the final answer as `Answer: \\boxed{N}` (benchmarks graded the upstream way, AIME's)


_JSON_THOUGHT = "I read every trace and the ground truth, and check each claim against them before writing the JSON."


def reply(stage: str, messages: list[dict], key: str, max_tokens: int, behaviour: Behaviour) -> Reply:
    """The reply for one choice; `key` identifies the choice (request content + its seed).

    Generation is cut at about `max_tokens` (four characters a token), reasoning first: a thinking
    model that runs out while thinking returns its partial reasoning and no answer, as vLLM does.
    """
    prompt = message_text(messages[0]) if messages else ""  # JSON stages: the prompt, even on a re-ask
    working = _JSON_THOUGHT
    if stage in SOLVE_STAGES or stage == "chat":
        working, text = _solution(stage, messages, key, behaviour)
    elif stage == "structure":
        text = _chains(prompt)
    elif stage == "extract":
        text = _extraction(prompt, key)
    else:
        text = _compression(prompt, key, behaviour.compress_target)
    if behaviour.thinking:
        reasoning = working
    else:
        reasoning, text = "", (f"{working}\n{text}" if stage in SOLVE_STAGES or stage == "chat" else text)
    limit = max_tokens * 4
    if len(reasoning) >= limit:
        return Reply("", truncated_by_length=True, reasoning=reasoning[:limit])
    if len(reasoning) + len(text) > limit:
        return Reply(text[: limit - len(reasoning)], truncated_by_length=True, reasoning=reasoning)
    return Reply(text, reasoning=reasoning)


def _solution(stage: str, messages: list[dict], key: str, behaviour: Behaviour) -> tuple[str, str]:
    """(the working, the final lines: `Answer:` and, for the student, `Used:`)."""
    user = message_text(messages[-1])
    gold = solve(user)
    accuracy = behaviour.student_accuracy if stage == "student" else behaviour.teacher_accuracy
    if gold is None:
        answer = str(digest(key, "answer") % 100)
    elif unit(key, "correct") < accuracy:
        answer = gold
    else:
        answer = str(int(gold) + 1 + digest(key, "slip") % 9)
    lines = ["Let me solve this step by step."]
    rng = random.Random(digest(key, "pad"))
    length = len(lines[0])
    tokens = behaviour.tokens * (8 if unit(key, "long") < behaviour.long_rate else 1)
    while length < tokens * 4:
        lines.append(f"Step {len(lines)}: {rng.choice(_FILLER)}.")
        length += len(lines[-1]) + 1
    final = [f"Answer: \\boxed{{{answer}}}" if behaviour.boxed else f"Answer: {answer}"]
    if stage == "student":
        ids = _LIBRARY_ID.findall(message_text(messages[0]))
        cited = [ids[digest(key, "cite", i) % len(ids)] for i in range(digest(key, "cites") % 3)] if ids else []
        final.append(f"Used: [{', '.join(dict.fromkeys(cited))}]")
    return "\n".join(lines), "\n".join(final)


def _chains(prompt: str) -> str:
    traces = [int(t) for t in _TRACE.findall(prompt)]
    bodies = re.split(r"^## Trace \d+ \(.*\)$", prompt, flags=re.M)[1:]
    chains = []
    for trace, body in zip(traces, bodies):
        found = _ANSWER.findall(body)
        chains.append(
            {
                "trace": trace,
                "premises": ["the two operands", "the operation asked for"],
                "steps": ["identify the operation", "apply it to the operands", "check the result"],
                "conclusion": found[-1] if found else "none",
            }
        )
    return json.dumps({"chains": chains})


def _lesson(key: str, salt: str) -> str:
    when = _WHEN[digest(key, salt, "when") % len(_WHEN)]
    do = _DO[digest(key, salt, "do") % len(_DO)]
    then = _THEN[digest(key, salt, "then") % len(_THEN)]
    return f"When {when}, {do} {then}."


def _extraction(prompt: str, key: str) -> str:
    verdicts = _STUDENT_VERDICT.findall(prompt)
    library_ids = _LIBRARY_ID.findall(prompt.split("## Problem", 1)[0])
    # A verdict per cited lesson: helpful where the citing attempt was right, harmful where wrong.
    judged: dict[str, str] = {}
    for grade, cited in _ATTEMPT_CITED.findall(prompt):
        for item_id in re.findall(r"E\d+", cited):
            judged.setdefault(item_id, "helpful" if grade == "CORRECT" else "harmful")
    lesson_verdicts = [{"id": item_id, "verdict": verdict, "reason": "as the attempt went"} for item_id, verdict in judged.items()]
    diagnosis = f"{verdicts.count('CORRECT')} of {len(verdicts)} attempts reached the ground truth; the wrong ones slipped in one operation."
    if verdicts and all(v == "CORRECT" for v in verdicts) and library_ids and unit(key, "quiet") < 0.5:
        return json.dumps({"diagnosis": diagnosis, "lesson_verdicts": lesson_verdicts, "operations": []})  # the student reasons well
    ops = [{"op": "add", "text": _lesson(key, "add"), "reason": "separates correct from wrong attempts"}]
    if library_ids and unit(key, "update") < 0.3:
        target = library_ids[digest(key, "target") % len(library_ids)]
        ops.append({"op": "update", "id": target, "text": _lesson(key, "update"), "reason": "sharpen an existing lesson"})
    return json.dumps({"diagnosis": diagnosis, "lesson_verdicts": lesson_verdicts, "operations": ops})


def _compression(prompt: str, key: str, target: float) -> str:
    """Retain the highest-priority items within `target` of the budget, merge the next two, delete the rest."""
    budget = _BUDGET.search(prompt)
    max_items, max_tokens = (int(budget.group(1)), int(budget.group(2))) if budget else (15, 4000)
    items = [(m.group(1), float(m.group(3)), int(m.group(4))) for m in _COMPRESS_ITEM.finditer(prompt)]
    ranked = sorted(items, key=lambda item: (-item[1], -int(item[0][1:])))  # priority, then newest first
    keep_items = max(1, int(max_items * target))
    token_room = max_tokens * target - 60  # the block's header takes about 60 tokens
    ops: list[dict] = []
    kept, used = 0, 0.0
    rest = []
    for item_id, _, tokens in ranked:
        if kept < keep_items - 1 and used + tokens + 4 <= token_room:
            ops.append({"op": "retain", "ids": [item_id]})
            kept, used = kept + 1, used + tokens + 4
        else:
            rest.append(item_id)
    if len(rest) >= 2:
        ops.append({"op": "merge", "ids": rest[:2], "text": _lesson(key, "merge")})
        rest = rest[2:]
    ops += [{"op": "delete", "ids": [item_id]} for item_id in rest]
    return json.dumps({"operations": ops})

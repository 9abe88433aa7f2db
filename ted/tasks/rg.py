"""reasoning-gym tasks: offline problems with checkable answers, made from a seed.

`--task rg:NAME` grades with reasoning-gym's own `score_answer` for generator NAME (e.g.
`gsm_symbolic`, `basic_arithmetic`, `chain_sum`); `--data rg:NAME?split=train&n=100&seed=0`
makes the problems (see `RgSpec` for the syntax, one parser for every command).

**Splits are disjoint by seed and by text.** Problem j of `(split, seed)` is what reasoning-gym
makes with item seed `SPLIT_BASE[split] + seed * STRIDE + j` (`create_dataset(NAME, seed=s,
size=1)[0]`), so no item seed is in two splits. Two seeds can still make the same question (small
arithmetic has few distinct ones), so a problem is kept only when the hash of its normalised
question text (`base.question_key`) falls in its split's third; a text therefore belongs to one
split whatever the sizes and seeds asked for. Repeats inside one sample are kept once.

**A reply's answer** is read in this order: reasoning-gym's own `<answer>…</answer>` tags, else the
last explicit marker (`Answer:` line, `\\boxed{}`, "the answer is"; see `ted.tasks.answers`),
else the last token of the gold answer's *form* in the reply (a number for numeric answers, an
`HH:MM:SS`-like token for times; never for answers with words, whose literal text would leak the
gold). A numeric answer is then reduced to its number when nothing else in it is arithmetic
(`$288`, `288 items`, `x = 288`, `1,234`; `49 / 16` stays a fraction).
A reply is right when reasoning-gym scores it 1.0 (its partial credit counts as wrong).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, fields as dataclass_fields
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl

from ted.errors import DataError
from ted.tasks import answers
from ted.tasks.base import Problem, question_key

PREFIX = "rg:"
SPLITS = ("train", "validation", "test")
DEFAULT_N = 100
MAX_N = 100_000
MAX_SEED = 999_999
STRIDE = 10**7  # item seeds one (split, seed) stream may use
SPLIT_BASE = {split: index * 10**13 for index, split in enumerate(SPLITS)}  # > (MAX_SEED + 1) * STRIDE apart
_TRIES_PER_PROBLEM = 20  # a split keeps about a third of what is made; more tries means the space is too small
_RESERVED = ("seed", "size")  # config fields ted sets itself
_NAME = re.compile(r"^[a-z0-9_]+$")
LM_TASK = "ted_rg"  # the lm-eval task (eval_tasks/ted_rg.yaml); its metadata names the problems
METADATA_KEY = "rg"  # ... under this key, as a spec


# --------------------------------------------------------------------------- the spec
@dataclass(frozen=True)
class RgSpec:
    """`rg:NAME[?split=S&n=N&seed=K&FIELD=VALUE…]`: a generator, a split, how many, which seed stream,
    and overrides of the generator's config (its dataclass fields, e.g. `max_terms=3`)."""

    generator: str
    split: str = "train"
    n: int = DEFAULT_N
    seed: int = 0
    config: tuple[tuple[str, str], ...] = field(default=())  # (field, its value as canonical JSON), sorted

    @property
    def task_name(self) -> str:
        return f"{PREFIX}{self.generator}"

    def __str__(self) -> str:
        query = [f"split={self.split}", f"n={self.n}", f"seed={self.seed}"]
        query += [f"{key}={value}" for key, value in self.config]
        return f"{self.task_name}?{'&'.join(query)}"


def is_spec(text: str | None) -> bool:
    return bool(text) and str(text).strip().lower().startswith(PREFIX)


def parse_spec(text: str, split: str = "train") -> RgSpec:
    """The spec in `text`; `split` is the default split (train for training data, test for evaluation)."""
    text = text.strip()
    if not is_spec(text):
        raise DataError(f"{text!r} is not a reasoning-gym spec; write rg:NAME?split=train&n=100&seed=0")
    name, _, query = text[len(PREFIX) :].partition("?")
    name = name.strip().lower()
    generators = available()
    if not _NAME.match(name) or name not in generators:
        import difflib

        close = difflib.get_close_matches(name, generators, n=3)
        hint = f"did you mean {', '.join(close)}?" if close else "see `python -c \"import reasoning_gym; print(sorted(reasoning_gym.factory.DATASETS))\"`"
        raise DataError(f"{text}: no reasoning-gym generator {name!r}; {hint}")
    values: dict[str, str] = {}
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise DataError(f"{text}: the part after '?' must be key=value pairs joined by '&'") from None
    for key, value in pairs:
        if key in values:
            raise DataError(f"{text}: {key} is given twice")
        values[key] = value
    chosen = values.pop("split", split)
    if chosen not in SPLITS:
        raise DataError(f"{text}: split={chosen!r}; choose one of {', '.join(SPLITS)}")
    n = _bounded_int(text, "n", values.pop("n", str(DEFAULT_N)), 1, MAX_N)
    seed = _bounded_int(text, "seed", values.pop("seed", "0"), 0, MAX_SEED)
    config = tuple(sorted((key, _config_value(text, name, key, value)) for key, value in values.items()))
    spec = RgSpec(name, chosen, n, seed, config)
    dataset(name, SPLIT_BASE[chosen], config)  # the generator's own checks of the overrides, now
    return spec


def _bounded_int(text: str, key: str, value: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise DataError(f"{text}: {key}={value!r} is not a whole number") from None
    if not low <= number <= high:
        raise DataError(f"{text}: {key}={number} is outside {low}..{high}")
    return number


def _config_value(text: str, generator: str, key: str, value: str) -> str:
    """A config override as canonical JSON: the value read as JSON when it parses (numbers, true/false,
    lists), else as text."""
    known = sorted(f.name for f in dataclass_fields(_registry()[generator][1]) if f.name not in _RESERVED)
    if key not in known:
        raise DataError(f"{text}: {key!r} is not an option of {generator}; use split, n, seed or one of its config fields: {', '.join(known)}")
    try:
        return canonical(json.loads(value))
    except json.JSONDecodeError:
        return canonical(value)


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def spec_from_metadata(metadata: dict[str, Any]) -> RgSpec:
    """The spec that lm-eval's `--metadata` names under `rg` (its split defaults to test). One key
    holding the spec, not one per part: lm-eval merges the model's arguments into the metadata, and a
    model's `seed` must never pick the problems."""
    spec = metadata.get(METADATA_KEY)
    if not spec or not isinstance(spec, str):
        raise DataError(f'{LM_TASK} needs the problems in --metadata, e.g. {{"{METADATA_KEY}": "rg:gsm_symbolic?split=test&n=200&seed=0"}}')
    return parse_spec(spec, split="test")


def lm_eval_metadata(spec: RgSpec) -> dict[str, Any]:
    """`--metadata` for `ted_rg` that names exactly `spec` (what `ted eval --task rg:…` passes)."""
    return {METADATA_KEY: str(spec)}


def benchmark_tests(name: str, given: str | None, size: int) -> RgSpec:
    """The problems benchmark `name` (rg:NAME) is scored on: `given` (`--eval-data`, a spec of the same
    generator; its split defaults to test), else its first `size` test problems."""
    spec = parse_spec(given or f"{name}?n={size}", split="test")
    if spec.task_name != name:
        raise DataError(f"--eval-data {given}: problems of {spec.task_name}, but the benchmark is {name}")
    return spec


def training_pool(name: str, n: int, seed: int) -> str:
    """The default training pool of a reasoning-gym task: `n` problems of its train split from `seed`."""
    return str(RgSpec(parse_spec(name).generator, "train", n, seed))


# --------------------------------------------------------------------------- reasoning-gym
def _registry() -> dict[str, tuple[type, type]]:
    try:
        from reasoning_gym.factory import DATASETS
    except ImportError:  # a broken install: reasoning-gym is a core dependency
        raise DataError("reasoning-gym is not installed: pip install reasoning-gym") from None
    return DATASETS


def available() -> list[str]:
    """The generator names reasoning-gym registers."""
    return sorted(_registry())


@lru_cache(maxsize=4096)
def dataset(generator: str, item_seed: int, config: tuple[tuple[str, str], ...]) -> Any:
    """reasoning-gym's dataset of one item for `item_seed` (its scorer reads the dataset's config)."""
    from reasoning_gym import create_dataset

    overrides = {key: json.loads(value) for key, value in config}
    try:
        return create_dataset(generator, seed=item_seed, size=1, **overrides)
    except (AssertionError, ValueError, TypeError) as err:
        raise DataError(f"rg:{generator}: reasoning-gym refuses the config {overrides} ({err or type(err).__name__})") from None


def _entry(generator: str, item_seed: int, config: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    return dataset(generator, item_seed, config)[0]


def split_of(question: str) -> str:
    """The split a question text belongs to: by the hash of its normalised text, in thirds."""
    return _split_of_key(question_key(question))


def _split_of_key(key: str) -> str:
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return SPLITS[int.from_bytes(digest[:8], "big") % len(SPLITS)]


def generate(spec: RgSpec) -> list[Problem]:
    """The `spec.n` problems of the spec's split and seed stream (see the module docstring)."""
    base = SPLIT_BASE[spec.split] + spec.seed * STRIDE
    tries = min(STRIDE, _TRIES_PER_PROBLEM * spec.n + 100)
    problems: list[Problem] = []
    seen: set[str] = set()
    for offset in range(tries):
        entry = _entry(spec.generator, base + offset, spec.config)
        key = question_key(entry["question"])
        if key in seen or _split_of_key(key) != spec.split:
            continue
        seen.add(key)
        problems.append(_problem(spec, base + offset, entry))
        if len(problems) == spec.n:
            return problems
    raise DataError(
        f"{spec}: reasoning-gym made only {len(problems)} distinct {spec.split} problems in {tries} tries; "
        "ask for fewer (n=…) or widen the generator's config"
    )


def _problem(spec: RgSpec, item_seed: int, entry: dict[str, Any]) -> Problem:
    return Problem(
        id=f"{spec.generator}-{spec.split}-{item_seed - SPLIT_BASE[spec.split]}",
        question=entry["question"],
        answer=str(entry["answer"]),
        # plain values, so a JSONL written by `ted data sample` reads back graded alike
        meta={"rg_generator": spec.generator, "rg_item_seed": item_seed, "rg_config": canonical({k: json.loads(v) for k, v in spec.config})},
    )


def load(text: str, split: str = "train", limit: int | None = None) -> list[Problem]:
    """Problems for a spec string (`limit` keeps the first ones, as for any data source)."""
    problems = generate(parse_spec(text, split))
    return problems[:limit] if limit is not None else problems


def entry_of(generator: str, problem: Problem) -> tuple[Any, dict[str, Any]]:
    """reasoning-gym's dataset and entry behind a problem, made again from its item seed so the scorer
    sees the metadata it needs; a problem without one (a user's file) is scored by its answer alone."""
    meta = problem.meta
    if "rg_item_seed" not in meta:
        return dataset(generator, SPLIT_BASE["train"], ()), {"question": problem.question, "answer": problem.answer, "metadata": {}}
    if meta.get("rg_generator") != generator:
        raise DataError(f"problem {problem.id} was made by reasoning-gym {meta.get('rg_generator')!r}; grade it with --task {PREFIX}{meta.get('rg_generator')}")
    try:
        config = tuple(sorted((key, canonical(value)) for key, value in json.loads(meta.get("rg_config") or "{}").items()))
        made = dataset(generator, int(meta["rg_item_seed"]), config)
    except (ValueError, TypeError, AttributeError):
        raise DataError(f"problem {problem.id}: unreadable rg_item_seed or rg_config") from None
    entry = made[0]
    if entry["question"] != problem.question or str(entry["answer"]) != problem.answer:
        raise DataError(f"problem {problem.id}: reasoning-gym makes another problem from its seed (another reasoning-gym version?); make the data again")
    return made, entry


def reward(generator: str, answer: str | None, problem: Problem) -> float:
    """reasoning-gym's score for an extracted answer (1.0 = right; its partial credit is below)."""
    made, entry = entry_of(generator, problem)
    try:
        return float(made.score_answer(answer, entry))
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise DataError(f"problem {problem.id}: reasoning-gym {generator} cannot score it ({type(err).__name__}: {err}); use data made by {PREFIX}{generator}?…") from None


# --------------------------------------------------------------------------- answers
_NUMBER_TOKEN = re.compile(r"(?<![\w.])[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?(?!\d)|(?<![\w.])[-+]?\d+(?:\.\d+)?(?!\d)")


def _form(gold: str) -> re.Pattern[str] | None:
    """A pattern for tokens of the gold answer's form, or None when the form would reveal the answer."""
    if answers.to_number(gold) is not None:
        return _NUMBER_TOKEN
    if not re.search(r"\d", gold) or re.search(r"[A-Za-z]", gold):
        return None
    shape = re.sub(r"\d+", r"\\d+", re.escape(gold.strip()))
    return re.compile(rf"(?<![\w:.]){shape}(?![\w:])")


def _as_number(candidate: str, gold: str) -> str:
    """A numeric gold's candidate as its number, written plainly, when nothing else in it is arithmetic:
    `x = 288`, `$288`, `288 apples`, `1,288`, `288.0` → `288`; `49 / 16` and `288 (160 + 128)` stay as
    they are. (reasoning-gym's default scorer compares strings: `288.0` would earn partial credit.)"""
    if answers.to_number(gold) is None:
        return candidate
    token: str | None = candidate if answers.to_number(candidate) is not None else None
    if token is None:
        tail = candidate.rsplit("=", 1)[-1]
        numbers = _NUMBER_TOKEN.findall(tail)
        rest = tail.replace(numbers[0], " ", 1) if len(numbers) == 1 else ""
        token = numbers[0] if rest and not re.search(r"[\d+*/×÷^-]", rest) else None
    if token is None:
        return candidate
    try:
        value = Decimal(re.sub(r"[\s,]", "", answers.clean_candidate(token)).removeprefix("+"))
    except InvalidOperation:
        return candidate
    return str(int(value)) if value == value.to_integral_value() else format(value.normalize(), "f")


def read_answer(text: str, gold: str) -> tuple[str | None, str]:
    """(the reply's final answer or None, how it was found: "tag", "marker", "form" or "none")."""
    from reasoning_gym.utils import extract_answer

    body = answers.strip_reasoning(text or "")
    if not body:
        return None, "none"
    form = _form(gold)
    tagged = extract_answer(body)
    if tagged is not None and tagged.strip():
        return _as_number(answers.clean_candidate(tagged), gold), "tag"
    marked = answers.find_marked(body)
    if marked is not None:
        candidate = answers.clean_candidate(marked)
        # `Answer: <final answer>` copied from the prompt, or words only, for a numeric gold: not an answer
        if candidate and not (form is _NUMBER_TOKEN and not re.search(r"\d", candidate)):
            return _as_number(candidate, gold), "marker"
    if form is not None:
        found = form.findall(body)
        if found:
            return _as_number(found[-1], gold), "form"
    return None, "none"

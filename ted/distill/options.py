"""Every option of a run, and the few the commands add around it: the one table of names,
defaults, bounds, choices and help.

`RunConfig` (ted.distill.config) takes its fields from the entries in `RUN`; `ted distill`,
`ted reproduce`, `ted chat` and `ted eval` build their flags from the same entries
(ted.commands.options), so a default or a bound is written once. Plain dataclasses and typing
only: the CLI reads this without importing pydantic.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal, Optional, get_args

from ted.limits import BUDGET_ITEMS, BUDGET_TOKENS, DEFAULT_TOKENIZER, MAX_ITEMS, Strategy

# compression: `compress.STRATEGY_TABLE` runs them
STRATEGIES: tuple[str, ...] = get_args(Strategy)
MAX_OPS = 3  # teacher operations applied per problem
TOKENS_CAP = 1_000_000  # any token count an option takes


@dataclass(frozen=True)
class Option:
    """One option: `name` is the field (`--name-with-dashes` the flag); `type` defaults to the default's."""

    name: str
    default: Any
    help: str
    type: type | None = None
    ge: float | None = None
    le: float | None = None
    choices: tuple[str, ...] = ()
    required: bool = False
    repeated: bool = False  # a flag given once per item (`--field A=B --field C=D`): a list of strings
    negatable: bool = True  # a bool flag has `--no-name` too

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def annotation(self) -> Any:
        """The value's Python type: Literal of the choices, a list for a repeated flag, Optional when it may be unset."""
        if self.repeated:
            return list[str]
        base: Any = Literal[self.choices] if self.choices else self.type or type(self.default)
        return Optional[base] if self.default is None and not self.required else base

    def but(self, **changes: Any) -> Option:
        """This option as another command offers it (another default or help)."""
        return replace(self, **changes)

    def argv(self, value: Any) -> list[str]:
        """The command-line words that give this option `value` (a command line printed to rerun a step)."""
        if isinstance(value, bool):
            return [self.flag] if value else [f"--no-{self.flag[2:]}"] if self.negatable else []
        if self.repeated:
            return [word for item in value for word in (self.flag, str(item))]
        return [] if value is None else [self.flag, str(value)]


_TABLE = (
    # What to learn from, and with which models.
    Option("data", None, "Training data: JSONL/CSV file, a local `datasets` folder, a Hub dataset id, or reasoning-gym problems rg:NAME?split=train&n=100.", str, required=True),
    Option("task", "generic", "Scorer and prompt format: generic, mathvision, visualpuzzles, aime, aime24, or rg:NAME (a reasoning-gym generator)."),
    Option("student", None, "Student model spec: openai:MODEL@URL, hf:MODEL, gguf:PATH or local.", str, required=True),
    Option("teacher", None, "Teacher model spec (same forms as --student).", str, required=True),
    Option("out", None, "Where to write the library (library.json).", str, required=True),
    Option("field", [], "Map a data column: OURS=THEIRS (question, answer, options, images, id).", repeated=True),
    Option("split", None, "Dataset split (Hub or datasets folders).", str),
    Option("limit", None, "Use only the first N problems.", int, ge=1, le=100_000_000),
    Option("val_data", None, "Validation data scored after each epoch (learning curve).", str),
    Option("keep_best", False, "Keep the library with the best validation score, not the last."),
    # The loop.
    Option("epochs", 3, "Passes over the training problems.", ge=1, le=1000),
    Option("rollouts", 5, "Student answers per problem (k).", ge=1, le=64),
    Option("batch_size", 8, "Problems per batch sharing one library snapshot; 1 is the paper's sequential loop.", ge=1, le=4096),
    Option("budget_tokens", BUDGET_TOKENS, "Token budget of the rendered library.", ge=1, le=TOKENS_CAP),
    Option("max_items", BUDGET_ITEMS, "Item budget of the library.", ge=1, le=MAX_ITEMS),
    Option("compression", "teacher", "How a library over its budget is cut: the teacher's operations, or a baseline.", choices=STRATEGIES),
    Option("seed", 0, "Seed for shuffling, sampling and random compression."),
    Option("temperature", 0.7, "Student sampling temperature for rollouts.", ge=0),
    Option("teacher_temperature", 0.3, "Teacher sampling temperature.", ge=0),
    # Generation budgets: thinking models reason for thousands of tokens before answering. An
    # OpenAI-compatible server's reported context lowers them per request (see models.openai_api).
    Option("max_tokens", 16384, "Max new tokens per student rollout, reasoning included (lowered to fit a server's reported context).", ge=1, le=TOKENS_CAP),
    Option("teacher_max_tokens", None, "Max new tokens for the teacher's own solution, reasoning included (default: as --max-tokens).", int, ge=1, le=TOKENS_CAP),
    Option("json_max_tokens", 16384, "Max new tokens for the teacher's JSON replies (structuring, extraction, compression), reasoning included.", ge=1, le=TOKENS_CAP),
    Option("max_ops", MAX_OPS, "Teacher operations applied per problem.", ge=1, le=10),
    Option("skip_solved", False, "Skip structuring and extraction when all rollouts and the teacher are right (saves teacher calls)."),
    Option("fresh_teacher_solutions", False, "Ask the teacher to solve every problem again in each epoch (default: once per run, ahead of the batches, reused)."),
    Option("prompts", None, "A folder of prompt files (same names as ted/prompts/*.md) replacing the package's; recorded by hash.", str),
    Option("concurrency", 16, "Model calls in flight at once per endpoint (student and teacher on one server share it; a router in front of replicas is one endpoint).", ge=1, le=4096),
    Option("tokenizer", DEFAULT_TOKENIZER, "Tokenizer for the budget: cl100k_base or a local tokenizer path."),
    Option("name", None, "Library name (default: the output file's stem).", str),
    Option("price", [], "USD per 1M tokens: ROLE=IN/OUT, e.g. teacher=0.6/2.5.", repeated=True),
    Option("system_in_user", False, "Fold the library (the system text) into the first user turn, for servers whose chat template drops system messages.", negatable=False),
    # How the command talks to the endpoints and treats what is there: not part of the run's result.
    Option("api_key_env", "OPENAI_API_KEY", "Environment variable holding the student's API key."),
    Option("teacher_api_key_env", None, "Environment variable for the teacher's key (default: --api-key-env).", str),
    Option("request_timeout", 1800.0, "Seconds to wait for one reply from an OpenAI-compatible endpoint before retrying it (a reply comes whole: 16k tokens take minutes).", ge=1),
    Option("max_retries", 6, "Retries per request (timeouts, resets, 429, 5xx, broken replies) before the run stops, resumable.", ge=0, le=100),
    Option("resume", False, "Continue from the checkpoint next to --out."),
    Option("force", False, "Overwrite an existing --out (written only when the run finishes)."),
    Option("json", False, "Print the summary as one JSON object on stdout (progress stays on stderr).", negatable=False),
    Option("yes", False, "Start a large run (over 1,000 problems × epochs, or over $10 of planned completion tokens) without asking.", negatable=False),
)
OPTIONS: dict[str, Option] = {option.name: option for option in _TABLE}

# RunConfig's fields, as `ted distill` passes them on; the repeated `--field` and `--price` become its
# `fields` and `price` mappings, and the options after them are the command's own.
RUN: tuple[Option, ...] = tuple(option for option in _TABLE[: _TABLE.index(OPTIONS["api_key_env"])] if not option.repeated)

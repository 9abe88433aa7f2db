"""The options of a run, their defaults and bounds: one place, read by the engine and by the CLI.

`ted distill`'s flags are generated from these fields' defaults, bounds and choices, and its
`--config` TOML fills the same names. The hash of the options that change the result guards
`--resume`; every per-call seed is derived from the run seed and the call's identity.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from ted.errors import ConfigError
from ted.library import MAX_ITEMS, Budget, Library, ModelInfo, SourceInfo
from ted.redact import scrub_value
from ted.tokens import DEFAULT_TOKENIZER, TokenCounter

if TYPE_CHECKING:
    from ted.prompts import PromptSet

Strategy = Literal["teacher", "truncate", "random", "none"]  # compression; `compress.STRATEGY_TABLE` runs them
STRATEGIES: tuple[str, ...] = get_args(Strategy)
MAX_OPS = 3  # teacher operations applied per problem

# Options that change nothing in the result; they may differ on --resume.
NOT_HASHED = ("out", "concurrency", "price", "name")


class RunConfig(BaseModel):
    """Every option of a run. It is recorded in the library, and its hash guards `--resume`."""

    model_config = ConfigDict(extra="forbid")

    data: str
    task: str = "generic"
    student: str
    teacher: str
    out: str
    fields: dict[str, str] = Field(default_factory=dict)
    split: str | None = None
    limit: int | None = Field(default=None, ge=1, le=100_000_000)
    val_data: str | None = None
    keep_best: bool = False
    epochs: int = Field(default=3, ge=1, le=1000)
    rollouts: int = Field(default=5, ge=1, le=64)
    batch_size: int = Field(default=8, ge=1, le=4096)
    budget_tokens: int = Field(default=Budget.model_fields["max_tokens"].default, ge=1, le=1_000_000)
    max_items: int = Field(default=Budget.model_fields["max_items"].default, ge=1, le=MAX_ITEMS)
    compression: Strategy = "teacher"
    seed: int = 0
    temperature: float = Field(default=0.7, ge=0)
    teacher_temperature: float = Field(default=0.3, ge=0)
    # Generation budgets: thinking models reason for thousands of tokens before answering. An
    # OpenAI-compatible server's reported context lowers them per request (see models.openai_api).
    max_tokens: int = Field(default=16384, ge=1, le=1_000_000)  # student rollouts
    teacher_max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)  # the teacher's own solution; None: as max_tokens
    json_max_tokens: int = Field(default=16384, ge=1, le=1_000_000)  # the teacher's structuring, extraction, compression
    max_ops: int = Field(default=MAX_OPS, ge=1, le=10)
    skip_solved: bool = False  # no structuring or extraction when all rollouts and the teacher are right
    prompts: str | None = None  # a folder of prompt files replacing the package's
    concurrency: int = Field(default=16, ge=1, le=4096)
    tokenizer: str = DEFAULT_TOKENIZER
    name: str | None = None
    price: dict[str, tuple[float, float]] = Field(default_factory=dict)
    system_in_user: bool = False  # the student's system text folded into its first user turn (ted.system_probe)
    fresh_teacher_solutions: bool = False  # ask the teacher to solve each problem again every epoch (default: once per run)

    def fingerprint(self) -> str:
        data = self.model_dump(mode="json", exclude=set(NOT_HASHED)) | {"prompts_sha256": self.prompt_set().digest}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    def recorded(self) -> dict[str, Any]:
        """The options as stored (library `config`, checkpoint): URLs without their credentials,
        and the hash of the prompt set the run used."""
        return scrub_value(self.model_dump(mode="json", exclude={"out"}) | {"prompts_sha256": self.prompt_set().digest})

    def prompt_set(self) -> PromptSet:
        from ted import prompts  # jinja2: not needed to read the options (the CLI builds its flags from them)

        return prompts.load(self.prompts)

    def max_tokens_for(self, role: str, json_out: bool) -> int:
        """The generation budget of one call: JSON replies, the student's rollouts, the teacher's solution."""
        if json_out:
            return self.json_max_tokens
        return self.max_tokens if role == "student" else self.teacher_max_tokens or self.max_tokens

    def changed_since(self, recorded: dict[str, Any]) -> list[str]:
        """The options that differ from a recorded run's and change its result."""
        return sorted(k for k, v in self.recorded().items() if k not in NOT_HASHED and recorded.get(k) != v)

    def check_budget(self, counter: TokenCounter) -> None:
        """Refuse a token budget too small for even one short lesson, before any call is paid for."""
        probe = Library(budget=Budget(max_tokens=self.budget_tokens, max_items=1, tokenizer=self.tokenizer))
        probe.add("When a problem has several cases, check each case before giving the final answer.", 0)
        needed = probe.tokens(counter)
        if self.budget_tokens < needed:
            raise ConfigError(
                f"--budget-tokens {self.budget_tokens} is smaller than one experience "
                f"(the block with one short lesson takes {needed} tokens); use at least {needed * 3}"
            )

    def new_library(self, student: ModelInfo, teacher: ModelInfo, source: SourceInfo, samples: int, tokenizer: str) -> Library:
        """The empty library a run starts from, carrying the run's provenance and budget."""
        return Library(
            name=self.name or Path(self.out).stem,
            student=student,
            teacher=teacher,
            source=source.model_copy(
                update={"samples": samples, "epochs": self.epochs, "rollouts": self.rollouts, "batch_size": self.batch_size, "seed": self.seed}
            ),
            budget=Budget(max_tokens=self.budget_tokens, max_items=self.max_items, tokenizer=tokenizer),
            compression=self.compression,
            config=self.recorded(),
        )


def derive_seed(seed: int, *parts: object) -> int:
    """A per-call seed from the run seed and the call's identity, so order of completion never matters."""
    digest = hashlib.blake2b(":".join(map(str, (seed, *parts))).encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") & 0x7FFFFFFF

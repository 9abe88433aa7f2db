"""The options of a run as the engine reads them: `RunConfig`, built from the table in
`ted.distill.options` (from which `ted distill`'s flags are built too), the seeds, the new library.

The hash of the options that change the result guards `--resume`; every per-call seed is derived
from the run seed and the call's identity.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from ted.distill.options import RUN, Option
from ted.errors import ConfigError
from ted.library import Budget, Library, ModelInfo, SourceInfo
from ted.redact import scrub_value
from ted.tokens import TokenCounter

if TYPE_CHECKING:
    from ted.prompts import PromptSet

# Options that change nothing in the result; they may differ on --resume.
NOT_HASHED = ("out", "concurrency", "price", "name")


def option_field(option: Option) -> tuple[Any, Any]:
    """A table entry as a pydantic field: its type, its default (none when required) and its bounds."""
    bounds = {key: value for key, value in (("ge", option.ge), ("le", option.le)) if value is not None}
    return option.annotation(), Field(... if option.required else option.default, description=option.help, **bounds)


_RunOptions: type[BaseModel] = create_model(
    "_RunOptions",
    __config__=ConfigDict(extra="forbid"),
    fields=(dict[str, str], Field(default_factory=dict)),  # --field OURS=THEIRS, parsed
    price=(dict[str, tuple[float, float]], Field(default_factory=dict)),  # --price ROLE=IN/OUT, parsed
    **{option.name: option_field(option) for option in RUN},
)


class RunConfig(_RunOptions):  # type: ignore[misc,valid-type]
    """Every option of a run: the fields are the entries of `options.RUN` (their types, defaults and
    bounds). It is recorded in the library, and its hash guards `--resume`."""

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
        if self.budget_tokens > len(probe.render().encode()):
            return  # a token covers at least one byte (one dummy-prefix piece at most): no tokenizer needed to know it fits
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

"""What a library records about its run: the cost ledger, the extraction tally, the learning curve,
the scores. Plain records; the engine (`ted.distill`) and `ted eval` fill them in."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_serializer, model_validator

from ted.library.lessons import Rejection


# A library's figures come from untrusted files too: counts and amounts are never negative, NaN or infinite.
Count = Annotated[int, Field(ge=0)]
Amount = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class RoleCost(BaseModel):
    model_config = ConfigDict(extra="forbid")

    calls: Count = 0  # requests issued (HTTP requests, or in-process generate calls); never replies
    generations: Count = 0  # replies sampled: a server that honours n returns n generations for one request
    retries: Count = 0
    failures: Count = 0
    truncated: Count = 0  # generations cut off at the token limit (finish_reason "length")
    prompt_tokens: Count = 0
    completion_tokens: Count = 0
    cached_prompt_tokens: Count = 0  # of prompt_tokens, those the server served from its prompt-prefix cache (where it says)
    wall_s: Amount = 0.0
    usd: Amount | None = None


class Cost(BaseModel):
    """The cost ledger: totals as in DESIGN §3, plus the same figures per role."""

    model_config = ConfigDict(extra="allow")

    calls: dict[str, Count] = Field(default_factory=dict)  # requests per role
    generations: dict[str, Count] = Field(default_factory=dict)  # replies per role (≥ requests when n is honoured)
    prompt_tokens: Count = 0
    completion_tokens: Count = 0
    wall_s: Amount = 0.0
    usd: Amount | None = None
    roles: dict[str, RoleCost] = Field(default_factory=dict)


class ExtractionTally(BaseModel):
    """Teacher proposals accepted, and rejected by reason.

    In the file it is one flat object, `{"accepted": 3, "rejected: length": 1, …}`, as it always was.
    """

    accepted: int = 0
    rejected: dict[Rejection, int] = Field(default_factory=dict)

    def reject(self, reason: Rejection, count: int = 1) -> None:
        if count:
            self.rejected[reason] = self.rejected.get(reason, 0) + count

    @model_validator(mode="before")
    @classmethod
    def _from_file(cls, data: Any) -> Any:
        if isinstance(data, dict) and "rejected" not in data:
            rejected = {key.removeprefix("rejected: "): n for key, n in data.items() if key.startswith("rejected: ")}
            return {"accepted": data.get("accepted", 0), "rejected": rejected}
        return data

    @model_serializer
    def _to_file(self) -> dict[str, int]:
        flat = {"accepted": self.accepted} | {f"rejected: {reason.value}": n for reason, n in self.rejected.items()}
        return dict(sorted(flat.items()))

    def __bool__(self) -> bool:
        return bool(self.accepted or self.rejected)


class CurvePoint(BaseModel):
    """One learning-curve point, written after each epoch. `val_accuracy` only with a validation split."""

    model_config = ConfigDict(extra="allow")

    epoch: int | None = None
    step: int | None = None
    items: int | None = None
    tokens: int | None = None
    train_accuracy: float | None = None  # rollouts graded correct this epoch
    val_accuracy: float | None = None

    @model_serializer(mode="wrap")
    def _to_file(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        if data.get("val_accuracy") is None:
            data.pop("val_accuracy", None)
        return data


class Metrics(BaseModel):
    """Scores with and without the library, and the learning curve (one point per epoch)."""

    model_config = ConfigDict(extra="allow")

    task: str | None = None
    baseline: float | None = None
    with_library: float | None = None
    curve: list[CurvePoint] = Field(default_factory=list, max_length=10_000)
    extraction: ExtractionTally | None = None

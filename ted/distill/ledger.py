"""The cost ledger: calls, tokens, retries, failures and seconds per role; USD when prices are given."""

from __future__ import annotations

from ted.library import Library, RoleCost
from ted.models.base import ChatResult


class Ledger:
    """Sums each role's calls; `write_into` puts the totals (DESIGN §3) and the per-role figures in a library."""

    def __init__(self, roles: dict[str, RoleCost] | None = None, prices: dict[str, tuple[float, float]] | None = None):
        self.roles: dict[str, RoleCost] = {"student": RoleCost(), "teacher": RoleCost()}
        self.roles.update({k: v.model_copy() for k, v in (roles or {}).items()})
        self.prices = prices or {}

    def record(self, role: str, result: ChatResult) -> None:
        cost = self.roles.setdefault(role, RoleCost())
        cost.calls += result.requests
        cost.generations += len(result.texts)
        cost.retries += result.retries
        cost.truncated += sum(result.truncated(i) for i in range(len(result.texts)))
        cost.prompt_tokens += result.usage.prompt_tokens
        cost.completion_tokens += result.usage.completion_tokens
        cost.cached_prompt_tokens += result.usage.cached_prompt_tokens or 0
        cost.wall_s = round(cost.wall_s + result.wall_s, 3)
        if role in self.prices:
            per_in, per_out = self.prices[role]
            cost.usd = round((cost.prompt_tokens * per_in + cost.completion_tokens * per_out) / 1e6, 6)

    def failure(self, role: str) -> None:
        self.roles.setdefault(role, RoleCost()).failures += 1

    def write_into(self, library: Library, wall_s: float) -> None:
        c = library.cost
        c.roles = {k: v.model_copy() for k, v in self.roles.items()}
        c.calls = {k: v.calls for k, v in self.roles.items()}
        c.generations = {k: v.generations for k, v in self.roles.items()}
        c.prompt_tokens = sum(v.prompt_tokens for v in self.roles.values())
        c.completion_tokens = sum(v.completion_tokens for v in self.roles.values())
        c.wall_s = round(wall_s, 3)
        priced = [v.usd for v in self.roles.values() if v.usd is not None]
        c.usd = round(sum(priced), 6) if priced else None

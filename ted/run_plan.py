"""What a large run will cost, said before it starts, and a confirmation before a big bill.

A 370k-row file, or a `--price` that adds up to real money, used to start with no word. Runs over
`MAX_UNCONFIRMED_PROBLEMS` problems × epochs, or whose planned ceiling passes `MAX_UNCONFIRMED_USD`,
print their plan and need `--yes` (or a "yes" typed at a terminal). The figures are ceilings from
the options and the pipeline's stage table (`ted.distill.progress`): requests per problem and
epoch (k rollouts, or one request where the server honours n; structuring and extraction), the
teacher's solution once per problem (every epoch with `--fresh-teacher-solutions`), one
compression per batch, and completion tokens at each call's `max_tokens`. Prompt tokens depend on the data and the library, so dollars count
completion tokens only and say so.
"""

from __future__ import annotations

import math
import sys

from ted.errors import ConfigError

MAX_UNCONFIRMED_PROBLEMS = 1_000  # problems × epochs
MAX_UNCONFIRMED_USD = 10.0


def plan(run: object, problems: int) -> tuple[str, bool]:
    """The plan as one phrase, and whether it needs confirmation."""
    from ted.distill.progress import STAGE_ROLE, batch_stages

    c = run  # a RunConfig
    steps = problems * c.epochs  # type: ignore[attr-defined]
    fresh = c.fresh_teacher_solutions  # type: ignore[attr-defined]
    calls = {stage: steps for stage in batch_stages(fresh)} | ({} if fresh else {"solve": problems})
    calls["compress"] = c.epochs * math.ceil(problems / c.batch_size)  # type: ignore[attr-defined]
    k = c.rollouts  # type: ignore[attr-defined]
    ceiling = {stage: c.max_tokens_for(STAGE_ROLE[stage], json_out=stage not in ("rollouts", "solve")) for stage in calls}  # type: ignore[attr-defined]
    ceiling["rollouts"] *= k
    completion = {role: sum(n * ceiling[s] for s, n in calls.items() if STAGE_ROLE[s] == role) for role in ("student", "teacher")}
    teacher_requests = sum(n for s, n in calls.items() if STAGE_ROLE[s] == "teacher")
    requests = f"{steps * 1:,}–{steps * k:,} student and up to {teacher_requests:,} teacher requests"
    tokens = f"up to {sum(completion.values()):,} completion tokens"
    usd = None
    prices = c.price  # type: ignore[attr-defined]
    if prices:
        usd = sum(prices.get(role, (0.0, 0.0))[1] * n / 1e6 for role, n in completion.items())
    money = f", up to ${usd:,.2f} for completion tokens alone" if usd is not None else ""
    text = f"{problems:,} problems × {c.epochs} epochs: {requests}, {tokens}{money}"  # type: ignore[attr-defined]
    return text, steps > MAX_UNCONFIRMED_PROBLEMS or (usd is not None and usd > MAX_UNCONFIRMED_USD)


def confirm(run: object, problems: int, yes: bool, say: object) -> None:
    """Print a large run's plan; without --yes, ask at a terminal and refuse elsewhere."""
    text, large = plan(run, problems)
    if not large:
        return
    if yes:
        say(f"plan: {text}")  # type: ignore[operator]
        return
    if sys.stdin.isatty():
        import typer

        if typer.confirm(f"plan: {text}. Start?", default=False, err=True):
            return
        raise ConfigError("not started")
    raise ConfigError(f"this run is large ({text}); pass --yes to start it, or use --limit")

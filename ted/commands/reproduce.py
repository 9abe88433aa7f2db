"""`ted reproduce`: from two endpoints to the paper's main and ablation tables, as one resumable job."""

import time
from typing import Annotated, Any

import typer

from ted.commands.core import err_console, make_reporter
from ted.commands.options import config_option, parse_prices, with_options
from ted.distill.options import OPTIONS
from ted.errors import ConfigError
from ted.reproduce.options import REPRODUCE, STRATEGIES


def _list(value: Any) -> list[str]:
    """A comma-separated option (or a TOML list) as a list of names."""
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in str(value or "").split(",") if part.strip()]


def _eval_data(values: list[str] | dict[str, str], benchmark: str) -> dict[str, str]:
    """`--eval-data PATH` (the main benchmark), `--eval-data BENCH=PATH` or a reasoning-gym spec, repeatable;
    a TOML table as is."""
    from ted.tasks.rg import is_spec

    if isinstance(values, dict):
        return {str(k): str(v) for k, v in values.items()}
    out: dict[str, str] = {}
    for item in values:
        name, sep, path = item.partition("=")
        if is_spec(item):  # rg:NAME?n=300&seed=1 names its own benchmark (and holds '=')
            name, path = item.partition("?")[0], item
        elif not sep or "/" in name or not name:
            name, path = benchmark, item
        out[name.strip()] = path.strip()
    return out


def _config(values: dict[str, Any]) -> Any:
    """The configuration of the flags' values: the table's fields as given, the `PARSED` ones parsed."""
    from pydantic import ValidationError  # inside: `ted` imports every command module at start-up

    from ted.reproduce.plan import ReproduceConfig

    fields = {name: values[name] for name in ReproduceConfig.model_fields if name in values}
    fields.update(
        strategies=_list(values["strategies"]) or list(STRATEGIES),
        seed_strategies=_list(values["seed_strategies"]),
        teachers=_list(values["teachers"]),
        transfer_to=_list(values["transfer_to"]),
        eval_data=_eval_data(values["eval_data"], values["benchmark"]),
        price=parse_prices(values["price"]),
    )
    try:
        return ReproduceConfig(**fields)
    except ValidationError as err:
        first = err.errors()[0]
        option = "--" + str(first["loc"][0]).replace("_", "-") if first["loc"] else "the options"
        message = first["msg"].removeprefix("Value error, ")
        shown = f" {first['input']!r}" if first["loc"] else ""
        raise ConfigError(f"{option}{shown}: {message[:1].lower()}{message[1:]}") from None


class ConsoleDisplay:
    """One line per step with the overall ETA; `ted distill` draws its own bar below it."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def step(self, index: int, total: int, step: Any, eta_s: float | None) -> None:
        elapsed = time.perf_counter() - self.started
        eta = "ETA after the first measured step" if eta_s is None else f"ETA {_duration(eta_s)}"
        err_console().print(f"[bold]step {index}/{total}[/] {step.id} · elapsed {_duration(elapsed)} · {eta}", highlight=False, markup=True)

    def log(self, message: str) -> None:
        err_console().print(message, highlight=False, soft_wrap=True)

    def reporter(self) -> Any:
        return make_reporter()


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def _print_estimate(config: Any, estimates: list[Any], assumptions: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    from ted.reproduce.estimate import total

    console = Console()
    table = Table(title=f"ted reproduce --dry-run: what {config.out} would cost (no call made)")
    for column in ("step", "role", "calls", "prompt tokens", "completion tokens", "completion ceiling", "USD", "USD ceiling"):
        table.add_column(column, justify="left" if column in ("step", "role") else "right")

    def row(step: str, role: str, cost: Any) -> None:
        price = config.price.get(role)
        usd = ["–" if price is None else f"{cost.usd(price, ceiling=ceiling):,.2f}" for ceiling in (False, True)]
        table.add_row(step, role, f"{cost.calls:,}", f"{cost.prompt_tokens:,}", f"{cost.completion_tokens:,}", f"{cost.completion_ceiling:,}", *usd)

    for estimate in estimates:
        for role, cost in estimate.roles.items():
            row(estimate.step, role, cost)
    for role, cost in total(estimates).items():
        row("[bold]total[/]", role, cost)
    console.print(table)
    console.print(
        "How: the calls of ted distill's stage table — per problem and epoch one student request with n = rollouts "
        "(k requests on servers that ignore n), a structuring and an extraction call; the teacher's solution once per problem; "
        "teacher compression once per batch when the library is full; one call per evaluated problem and repeat. "
        "Completion tokens at a typical reply length (not the max; never above a call's max tokens); the ceiling has every call "
        "at its max tokens. Assumed: " + ", ".join(f"{k}={v}" for k, v in assumptions.items()) + ". "
        "Set --reply-tokens to your models' typical answer length; --price ROLE=IN/OUT gives dollars.",
        soft_wrap=False,
    )


@with_options(*REPRODUCE, OPTIONS["resume"].but(help="Continue the run in --out: finished steps are not repeated."))
def reproduce(
    html: Annotated[bool, typer.Option(help="Also write report.html.")] = True,
    dry_run: Annotated[bool, typer.Option(help="Print what the run would cost (calls, tokens, USD with --price) and stop.")] = False,
    config: config_option("reproduce") = None,
    **values: Any,
) -> None:
    """Build the training split, distil a library per strategy (and teacher), evaluate all of them and the baseline, write the report."""
    from ted.reproduce.report import command_line
    from ted.reproduce.run import Reproduction

    cfg = _config(values)
    job = Reproduction(cfg, command_line())
    if dry_run:
        _print_estimate(cfg, job.estimates(), job.estimator.assumptions())
        return
    job.run(resume=values["resume"], display=ConsoleDisplay(), html=html)


def register(app: typer.Typer) -> None:
    app.command()(reproduce)


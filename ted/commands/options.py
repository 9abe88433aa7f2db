"""The option table (`ted.distill.options`) as Typer flags, `--config` through Click's defaults, and
the parsers of the `KEY=VALUE` flags.

A command takes table options with `@with_options(...)`: each becomes a keyword parameter with its
default, its bounds as `click.IntRange`/`FloatRange` and its choices as `click.Choice`, and the
function receives them as `**values`. `--config run.toml` is eager: it fills `ctx.default_map`
(keys as flag names, or under a `[command]` table) before any other option is read, so a flag on
the command line wins over the file, the file wins over the default, and a wrong value from the
file is refused by the same type as on the command line.
"""

import inspect
import math
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional, TypeVar

import typer

from ted.distill.options import OPTIONS, Option
from ted.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])

FLAG_ALIASES = {"n": "samples", "output": "out"}
"""Older names of a flag, still accepted but not shown: one name per idea across commands
(`--samples` for how many problems, `--out` for what a command writes)."""


def normalise_flag(name: str) -> str:
    """Click's `token_normalize_func` for every command: `--model_args` and `--model-args` are one
    flag (lm-eval's spelling and ours), and an older name (FLAG_ALIASES) is the current one."""
    name = name.replace("_", "-")
    return FLAG_ALIASES.get(name, name)


JSON_HELP = "Print the result as JSON on stdout (one object; nothing else on stdout)."
JsonFlag = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
"""The `--json` flag of every command that reports something."""


def print_json(data: Any) -> None:
    """The one JSON form of the commands' `--json` (dates and paths as strings)."""
    import json
    import sys

    from ted.shown import json_visible

    sys.stdout.write(json_visible(json.dumps(data, indent=2, ensure_ascii=False, default=str)) + "\n")


def metavar(label: str) -> str:
    """A readable placeholder for Typer's type label of an option's value (`<list[str]>`,
    `<int range>`, `<a|b>`) in `--help`: TEXT, N, X, PATH, or the choices."""
    inner = label.strip("<>").removeprefix("list[").removesuffix("]")
    return {"str": "TEXT", "int": "N", "int range": "N", "float": "X", "float range": "X", "path": "PATH"}.get(inner, inner)


def finite(value: Optional[float]) -> Optional[float]:
    """A float flag's check beyond its range: `inf` passes `min=0` (Click's FloatRange admits it) and
    then fails far from the flag, as an internal error when the request is serialised."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number")
    return value


def flag(option: Option) -> Any:
    """The Typer annotation of a table entry."""
    decls = (option.flag,) if option.annotation() is bool and not option.negatable else ()
    check = finite if (option.type or type(option.default)) is float else None
    return Annotated[option.annotation(), typer.Option(*decls, help=option.help, min=option.ge, max=option.le, callback=check)]


def with_options(*options: Option | str) -> Callable[[F], F]:
    """Give a command these table entries (names, or entries changed with `Option.but`) as flags,
    after its own parameters; the function takes them as `**values`."""
    entries = [OPTIONS[o] if isinstance(o, str) else o for o in options]

    def decorate(func: F) -> F:
        own = [p for p in inspect.signature(func).parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        added = [
            inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY, default=inspect.Parameter.empty if o.required else o.default, annotation=flag(o))
            for o in entries
        ]
        func.__signature__ = inspect.Signature([*own, *added])  # type: ignore[attr-defined]
        func.__annotations__ = {**func.__annotations__, **{p.name: p.annotation for p in added}}
        return func

    return decorate


def read_config(ctx: typer.Context, param: typer.CallbackParam, path: Optional[Path]) -> Optional[Path]:
    """Load `--config` into the command's defaults (`ctx.default_map`), before the other options are read."""
    if path is None:
        return None
    import tomllib  # only when a file is given

    from ted.files import nesting, read_capped
    from ted.limits import MAX_CONFIG_BYTES, MAX_NESTING

    too_deep = ConfigError(f"--config {path}: nested too deeply (over {MAX_NESTING} levels); a ted config is a table of options")
    try:
        data = tomllib.loads(read_capped(path, MAX_CONFIG_BYTES, ConfigError, f"--config {path}").decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ConfigError(f"--config {path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"--config {path}: invalid TOML ({err})") from None
    except RecursionError:
        raise too_deep from None
    if nesting(data) > MAX_NESTING:
        raise too_deep
    section = ctx.command.name or ""
    if isinstance(data.get(section), dict):
        data = data[section]
    params = {p.name: p for p in ctx.command.params if p.name and p.name != param.name and p.expose_value}
    defaults: dict[str, Any] = {}
    for key, value in data.items():
        target = params.get(key.replace("-", "_"))
        if target is None:
            raise ConfigError(f"--config {path}: unknown option {key!r} (keys are flag names, e.g. {next(iter(params)).replace('_', '-')} = …)")
        defaults[target.name] = _as_flag_value(value, getattr(target, "multiple", False))  # type: ignore[index]
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return path


def _as_flag_value(value: Any, multiple: bool) -> Any:
    """A TOML value as the command line would give it: a table as KEY=VALUE items, a list as one item each
    (or, for a flag taken once, comma-separated)."""
    if isinstance(value, dict):
        value = [f"{k}={'/'.join(map(str, v)) if isinstance(v, list) else v}" for k, v in value.items()]
    if isinstance(value, list) and not multiple:
        return ",".join(map(str, value))
    return value


def config_option(command: str) -> Any:
    """The `--config` flag of a command whose section in the file is `[command]`."""
    return Annotated[
        Optional[Path],
        typer.Option(
            callback=read_config,
            is_eager=True,
            help=f"TOML file of these options (keys as flag names, optionally under [{command}]); flags on the command line win over it.",
        ),
    ]


def parse_fields(items: list[str], option: str) -> dict[str, str]:
    """`OURS=THEIRS` column maps (`--field`, `--exclude-field`)."""
    mapping: dict[str, str] = {}
    for item in items:
        ours, sep, theirs = item.partition("=")
        if not sep or not ours.strip() or not theirs.strip():
            raise ConfigError(f"{option} {item!r}: use OURS=THEIRS, e.g. {option} question=problem")
        mapping[ours.strip()] = theirs.strip()
    return mapping


def parse_prices(prices: list[str]) -> dict[str, tuple[float, float]]:
    """`--price ROLE=IN/OUT`, USD per 1M tokens."""
    parsed: dict[str, tuple[float, float]] = {}
    for item in prices:
        role, _, rates = item.partition("=")
        try:
            per_in, per_out = (float(x) for x in rates.split("/"))
        except ValueError:
            raise ConfigError(f"--price {item!r}: use ROLE=IN/OUT in USD per 1M tokens, e.g. --price teacher=0.6/2.5") from None
        if role not in ("student", "teacher"):
            raise ConfigError(f"--price {item!r}: the role is student or teacher")
        if per_in < 0 or per_out < 0 or not all(map(math.isfinite, (per_in, per_out))):
            raise ConfigError(f"--price {item!r}: prices are USD per 1M tokens, 0 or more")
        parsed[role] = (per_in, per_out)
    return parsed

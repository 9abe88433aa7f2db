"""The `ted` command.

Core commands live here; integration commands (hub, eval, space) register themselves from
`ted/commands/` modules listed in COMMAND_MODULES, each exposing `register(app)`.
Every failure ends with one line on stderr and a non-zero exit, never a traceback: user errors
(`TedError`) print their message, usage errors (unknown flag, extra argument) print Click's, and
anything else is reported as an internal error (TED_DEBUG=1 shows the traceback).
"""

import importlib
import os
import sys
from typing import Annotated, Optional

import typer
from typer.exceptions import TyperException

from ted import __version__
from ted.errors import TedError
from ted.redact import scrub_logs, scrub_text

INTERNAL_EXIT = 70  # EX_SOFTWARE: a bug in ted, not in the user's input
USAGE_EXIT = 2

app = typer.Typer(
    name="ted",
    help="Training-free experience distillation: a teacher writes a budgeted library of lessons for a frozen student.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # Click's plain help: Typer's Rich help alone costs more CPU than the 0.15 s `ted --help` may take
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"ted {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[Optional[bool], typer.Option("--version", "-V", callback=_print_version, is_eager=True, help="Print the version and exit.")] = None,
) -> None:
    """Training-free experience distillation: a teacher writes a budgeted library of lessons for a frozen student."""


COMMAND_MODULES = ["ted.commands.core", "ted.commands.hub", "ted.commands.eval", "ted.commands.space", "ted.commands.doctor", "ted.commands.data", "ted.commands.reproduce"]

for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(app)


def _fail(message: str, code: int) -> None:
    typer.secho(f"error: {scrub_text(message)}", err=True, fg="red")
    sys.exit(code)


def _bad_value(err: TyperException) -> Optional[str]:
    """A value Typer refused (its checks are pydantic's), said as ted says it: `--flag VALUE: what is wrong`,
    and where the value came from when it was the `--config` file."""
    param, ctx, cause = getattr(err, "param", None), getattr(err, "ctx", None), err.__cause__
    if param is None or ctx is None or not hasattr(cause, "errors") or not cause.errors():
        return None
    first = cause.errors()[0]
    message = str(first["msg"]).removeprefix("Value error, ")
    value = str(first.get("input"))
    source = getattr(ctx.get_parameter_source(param.name), "name", None)  # by name: Typer vendors Click's enum
    origin = f" (from --config {ctx.params.get('config')})" if source == "DEFAULT_MAP" else ""
    shown = "" if repr(value) in message else f" {value}"
    return f"{param.opts[0]}{shown}{origin}: {message[:1].lower()}{message[1:]}"


def main() -> None:
    scrub_logs()  # a warning that reaches stderr through logging's last resort is scrubbed like our own lines
    try:
        app(standalone_mode=False)
    except TedError as err:
        _fail(str(err), err.exit_code)
    except TyperException as err:  # Click's errors, as vendored by Typer: usage errors and the like
        ctx = getattr(err, "ctx", None)
        if type(err).__name__ == "NoArgsIsHelpError":  # `ted` or a group with no command: the help
            typer.echo(err.format_message())
            sys.exit(USAGE_EXIT)
        hint = f" (see: {ctx.command_path} --help)" if ctx is not None else ""
        _fail(f"{_bad_value(err) or err.format_message()}{hint}", getattr(err, "exit_code", USAGE_EXIT))
    except (KeyboardInterrupt, typer.Abort):
        typer.secho("interrupted", err=True, fg="yellow")
        sys.exit(130)
    except typer.Exit as err:
        sys.exit(err.exit_code)
    except Exception as err:  # noqa: BLE001 - the last line of defence: one line, never a traceback
        if os.environ.get("TED_DEBUG"):
            raise
        _fail(f"internal error: {type(err).__name__}: {err} (rerun with TED_DEBUG=1 for the traceback)", INTERNAL_EXIT)


if __name__ == "__main__":
    main()

"""The `ted` command.

Core commands live here; integration commands (hub, eval, space) register themselves from
`ted/commands/` modules listed in COMMAND_MODULES, each exposing `register(app)`.
User errors (`TedError`) print one line and exit non-zero, with no traceback.
"""

from __future__ import annotations

import importlib
import sys

import typer

from ted.errors import TedError

app = typer.Typer(
    name="ted",
    help="Training-free experience distillation: a teacher writes a budgeted library of lessons for a frozen student.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

COMMAND_MODULES = ["ted.commands.core", "ted.commands.hub", "ted.commands.eval", "ted.commands.space"]

for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(app)


def main() -> None:
    try:
        app(standalone_mode=True)
    except TedError as err:
        typer.secho(f"error: {err}", err=True, fg="red")
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        typer.secho("interrupted", err=True, fg="yellow")
        sys.exit(130)


if __name__ == "__main__":
    main()

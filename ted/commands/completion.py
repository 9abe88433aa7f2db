"""`ted completion SHELL`: the shell's completion script, from Typer's own (commands, flags, choices).

The script calls `ted` back with `_TED_COMPLETE` set; `ted.cli.run` answers those calls.
"""

from enum import Enum
from typing import Annotated

import typer

PROG, COMPLETE_VAR = "ted", "_TED_COMPLETE"


class Shell(str, Enum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"
    powershell = "powershell"


def completion(shell: Annotated[Shell, typer.Argument(help="The shell to complete in.")]) -> None:
    """Print a shell completion script: `eval "$(ted completion bash)"` (or add that line to ~/.bashrc)."""
    from typer._completion_shared import get_completion_script

    typer.echo(get_completion_script(prog_name=PROG, complete_var=COMPLETE_VAR, shell=shell.value))


def init() -> None:
    """Register Typer's completion classes: done only when a shell asks (`_TED_COMPLETE` set)."""
    from typer._completion_classes import completion_init

    completion_init()


def register(app: typer.Typer) -> None:
    app.command()(completion)

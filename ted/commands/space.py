"""`ted space`: run the TED Space (space/app.py) on this machine.

The Space is configured by environment variables, as on Hugging Face; the options here only set
them, then the app replaces this process (so Ctrl-C and signals reach it directly).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ted.errors import ConfigError

APP = Path(__file__).resolve().parents[2] / "space" / "app.py"


def space(
    student: Annotated[
        Optional[str], typer.Option(help="Student spec: local (default), openai:MODEL@URL or hf:MODEL. Sets TED_STUDENT.")
    ] = None,
    library: Annotated[
        Optional[list[str]],
        typer.Option("--library", "-l", help="Offer this library too (a path, org/name or org/name@v2); repeatable."),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0 to serve your network).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 7860,
) -> None:
    """Chat with a student in the browser, with or without a library, and compare the two."""
    if not APP.is_file():
        raise ConfigError(f"the Space app is not part of this installation ({APP} is missing); run `ted space` from a checkout of the repository")
    if importlib.util.find_spec("gradio") is None:
        raise ConfigError("the Space needs Gradio: pip install 'ted-distill[space]'")
    env = dict(os.environ, GRADIO_SERVER_NAME=host, GRADIO_SERVER_PORT=str(port))
    if student:
        env["TED_STUDENT"] = student
    if library:
        env["TED_SPACE_LIBRARIES"] = ",".join(filter(None, [env.get("TED_SPACE_LIBRARIES"), *library]))
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, str(APP)], env)


def register(app: typer.Typer) -> None:
    app.command()(space)

"""`ted space`: run the TED Space (space/app.py) on this machine; `ted space deploy`: publish it.

The Space is configured by environment variables, as on Hugging Face; the options of `ted space`
only set them, then the app replaces this process (so Ctrl-C and signals reach it directly).
`ted space deploy` builds the Space's files with `ted.deploy` and uploads them as one commit.
"""

import importlib.util
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ted.errors import ConfigError, TedError

APP = Path(__file__).resolve().parents[2] / "space" / "app.py"


space_app = typer.Typer(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})


@space_app.callback()
def space(
    ctx: typer.Context,
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
    if ctx.invoked_subcommand is not None:
        return
    if not APP.is_file():
        raise TedError(f"the Space app is not part of this installation ({APP} is missing); run `ted space` from a checkout of the repository")
    if importlib.util.find_spec("gradio") is None:
        raise TedError("the Space needs Gradio: pip install 'ted-distill[space]'")
    env = dict(os.environ, GRADIO_SERVER_NAME=host, GRADIO_SERVER_PORT=str(port))
    if student:
        env["TED_STUDENT"] = student
    if library:
        env["TED_SPACE_LIBRARIES"] = ",".join(filter(None, [env.get("TED_SPACE_LIBRARIES"), *library]))
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, str(APP)], env)


@space_app.command()
def deploy(
    repo_id: Annotated[str, typer.Argument(metavar="ORG/NAME", help="The Space repo to create or update.")],
    student: Annotated[
        str, typer.Option(help="Student spec: local (default), openai:MODEL@URL (stored as a Space secret) or hf:MODEL.")
    ] = "local",
    library: Annotated[
        Optional[list[str]], typer.Option("--library", "-l", help="A library to offer: org/name[@vN], or a local file shipped with the Space; repeatable.")
    ] = None,
    hardware: Annotated[str, typer.Option(help="Space hardware, e.g. cpu-basic or zero-a10g (ZeroGPU, for hf: students).")] = "cpu-basic",
    private: Annotated[bool, typer.Option("--private", help="Create the Space as private (only when it is new).")] = False,
    secret: Annotated[
        Optional[list[str]], typer.Option("--secret", help="Copy this environment variable into a Space secret, e.g. OPENAI_API_KEY; repeatable.")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Write the Space's files into --out instead of uploading them.")] = False,
    out: Annotated[Optional[Path], typer.Option("--out", help="Folder for --dry-run (must be new or empty).")] = None,
) -> None:
    """Build a self-contained Hugging Face Space (app, front matter, requirements, this ted) and upload it as one commit."""
    from ted.commands.hub import _quiet_downloads
    from ted.deploy import plan_space, upload, write_folder
    from ted.hub import _Hub

    _quiet_downloads()
    if dry_run != (out is not None):
        raise ConfigError("--dry-run and --out go together: `ted space deploy ORG/NAME --dry-run --out DIR`")
    plan = plan_space(repo_id, student=student, libraries=library or [], hardware=hardware, secret_names=secret or [])
    if out is not None:
        for path in write_folder(plan, out):
            typer.echo(str(out / path))
        if plan.secrets:
            typer.echo(f"not uploaded: set the Space secret(s) {', '.join(sorted(plan.secrets))} yourself (their values stay on this machine)")
        return
    commit = upload(plan, private=private)
    typer.echo(f"deployed {repo_id} (commit {commit[:10]}, {len(plan.files)} files; secrets set: {', '.join(sorted(plan.secrets)) or 'none'})")
    typer.echo(f"{_Hub().endpoint}/spaces/{repo_id}")


def register(app: typer.Typer) -> None:
    app.add_typer(space_app, name="space", help="Chat with a student in the browser (ted space), or publish the Space (ted space deploy).")

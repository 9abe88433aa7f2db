"""`ted serve`: llama.cpp's own llama-server for the local models, and the specs that reach it."""

from typing import Annotated, Optional

import typer

from ted.errors import ConfigError


def serve(
    specs: Annotated[Optional[list[str]], typer.Argument(help="Local models to serve: local, local:teacher, local:tiny (default: local).")] = None,
    parallel: Annotated[Optional[int], typer.Option(min=1, help="Slots per server: requests decoded together (default: as ted's own servers).")] = None,
    ctx: Annotated[Optional[int], typer.Option(min=1, help="Context tokens per slot (default: as ted's own servers).")] = None,
    threads: Annotated[Optional[list[int]], typer.Option(min=1, help="Threads per server, one per model (default: the machine's physical cores each).")] = None,
) -> None:
    """Start llama-server for local models and print the openai:MODEL@URL specs to pass; Ctrl-C stops them."""
    import signal

    from ted.models.server import DEFAULT_CTX_PER_SLOT, DEFAULT_PARALLEL, serve as start

    specs = specs or ["local"]
    parallel = DEFAULT_PARALLEL if parallel is None else parallel
    ctx = DEFAULT_CTX_PER_SLOT if ctx is None else ctx
    if parallel < 1 or ctx < 256:
        raise ConfigError("--parallel must be at least 1 and --ctx at least 256")
    if threads and len(threads) != len(dict.fromkeys(specs)):
        raise ConfigError(f"--threads: give one per model ({len(dict.fromkeys(specs))}), e.g. --threads 2 --threads 2")
    with start(specs, parallel=parallel, ctx_per_slot=ctx, threads=threads) as servers:
        for server in servers:
            typer.echo(f"{server.spec:<14} {server.openai_spec}   ({server.threads} threads, {parallel} slots; log {server.log_path})")
        typer.echo("pass these as --student / --teacher; Ctrl-C stops the servers", err=True)
        signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop as on Ctrl-C: the servers go too
        while True:
            signal.pause()


def register(app: typer.Typer) -> None:
    app.command()(serve)

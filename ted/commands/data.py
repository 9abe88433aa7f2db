"""`ted data sample`: a training file disjoint from an evaluation set (see `ted.tasks.splits`)."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from ted.commands.options import parse_fields
from ted.errors import ConfigError

data_app = typer.Typer(help="Prepare training data.", no_args_is_help=True, rich_markup_mode=None)


@data_app.command()
def sample(
    pool: Annotated[str, typer.Argument(help="Where to sample from: a JSONL/CSV/Parquet file, a datasets folder, a Hub id or reasoning-gym problems rg:NAME?split=train&n=500.")],
    out: Annotated[Path, typer.Option(help="The training file to write (JSONL; images go to OUT-images/ beside it).")],
    samples: Annotated[int, typer.Option(help="How many problems to sample.")] = 100,
    seed: Annotated[int, typer.Option(help="Seed of the draw.")] = 0,
    exclude: Annotated[list[str], typer.Option("--exclude", help="An evaluation set the sample must not overlap (same forms as POOL); repeatable.")] = [],
    task: Annotated[Optional[str], typer.Option(help="Read POOL with this benchmark's loader (a local copy in its Hub schema).")] = None,
    split: Annotated[Optional[str], typer.Option(help="Split of POOL.")] = None,
    field: Annotated[list[str], typer.Option("--field", help="Map a POOL column: OURS=THEIRS (question, answer, options, images, id).")] = [],
    exclude_task: Annotated[Optional[str], typer.Option(help="Read the --exclude sets with this benchmark's loader.")] = None,
    exclude_split: Annotated[Optional[str], typer.Option(help="Split of the --exclude sets.")] = None,
    exclude_field: Annotated[list[str], typer.Option("--exclude-field", help="Map a column of the --exclude sets: OURS=THEIRS.")] = [],
    force: Annotated[bool, typer.Option(help="Overwrite an existing --out.")] = False,
) -> None:
    """Sample --samples training problems from POOL that share none with the --exclude sets (by id, question text, image)."""
    from ted.tasks.splits import read_source, sample_disjoint, write_jsonl

    if out.exists() and not force:
        raise ConfigError(f"{out} exists; use --force to overwrite it")
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; name the JSONL file to write")
    if out.suffix.lower() != ".jsonl":  # a .csv or .parquet name would get JSON lines under it
        raise ConfigError(f"--out {out}: ted data sample writes JSON lines; name the file with .jsonl")
    if samples < 1:
        raise ConfigError(f"--samples {samples}: ask for at least one problem")
    pool_fields, eval_fields = parse_fields(field, "--field"), parse_fields(exclude_field, "--exclude-field")
    source = read_source(pool, task, split, pool_fields)
    evals = [read_source(ref, exclude_task, exclude_split, eval_fields) for ref in exclude]
    chosen = sample_disjoint(source, evals, samples, seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_jsonl(chosen.problems, out)
    from rich.console import Console

    Console(stderr=True, highlight=False).print(chosen.summary(out), soft_wrap=True, markup=False)  # paths are text, not markup


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")

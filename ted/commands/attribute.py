"""`ted attribute`: each lesson's measured effect on the student's accuracy, written into the library."""

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ted.commands.core import err_console
from ted.commands.options import with_options
from ted.distill.options import OPTIONS


@with_options(
    OPTIONS["student"],
    OPTIONS["task"],
    OPTIONS["split"],
    OPTIONS["seed"].but(help="Seed of which half of the lessons each problem gets."),
    OPTIONS["temperature"].but(default=0.0, help="Sampling temperature of the student (greedy by default: the lessons are what varies)."),
    OPTIONS["max_tokens"].but(help="Max new tokens per answer."),
    OPTIONS["concurrency"].but(help="Student calls in flight at once."),
    "api_key_env",
    "system_in_user",
)
def attribute(
    library: Annotated[Path, typer.Argument(help="A local library.json (or a folder holding one): the effects are written into it.")],
    data: Annotated[str, typer.Option(help="Problems to answer, disjoint from the training data (a file, a folder, a Hub id or a task's data spec).")],
    limit: Annotated[Optional[int], typer.Option(min=4, help="Use only the first N problems.")] = None,
    leave_one_out: Annotated[bool, typer.Option(help="Also measure each lesson by leaving it out of the whole library (a check; (items + 1) × problems more calls; small libraries only).")] = False,
    output: Annotated[Optional[Path], typer.Option(help="Also write the estimates and the design (which lessons each problem had) as JSON here.")] = None,
    dry_run: Annotated[bool, typer.Option(help="Print what would be asked and change nothing.")] = False,
    **values: Any,
) -> None:
    """Measure which lessons help: every problem answered with a seeded, balanced random half of the lessons."""
    import asyncio
    import json

    from rich.console import Console
    from rich.table import Table

    from ted.attribution import LOO_MAX_ITEMS, METHOD, attribute as run_attribution, store
    from ted.errors import ConfigError, LibraryError
    from ted.files import atomic_write
    from ted.shown import literal
    from ted.library import Library
    from ted.models import SamplingParams, load_model
    from ted.tasks import get_task
    from ted.tasks.data import load_problems

    path = library / "library.json" if library.is_dir() else library
    lib = Library.load(path)
    if not lib.items:
        raise LibraryError(f"{path}: the library has no lesson to attribute")
    if leave_one_out and len(lib.items) > LOO_MAX_ITEMS:
        raise ConfigError(f"--leave-one-out: a check for libraries of at most {LOO_MAX_ITEMS} lessons; {path} has {len(lib.items)}")
    task = get_task(values["task"])
    problems = load_problems(data, split=values["split"], limit=limit)
    if len(problems) < 4:
        raise ConfigError(f"--data {data}: {len(problems)} problems; attribution needs at least 4 (hundreds for a useful interval)")
    calls = len(problems) * (1 + (len(lib.items) + 1 if leave_one_out else 0))
    err_console().print(f"{len(lib.items)} lessons × {len(problems)} problems: {calls} student calls · {METHOD}", soft_wrap=True)
    if dry_run:
        return
    student = load_model(values["student"], api_key_env=values["api_key_env"], max_concurrency=values["concurrency"])
    student.system_in_user = values["system_in_user"]
    params = SamplingParams(temperature=values["temperature"], max_tokens=values["max_tokens"], seed=values["seed"])

    async def go() -> Any:
        try:
            return await run_attribution(lib, student, task, problems, params, seed=values["seed"], leave_one_out=leave_one_out)
        finally:
            await student.aclose()

    result = asyncio.run(go())
    store(lib, result)
    lib.save(path)
    if output:
        atomic_write(output, json.dumps({**result.to_dict(), "design": result.design}, indent=1) + "\n")
    table = Table(title=f"{literal(path)}: effect of each lesson on accuracy ({len(problems)} problems, accuracy with half the lessons {result.accuracy:.3f})")
    for column in ("id", "effect [95% CI]", "problems with it", *(["leave one out"] if leave_one_out else []), "lesson"):
        table.add_column(column, justify="left" if column in ("id", "lesson") else "right")
    items = {item.id: item for item in lib.items}
    for effect in result.effects:
        item = items[effect.id]
        loo = [f"{round(effect.loo, 3) + 0.0:+.3f}"] if leave_one_out and effect.loo is not None else []
        shown = item.attribution.label() if item.attribution else "—"
        table.add_row(effect.id, shown, str(effect.present), *loo, literal(item.text))  # lessons shown as text, never as markup
    Console().print(table)
    err_console().print(f"wrote the effects into {path}" + (f" and the design into {output}" if output else ""))


def register(app: typer.Typer) -> None:
    app.command()(attribute)

"""`ted ask`: one question answered by the student without and with a library, side by side.

Why: the shortest honest look at what a library does: the same student, the same prompt layout
and sampling, the library the only difference (`ted.compare`). The end of `make demo` runs it on
a held-out problem. Replies are model text: printed literally, control characters made visible.
"""

from typing import Annotated, Any, Optional

import typer

from ted.commands.core import resolve_library
from ted.commands.options import JsonFlag, finite, print_json, with_options
from ted.distill.options import OPTIONS
from ted.errors import ConfigError


@with_options(
    OPTIONS["student"].but(default="local", required=False),
    OPTIONS["task"],
    OPTIONS["max_tokens"].but(default=512, help="Max new tokens per answer."),
    OPTIONS["api_key_env"].but(help="Environment variable holding the API key."),
    "system_in_user",
)
def ask(
    library: Annotated[str, typer.Argument(help="Library reference: a file, a folder or a Hub dataset org/name[@version].")],
    question: Annotated[Optional[str], typer.Option(help="The question (or take it from --data).")] = None,
    answer: Annotated[Optional[str], typer.Option(help="Its ground-truth answer, to grade both replies.")] = None,
    data: Annotated[Optional[str], typer.Option(help="Take the question from this data source (as distill's --data) instead.")] = None,
    index: Annotated[int, typer.Option(min=0, help="Which problem of --data (0 = the first).")] = 0,
    temperature: Annotated[float, typer.Option(min=0, callback=finite, help="Sampling temperature (0: greedy, the fairest comparison).")] = 0.0,
    as_json: JsonFlag = False,
    **values: Any,
) -> None:
    """Answer one question with the student, without and then with LIBRARY, and show both side by side."""
    import dataclasses

    from ted.compare import ask as compare
    from ted.control_tokens import special_tokens
    from ted.library import check_library
    from ted.models import load_model
    from ted.models.base import SamplingParams
    from ted.tasks import get_task
    from ted.tasks.base import Problem
    from ted.tasks.data import load_problems

    if (question is None) == (data is None):
        raise ConfigError("give the question as --question TEXT or take it from --data SOURCE (one of the two)")
    if data is not None:
        problems = load_problems(data, limit=index + 1)
        if index >= len(problems):
            raise ConfigError(f"--index {index}: {data} has {len(problems)} problem(s)")
        problem = problems[index]
    else:
        problem = Problem(id="question", question=str(question), answer=answer or "")
    lib = resolve_library(library)
    model = load_model(values["student"], api_key_env=values["api_key_env"])
    model.system_in_user = values["system_in_user"]
    check_library(lib, special_tokens(model))
    params = SamplingParams(temperature=temperature, max_tokens=values["max_tokens"], seed=0)
    result = compare(model, lib, problem, get_task(values["task"]), params)
    graded = bool(problem.answer)
    if as_json:
        side = {name: dataclasses.asdict(run) for name, run in (("without", result.without), ("with_library", result.with_library))}
        print_json({"question": problem.question, "answer": problem.answer or None, "library": lib.name, "items": len(lib.items), **side})
        return
    _show(problem.question, problem.answer if graded else None, f"{lib.name} ({len(lib.items)} lessons)", result.without, result.with_library)


def _show(question: str, answer: str | None, library: str, without: Any, with_library: Any) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from ted.shown import visible

    def verdict(run: Any) -> str:
        mark = "" if answer is None else (" ✓ right" if run.correct else " ✗ wrong")
        cited = f" · cited {', '.join(run.cited)}" if run.cited else ""
        return f"answer: {visible(run.answer or 'none')}{mark}{cited}"

    console = Console()
    console.print(Text(f"Q: {visible(question)}" + (f"\nground truth: {visible(answer)}" if answer is not None else "")))
    table = Table(show_lines=True, expand=True)
    table.add_column("without the library")
    table.add_column(Text(f"with {visible(library)}"))
    table.add_row(Text(visible(without.text, lines=True)), Text(visible(with_library.text, lines=True)))
    table.add_row(Text(verdict(without)), Text(verdict(with_library)))
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command()(ask)

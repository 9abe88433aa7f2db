"""`ted distill`, `ted show`, `ted chat`: the core commands."""

import functools
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from ted.errors import TedError
from ted.commands.options import config_option, parse_fields, parse_prices, print_json, with_options
from ted.distill.options import OPTIONS

if TYPE_CHECKING:  # `ted` imports every command module at start-up: heavy modules load inside the commands
    from rich.console import Console

    from ted.library import Library


@functools.cache
@functools.lru_cache(maxsize=1)
def err_console() -> "Console":
    """stderr; piped or logged (not a terminal), lines are not wrapped at 80 columns. No markup: its
    lines carry paths, problem text and server messages, which are shown as they are."""
    from rich.console import Console

    console = Console(stderr=True, markup=False)
    console.soft_wrap = not console.is_terminal
    return console


def resolve_library(ref: str) -> "Library":
    """A library reference: a local file or folder, or a Hub dataset `org/name[@version]`."""
    from ted.library import Library

    if Path(ref).expanduser().exists():  # local (as ted.hub.parse_ref decides) without loading the Hub client and card renderer
        return Library.load(Path(ref).expanduser())
    from huggingface_hub.utils import disable_progress_bars

    from ted.hub import load_library

    disable_progress_bars()  # a library is one small file: download bars would only add lines to stderr
    return load_library(ref)


# --------------------------------------------------------------------------- progress
class RichReporter:
    """Live progress on a terminal: epoch, batch, the batch's calls per stage, library size, rollout accuracy."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("epoch {task.fields[epoch]} batch {task.fields[batch]}"),
            BarColumn(),
            TextColumn("{task.fields[problems]} problems"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[calls]} · library {task.fields[items]} items/{task.fields[tokens]} tok · rollout acc {task.fields[acc]} · cut off {task.fields[cut_off]}"),
            console=err_console(),
            refresh_per_second=4,
            transient=True,  # the bar goes away at the end: the summary (or the one error line) stays
        )
        self.task_id = self.progress.add_task("distill", total=None, epoch="-", batch="-", problems="-", calls="", items=0, tokens=0, acc="-", cut_off=0)

    def update(self, status: Any) -> None:
        self.progress.update(self.task_id, total=status.total, completed=status.progress, **_fields(status))

    def log(self, message: str) -> None:
        self.progress.console.log(_shown(message))

    def __enter__(self) -> "RichReporter":
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.progress.stop()


class PlainReporter:
    """Progress when stderr is not a terminal (CI, `| tee`, nohup): a plain line every `every` seconds."""

    def __init__(self, every: float = 10.0) -> None:
        self.every, self.last = every, float("-inf")

    def update(self, status: Any) -> None:
        import time

        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            f = _fields(status)
            err_console().print(
                f"epoch {f['epoch']} batch {f['batch']} · {f['problems']} problems · {f['calls']} · "
                f"library {f['items']} items/{f['tokens']} tok · rollout acc {f['acc']} · cut off {f['cut_off']}",
                highlight=False, soft_wrap=True,
            )  # fmt: skip

    def log(self, message: str) -> None:
        err_console().print(_shown(message), highlight=False, soft_wrap=True)

    def __enter__(self) -> "PlainReporter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        return None


def _shown(message: str) -> str:
    """A run's log line as printed: it quotes problem ids and server messages, so no escape sequence
    and no credential reaches the terminal."""
    from ted.redact import scrub_text
    from ted.shown import visible

    return visible(scrub_text(message))


def _fields(status: Any) -> dict[str, Any]:
    return {
        "epoch": f"{status.epoch}/{status.epochs}",
        "batch": f"{status.batch}/{status.batches}",
        "problems": f"{status.done}/{status.total}",
        "calls": status.calls() or "-",
        "items": status.items,
        "tokens": status.tokens,
        "acc": f"{status.rollout_accuracy:.0%}" if status.rollouts_total else "-",
        "cut_off": status.cut_off,
    }


def make_reporter() -> "RichReporter | PlainReporter":
    return RichReporter() if err_console().is_terminal else PlainReporter()


# --------------------------------------------------------------------------- distill
@with_options(*OPTIONS.values())  # the whole table: every option is a distill option
def distill(config: config_option("distill") = None, **values: Any) -> None:
    """Distill an experience library from labelled problems (the TED loop)."""
    import shlex

    from ted.distill.api import distill as run_distill, library_path
    from ted.distill.checkpoint import checkpoint_path
    from ted.models.calllog import calls_path
    from ted.run_guard import lock_path, refuse_inputs_as_output

    out_path = library_path(values["out"])
    refuse_inputs_as_output([out_path, checkpoint_path(out_path), lock_path(out_path), calls_path(out_path)], {"--config": str(config) if config else None})
    as_json = values.pop("json")
    values["fields"] = parse_fields(values.pop("field"), "--field")
    values["price"] = parse_prices(values["price"])
    reporter = make_reporter()
    with reporter:
        library = run_distill(values.pop("data"), reporter=reporter, say=lambda line: err_console().print(line, soft_wrap=True), **values)
    cost = library.cost
    cut = {role: c.truncated for role, c in cost.roles.items() if c.truncated}
    _fail_without_usable_replies(library, out_path, cut)
    if as_json:
        print_json(
            {
                "library": str(out_path),
                "items": len(library.items),
                "tokens": library.tokens(keep=True),
                "requests": cost.calls,
                "generations": cost.generations,
                "wall_s": round(cost.wall_s, 3),
                "proposals": library.metrics.extraction.model_dump() if library.metrics.extraction else None,
                "truncated": cut,
                "cached_prompt_tokens": {role: c.cached_prompt_tokens for role, c in cost.roles.items() if c.cached_prompt_tokens},
                "calls": str(calls_path(out_path)),
            }
        )
        return
    err_console().print(
        f"wrote {out_path}: {len(library.items)} items, {library.tokens(keep=True)} tokens · "
        f"requests student {cost.calls.get('student', 0)}, teacher {cost.calls.get('teacher', 0)} · "
        f"generations student {cost.generations.get('student', 0)}, teacher {cost.generations.get('teacher', 0)} · {cost.wall_s:.1f}s"
    )
    if library.metrics.extraction:
        err_console().print("teacher proposals: " + ", ".join(f"{k} {v}" for k, v in library.metrics.extraction.model_dump().items()), markup=False, highlight=False)
    tally, log_path = library.metrics.extraction, shlex.quote(str(calls_path(out_path)))
    why = f"; what the teacher proposed and why it was refused: ted log {log_path} --rejected" if tally.rejected or not tally.accepted else ""
    err_console().print(f"every model call: {log_path}{why}", markup=False, highlight=False, soft_wrap=True)
    cached = {role: c.cached_prompt_tokens / c.prompt_tokens for role, c in cost.roles.items() if c.cached_prompt_tokens and c.prompt_tokens}
    if cached:
        err_console().print("prompt tokens served from the server's prefix cache: " + ", ".join(f"{role} {share:.0%}" for role, share in cached.items()))
    if cut:
        err_console().print(
            "cut off at the token limit: " + ", ".join(f"{role} {n}" for role, n in cut.items())
            + " generations (raise --max-tokens / --teacher-max-tokens / --json-max-tokens, or the server's context)"
        )


def _fail_without_usable_replies(library: "Library", out_path: Path, cut: dict[str, int]) -> None:
    """A run that learnt nothing because no teacher reply or proposal could be used ends with exit 1 and
    the cause, not with "wrote 0 items" and exit 0 (the empty library is still written, as the run's
    honest result). A teacher that proposed nothing, or problems all skipped as solved, is no failure."""
    from ted.library import Rejection
    from ted.models.calllog import calls_path

    tally = library.metrics.extraction
    if library.items or not tally or tally.accepted or not tally.rejected:
        return
    if set(tally.rejected) == {Rejection.UNUSABLE}:
        cause = f"no usable teacher reply: all {tally.rejected[Rejection.UNUSABLE]} extraction replies were empty or not the JSON asked for"
    else:
        cause = "no teacher proposal could be used (rejected: " + ", ".join(f"{reason.value} {n}" for reason, n in tally.rejected.items()) + ")"
    hint = "; replies were cut off at the token limit: raise --json-max-tokens" if cut.get("teacher") else ""
    raise TedError(f"{cause}, so {out_path} has no experiences{hint}; every reply is in {calls_path(out_path)}")


# --------------------------------------------------------------------------- show
NARROW_COLUMNS = 60  # below this, `ted show` lists the lessons one per line instead of a table


def show(
    library: Annotated[str, typer.Argument(help="Library reference: a library.json, a folder holding one, or org/name[@version].")],
    prompt: Annotated[bool, typer.Option("--prompt", help="Print the exact block injected into the student's prompt.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the library file as JSON.")] = False,
    citations: Annotated[
        bool, typer.Option(help="With --prompt: the block ted's own tasks use, asking the student to cite lessons (`Used: [E1]`); --no-citations for any other task (`lm_eval --system_instruction`).")
    ] = True,
) -> None:
    """Show a library: items with usage as a bar chart, the prompt block, or the JSON."""
    lib = resolve_library(library)
    if prompt:
        sys.stdout.write(lib.render(cite=citations) + ("\n" if lib.items else ""))
        return
    if as_json:
        from ted.shown import json_visible

        sys.stdout.write(json_visible(lib.to_json()))  # a name's bidi override, made visible
        return
    import json

    from rich.console import Console
    from rich.table import Table

    from ted.shown import literal

    console = Console(highlight=False)  # a width of 1..MAX_COLUMNS (ted.cli bounds $COLUMNS)
    tokens = lib.tokens(keep=True)
    console.print(
        f"[bold]{literal(lib.name)}[/] v{literal(lib.version)} · {len(lib.items)}/{lib.budget.max_items} items · "
        f"{tokens}/{lib.budget.max_tokens} tokens · compression {lib.compression}",
        soft_wrap=True,
    )
    if len(lib.items) > lib.budget.max_items or tokens > lib.budget.max_tokens:  # a hand-edited or foreign file: say so
        console.print("[yellow]over its own budget: the student gets more than the library says it holds[/]", soft_wrap=True)
    models = (f"{role} {literal(info.model or '?')} ({literal(info.backend or '?')})" for role, info in (("student", lib.student), ("teacher", lib.teacher)))
    console.print(" · ".join(models), soft_wrap=True)
    top = max((item.usage for item in lib.items), default=0) or 1
    bars = {item.id: "█" * max(0, round(10 * item.usage / top)) or "·" for item in lib.items}
    attributed = any(item.attribution for item in lib.items)  # measured by `ted attribute`
    effects = {item.id: item.attribution.label() if item.attribution else "—" for item in lib.items}
    if console.width < NARROW_COLUMNS:  # a table this narrow has no room left for the lessons: one line each
        for item in lib.items:
            effect = f" effect {effects[item.id]}" if attributed else ""
            console.print(f"[cyan]{item.id}[/] {item.usage} [green]{bars[item.id]}[/]{effect} {literal(item.text)}", soft_wrap=True)
    else:
        table = Table(show_lines=False, expand=True)
        table.add_column("id", style="cyan", no_wrap=True)
        table.add_column("usage", justify="right", no_wrap=True)
        table.add_column("", no_wrap=True, width=12)
        table.add_column("experience", ratio=1, overflow="fold")  # a long word folds, never cut to "…"
        if attributed:
            table.add_column("effect [95% CI]", justify="right", no_wrap=True)
        for item in lib.items:
            table.add_row(item.id, str(item.usage), f"[green]{bars[item.id]}[/]", literal(item.text), *([effects[item.id]] if attributed else []))
        console.print(table)
    if lib.metrics.curve:
        points = ", ".join(
            f"epoch {p.epoch}: train {p.train_accuracy}" + (f" val {p.val_accuracy}" if p.val_accuracy is not None else "")
            for p in lib.metrics.curve
        )
        console.print(f"learning curve: {points}", soft_wrap=True)
    if lib.cost.calls:
        generations = f", generations {json.dumps(lib.cost.generations)}" if lib.cost.generations else ""
        console.print(
            f"cost: requests {literal(json.dumps(lib.cost.calls))}{literal(generations)}, {lib.cost.prompt_tokens + lib.cost.completion_tokens} tokens, {lib.cost.wall_s:.0f}s",
            soft_wrap=True,
        )


# --------------------------------------------------------------------------- chat
@with_options(
    OPTIONS["student"].but(default="local", required=False),
    OPTIONS["temperature"].but(help="Sampling temperature."),
    OPTIONS["max_tokens"].but(default=512, help="Max new tokens per reply."),
    OPTIONS["api_key_env"].but(help="Environment variable holding the API key."),
    "system_in_user",
)
def chat(
    library: Annotated[Optional[str], typer.Option(help="Library reference to inject (none: the plain student).")] = None, **values: Any
) -> None:
    """Chat with a student in the terminal, with or without a library. Empty line or Ctrl-D quits."""
    from ted.control_tokens import special_tokens
    from ted.library import check_library
    from ted.redact import scrub_text
    from ted.shown import literal, visible
    from ted.tasks import student_system
    from ted.models import load_model
    from ted.system_probe import ensure_system_reaches
    from ted.models.base import Message, SamplingParams

    import asyncio

    from rich.console import Console

    lib = resolve_library(library) if library else None
    student = values["student"]
    model = load_model(student, api_key_env=values["api_key_env"])
    model.system_in_user = values["system_in_user"]
    if lib is not None:
        check_library(lib, special_tokens(model))
    history: list[Message] = [Message("system", student_system(lib) or "")]
    console = Console()
    shown = f"{literal(lib.name)} ({len(lib.items)} items)" if lib else "none"
    console.print(f"[dim]{literal(scrub_text(student))} · library: {shown} · empty line quits[/]", soft_wrap=True)

    async def session() -> None:
        try:
            if lib is not None:
                await ensure_system_reaches(model)
            while True:
                try:
                    line = await asyncio.to_thread(console.input, "[bold cyan]you> [/]")
                except EOFError:
                    break
                except UnicodeDecodeError as err:
                    raise TedError(f"the input is not UTF-8 text ({err.reason} at byte {err.start}); type or pipe UTF-8") from None
                if not line.isascii() and not _utf8(line):  # a UTF-8 locale's stdin keeps bad bytes as surrogates
                    raise TedError("the input is not UTF-8 text; type or pipe UTF-8")
                if not line.strip():
                    break
                history.append(Message("user", line))
                pieces: list[str] = []
                async for piece in model.stream(history, SamplingParams(temperature=values["temperature"], max_tokens=values["max_tokens"])):
                    pieces.append(piece)
                    console.print(visible(piece, lines=True), end="", markup=False, highlight=False)  # no escape sequence reaches the terminal
                console.print()
                history.append(Message("assistant", "".join(pieces)))
        finally:
            await model.aclose()

    asyncio.run(session())


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def register(app: typer.Typer) -> None:
    app.command()(distill)
    app.command()(show)
    app.command()(chat)

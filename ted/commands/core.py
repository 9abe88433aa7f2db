"""`ted distill`, `ted show`, `ted chat`: the core commands."""

from __future__ import annotations

import functools
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from ted.errors import ConfigError, TedError
from ted.redact import scrub_text

if TYPE_CHECKING:  # `ted` imports every command module at start-up: heavy modules load inside the commands
    from rich.console import Console

    from ted.library import Library


@functools.cache
@functools.lru_cache(maxsize=1)
def err_console() -> Console:
    """stderr; piped or logged (not a terminal), lines are not wrapped at 80 columns."""
    from rich.console import Console

    console = Console(stderr=True)
    console.soft_wrap = not console.is_terminal
    return console


def resolve_library(ref: str) -> Library:
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

    def __init__(self, total: int) -> None:
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
        self.task_id = self.progress.add_task("distill", total=total, epoch="-", batch="-", problems=f"0/{total}", calls="", items=0, tokens=0, acc="-", cut_off=0)

    def update(self, status: Any) -> None:
        self.progress.update(self.task_id, completed=status.progress, **_fields(status))

    def log(self, message: str) -> None:
        self.progress.console.log(message)

    def __enter__(self) -> RichReporter:
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
        err_console().print(message, highlight=False, soft_wrap=True)

    def __enter__(self) -> PlainReporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        return None


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


def make_reporter(total: int) -> RichReporter | PlainReporter:
    return RichReporter(total) if err_console().is_terminal else PlainReporter()


# --------------------------------------------------------------------------- options
def _parse_fields(fields: list[str]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for item in fields:
        ours, sep, theirs = item.partition("=")
        if not sep or not ours or not theirs:
            raise ConfigError(f"--field {item!r}: use OURS=THEIRS, e.g. --field question=problem")
        mapping[ours.strip()] = theirs.strip()
    return mapping


def _parse_prices(prices: list[str]) -> dict[str, tuple[float, float]]:
    parsed: dict[str, tuple[float, float]] = {}
    for item in prices:
        role, _, rates = item.partition("=")
        try:
            per_in, per_out = (float(x) for x in rates.split("/"))
        except ValueError:
            raise ConfigError(f"--price {item!r}: use ROLE=IN/OUT in USD per 1M tokens, e.g. --price teacher=0.6/2.5") from None
        if role not in ("student", "teacher"):
            raise ConfigError(f"--price {item!r}: the role is student or teacher")
        if per_in < 0 or per_out < 0 or not all(map(math.isfinite, (per_in, per_out))):
            raise ConfigError(f"--price {item!r}: prices are USD per 1M tokens, 0 or more")
        parsed[role] = (per_in, per_out)
    return parsed


def _merge_config(ctx: typer.Context, values: dict[str, Any], config_file: Path | None, section: str = "distill") -> dict[str, Any]:
    """Flags given on the command line win over the TOML file (its keys, or those under [section]), which wins over defaults."""
    if config_file is None:
        return values
    import tomllib

    try:
        data = tomllib.loads(config_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--config {config_file}: no such file") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"--config {config_file}: invalid TOML ({err})") from None
    data = data.get(section, data)
    merged = dict(values)
    for key, value in data.items():
        name = key.replace("-", "_")
        if name not in values:
            raise ConfigError(f"--config {config_file}: unknown option {key!r}")
        # By name: Typer ≥ 0.29 vendors Click, so click.core.ParameterSource is another enum than the
        # one its Context returns (comparing with it let the file override every flag).
        if getattr(ctx.get_parameter_source(name), "name", None) != "COMMANDLINE":
            merged[name] = value
    return merged


def _check_writable(out: Path) -> None:
    """Fail before the first paid call, not at the first checkpoint, if nothing can be written next to `out`."""
    import tempfile

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent):
            pass
    except FileExistsError as err:
        raise ConfigError(f"--out {out}: {err.filename} is a file, not a folder; choose another path") from None
    except OSError as err:
        raise ConfigError(f"--out {out}: cannot write there ({err.strerror or err}); choose another path") from None


def _endpoint_options(values: dict[str, Any]) -> dict[str, Any]:
    """Timeout and retry bounds for the models' endpoints, so an outage ends the run instead of hanging it."""
    if not values["request_timeout"] > 0:
        raise ConfigError(f"--request-timeout {values['request_timeout']!r}: give a number of seconds above 0")
    if values["max_retries"] < 0:
        raise ConfigError(f"--max-retries {values['max_retries']!r}: give 0 or more")
    return {"timeout": float(values["request_timeout"]), "max_retries": int(values["max_retries"])}


def distill(
    ctx: typer.Context,
    data: Annotated[Optional[str], typer.Option(help="Training data: JSONL/CSV file, a local `datasets` folder, or a Hub dataset id.")] = None,
    student: Annotated[Optional[str], typer.Option(help="Student model spec: openai:MODEL@URL, hf:MODEL, gguf:PATH or local.")] = None,
    teacher: Annotated[Optional[str], typer.Option(help="Teacher model spec (same forms as --student).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Where to write the library (library.json).")] = None,
    task: Annotated[str, typer.Option(help="Scorer and prompt format: generic, mathvision, visualpuzzles, aime, aime24.")] = "generic",
    field: Annotated[list[str], typer.Option("--field", help="Map a data column: OURS=THEIRS (question, answer, options, images, id).")] = [],
    split: Annotated[Optional[str], typer.Option(help="Dataset split (Hub or datasets folders).")] = None,
    limit: Annotated[Optional[int], typer.Option(help="Use only the first N problems (at most 100,000,000).")] = None,
    val_data: Annotated[Optional[str], typer.Option(help="Validation data scored after each epoch (learning curve).")] = None,
    keep_best: Annotated[bool, typer.Option(help="Keep the library with the best validation score, not the last.")] = False,
    epochs: Annotated[int, typer.Option(help="Passes over the training problems (at most 1,000).")] = 3,
    rollouts: Annotated[int, typer.Option(help="Student answers per problem (k).")] = 5,
    batch_size: Annotated[int, typer.Option(help="Problems per batch sharing one library snapshot; 1 is the paper's sequential loop (at most 4,096).")] = 8,
    budget_tokens: Annotated[int, typer.Option(help="Token budget of the rendered library (at most 1,000,000).")] = 4000,
    max_items: Annotated[int, typer.Option(help="Item budget of the library.")] = 15,
    compression: Annotated[str, typer.Option(help="teacher (default), truncate, random or none.")] = "teacher",
    seed: Annotated[int, typer.Option(help="Seed for shuffling, sampling and random compression.")] = 0,
    temperature: Annotated[float, typer.Option(help="Student sampling temperature for rollouts.")] = 0.7,
    teacher_temperature: Annotated[float, typer.Option(help="Teacher sampling temperature.")] = 0.3,
    max_tokens: Annotated[int, typer.Option(help="Max new tokens per student rollout, reasoning included (lowered to fit a server's reported context; at most 1,000,000).")] = 16384,
    teacher_max_tokens: Annotated[Optional[int], typer.Option(help="Max new tokens for the teacher's own solution, reasoning included (default: as --max-tokens).")] = None,
    json_max_tokens: Annotated[int, typer.Option(help="Max new tokens for the teacher's JSON replies (structuring, extraction, compression), reasoning included (at most 1,000,000).")] = 16384,
    skip_solved: Annotated[bool, typer.Option(help="Skip structuring and extraction when all rollouts and the teacher are right (saves teacher calls).")] = False,
    fresh_teacher_solutions: Annotated[bool, typer.Option(help="Ask the teacher to solve every problem again in each epoch (default: once per run, ahead of the batches, reused).")] = False,
    prompts: Annotated[Optional[str], typer.Option(help="A folder of prompt files (same names as ted/prompts/*.md) replacing the package's; recorded by hash.")] = None,
    concurrency: Annotated[int, typer.Option(help="Model calls in flight at once per endpoint (student and teacher on one server share it; a router in front of replicas is one endpoint; at most 4,096).")] = 16,
    tokenizer: Annotated[str, typer.Option(help="Tokenizer for the budget: cl100k_base or a local tokenizer path.")] = "cl100k_base",
    name: Annotated[Optional[str], typer.Option(help="Library name (default: the output file's stem).")] = None,
    price: Annotated[list[str], typer.Option("--price", help="USD per 1M tokens: ROLE=IN/OUT, e.g. teacher=0.6/2.5.")] = [],
    api_key_env: Annotated[str, typer.Option(help="Environment variable holding the student's API key.")] = "OPENAI_API_KEY",
    teacher_api_key_env: Annotated[Optional[str], typer.Option(help="Environment variable for the teacher's key (default: --api-key-env).")] = None,
    request_timeout: Annotated[float, typer.Option(help="Seconds to wait for one reply from an OpenAI-compatible endpoint before retrying it (a reply comes whole: 16k tokens take minutes).")] = 1800.0,
    max_retries: Annotated[int, typer.Option(help="Retries per request (timeouts, resets, 429, 5xx, broken replies) before the run stops, resumable.")] = 6,
    resume: Annotated[bool, typer.Option(help="Continue from the checkpoint next to --out.")] = False,
    force: Annotated[bool, typer.Option(help="Overwrite an existing --out (written only when the run finishes).")] = False,
    system_in_user: Annotated[bool, typer.Option("--system-in-user", help="Fold the library (the system text) into the first user turn, for servers whose chat template drops system messages.")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Start a large run (over 1,000 problems × epochs, or over $10 of planned completion tokens) without asking.")] = False,
    config: Annotated[Optional[Path], typer.Option(help="TOML file with the same options (keys as flag names); flags override it.")] = None,
) -> None:
    """Distill an experience library from labelled problems (the TED loop)."""
    import asyncio

    from pydantic import ValidationError

    from ted.distill.checkpoint import checkpoint_path
    from ted.distill.config import STRATEGIES, RunConfig
    from ted.distill.pipeline import Distiller
    from ted.models import load_model
    from ted.run_guard import RunLock, lock_path, refuse_inputs_as_output
    from ted.run_plan import confirm
    from ted.system_probe import ensure_system_reaches
    from ted.tasks import get_task
    from ted.tasks.data import load_problems

    values = _merge_config(ctx, {k: v for k, v in ctx.params.items() if k != "config"}, config)
    for required in ("data", "student", "teacher", "out"):
        if not values.get(required):
            raise ConfigError(f"--{required} is required (on the command line or in --config)")
    out_path = Path(values["out"])
    if out_path.is_dir():
        out_path = out_path / "library.json"
    ckpt = checkpoint_path(out_path)
    refuse_inputs_as_output([out_path, ckpt, lock_path(out_path)], {"--data": values["data"], "--val-data": values["val_data"], "--config": str(config) if config else None})
    if values["resume"] and values["force"]:
        raise ConfigError("--resume and --force contradict each other: choose one")
    if out_path.exists() and not (values["force"] or values["resume"]):
        raise ConfigError(f"{out_path} exists; use --force to overwrite it or --resume to continue its run")
    if values["resume"] and not ckpt.exists() and out_path.exists():
        raise ConfigError(f"nothing to resume: {out_path} is complete and there is no checkpoint; use --force to start over")
    if values["compression"] not in STRATEGIES:
        raise ConfigError(f"--compression {values['compression']!r}: choose {', '.join(STRATEGIES)}")

    try:
        run = RunConfig(
            **{name: values[name] for name in RunConfig.model_fields if name in values and name not in ("out", "price")},
            out=str(out_path),
            fields=_parse_fields(values["field"]) if isinstance(values["field"], list) else dict(values["field"]),
            price=_parse_prices(values["price"]),
        )
    except ValidationError as err:  # a wrong value from the command line or the TOML file
        first = err.errors()[0]
        option = "--" + str(first["loc"][0]).replace("_", "-") if first["loc"] else "an option"
        raise ConfigError(f"{option} {first.get('input')!r}: {first['msg'][:1].lower()}{first['msg'][1:]}") from None
    task_obj = get_task(run.task)
    problems = load_problems(run.data, fields=run.fields, split=run.split, limit=run.limit)
    val = load_problems(run.val_data, fields=run.fields, split=run.split) if run.val_data else None
    confirm(run, len(problems), values["yes"], lambda line: err_console().print(line, soft_wrap=True))
    student_model = load_model(run.student, api_key_env=values["api_key_env"], max_concurrency=run.concurrency, **_endpoint_options(values))
    teacher_model = (
        student_model
        if run.teacher == run.student and not values["teacher_api_key_env"]
        else load_model(
            run.teacher,
            api_key_env=values["teacher_api_key_env"] or values["api_key_env"],
            max_concurrency=run.concurrency,
            **_endpoint_options(values),
        )
    )
    reporter = make_reporter(total=run.epochs * len(problems))
    distiller = Distiller(run, student_model, teacher_model, task_obj, problems, val, reporter=reporter)
    _check_writable(out_path)
    lock = RunLock(out_path).acquire()  # one run per --out; released at exit, a killed run's lock is taken over
    if lock.stale_pid is not None:
        err_console().print(f"took over the lock of a run that is gone (PID {lock.stale_pid})")
    if values["resume"] and ckpt.exists():
        distiller.load_checkpoint()  # a checkpoint of another run, or a damaged one, is refused before anything starts
        err_console().print(f"resuming from {ckpt}")

    student_model.system_in_user = run.system_in_user

    async def _go() -> Library:
        try:
            await ensure_system_reaches(student_model)  # before the first paid call: the library must reach the student
            return await distiller.run(resume=values["resume"])
        finally:
            await student_model.aclose()
            if teacher_model is not student_model:
                await teacher_model.aclose()

    with reporter:
        try:
            library = asyncio.run(_go())
        except KeyboardInterrupt:
            reporter.stop()
            if not ckpt.exists():
                raise TedError("interrupted before the first batch finished; nothing was saved") from None
            raise TedError(f"interrupted; progress up to the last finished batch is in {ckpt}: rerun with --resume") from None
        except TedError as err:
            if ckpt.exists():
                raise type(err)(f"{err} (progress saved: rerun with --resume)") from None
            raise
        except OSError as err:  # a checkpoint could not be written: the disk filled up, the folder went away
            saved = " (progress saved: rerun with --resume)" if ckpt.exists() else ""
            raise TedError(f"cannot write {err.filename or out_path.parent}: {err.strerror or err}{saved}") from None
    try:
        library.save(out_path)
    except OSError as err:
        raise TedError(f"cannot write {out_path}: {err.strerror or err}; the finished run is in {ckpt}: free space, then rerun with --resume") from None
    ckpt.unlink(missing_ok=True)
    lock.release()
    cost = library.cost
    err_console().print(
        f"wrote {out_path}: {len(library.items)} items, {library.tokens()} tokens · "
        f"requests student {cost.calls.get('student', 0)}, teacher {cost.calls.get('teacher', 0)} · "
        f"generations student {cost.generations.get('student', 0)}, teacher {cost.generations.get('teacher', 0)} · {cost.wall_s:.1f}s"
    )
    if library.metrics.extraction:
        err_console().print("teacher proposals: " + ", ".join(f"{k} {v}" for k, v in library.metrics.extraction.model_dump().items()))
    cut = {role: c.truncated for role, c in cost.roles.items() if c.truncated}
    if cut:
        err_console().print(
            "cut off at the token limit: " + ", ".join(f"{role} {n}" for role, n in cut.items())
            + " generations (raise --max-tokens / --teacher-max-tokens / --json-max-tokens, or the server's context)"
        )


# --------------------------------------------------------------------------- show
def show(
    library: Annotated[str, typer.Argument(help="Library reference: a library.json, a folder holding one, or org/name[@version].")],
    prompt: Annotated[bool, typer.Option("--prompt", help="Print the exact block injected into the student's prompt.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the library file as JSON.")] = False,
) -> None:
    """Show a library: items with usage as a bar chart, the prompt block, or the JSON."""
    lib = resolve_library(library)
    if prompt:
        sys.stdout.write(lib.render() + ("\n" if lib.items else ""))
        return
    if as_json:
        sys.stdout.write(lib.to_json())
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    tokens = lib.tokens()
    console.print(
        f"[bold]{lib.name}[/] v{lib.version} · {len(lib.items)}/{lib.budget.max_items} items · "
        f"{tokens}/{lib.budget.max_tokens} tokens · compression {lib.compression}"
    )
    console.print(f"student {lib.student.model or '?'} ({lib.student.backend or '?'}) · teacher {lib.teacher.model or '?'} ({lib.teacher.backend or '?'})")
    top = max((item.usage for item in lib.items), default=0) or 1
    table = Table(show_lines=False, expand=True)
    table.add_column("id", style="cyan", no_wrap=True)
    table.add_column("usage", justify="right", no_wrap=True)
    table.add_column("", no_wrap=True, width=12)
    table.add_column("experience", ratio=1)
    for item in lib.items:
        bar = "█" * max(0, round(10 * item.usage / top)) or "·"
        table.add_row(item.id, str(item.usage), f"[green]{bar}[/]", item.text)
    console.print(table)
    if lib.metrics.curve:
        points = ", ".join(
            f"epoch {p.epoch}: train {p.train_accuracy}" + (f" val {p.val_accuracy}" if p.val_accuracy is not None else "")
            for p in lib.metrics.curve
        )
        console.print(f"learning curve: {points}")
    if lib.cost.calls:
        generations = f", generations {json.dumps(lib.cost.generations)}" if lib.cost.generations else ""
        console.print(f"cost: requests {json.dumps(lib.cost.calls)}{generations}, {lib.cost.prompt_tokens + lib.cost.completion_tokens} tokens, {lib.cost.wall_s:.0f}s")


# --------------------------------------------------------------------------- chat
def chat(
    student: Annotated[str, typer.Option(help="Student model spec: openai:MODEL@URL, hf:MODEL, gguf:PATH or local.")] = "local",
    library: Annotated[Optional[str], typer.Option(help="Library reference to inject (none: the plain student).")] = None,
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 0.7,
    max_tokens: Annotated[int, typer.Option(help="Max new tokens per reply.")] = 512,
    api_key_env: Annotated[str, typer.Option(help="Environment variable holding the API key.")] = "OPENAI_API_KEY",
    system_in_user: Annotated[bool, typer.Option("--system-in-user", help="Fold the library (the system text) into the first user turn, for servers whose chat template drops system messages.")] = False,
) -> None:
    """Chat with a student in the terminal, with or without a library. Empty line or Ctrl-D quits."""
    from ted.control_tokens import check_library, special_tokens
    from ted.tasks import student_system
    from ted.models import load_model
    from ted.system_probe import ensure_system_reaches
    from ted.models.base import Message, SamplingParams

    import asyncio

    from rich.console import Console

    lib = resolve_library(library) if library else None
    model = load_model(student, api_key_env=api_key_env)
    model.system_in_user = system_in_user
    if lib is not None:
        check_library(lib, special_tokens(model))
    history: list[Message] = [Message("system", student_system(lib) or "")]
    console = Console()
    console.print(f"[dim]{scrub_text(student)} · library: {lib.name + ' (' + str(len(lib.items)) + ' items)' if lib else 'none'} · empty line quits[/]")

    async def session() -> None:
        try:
            if lib is not None:
                await ensure_system_reaches(model)
            while True:
                try:
                    line = await asyncio.to_thread(console.input, "[bold cyan]you> [/]")
                except EOFError:
                    break
                if not line.strip():
                    break
                history.append(Message("user", line))
                pieces: list[str] = []
                async for piece in model.stream(history, SamplingParams(temperature=temperature, max_tokens=max_tokens)):
                    pieces.append(piece)
                    console.print(piece, end="", markup=False, highlight=False)
                console.print()
                history.append(Message("assistant", "".join(pieces)))
        finally:
            await model.aclose()

    asyncio.run(session())


def register(app: typer.Typer) -> None:
    app.command()(distill)
    app.command()(show)
    app.command()(chat)

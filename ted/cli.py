"""The `ted` command.

The subcommands register themselves from the `ted/commands/` modules listed in COMMAND_MODULES,
each exposing `register(app)`. A subcommand's Click command is built only when it is used: Typer
builds one by reading every parameter's annotation, and `ted --help` needs only the names and the
first lines of the docstrings (the CPU `ted --help` may take is the bench's `help_cpu_s`).
Every failure ends with one line on stderr and a non-zero exit, never a traceback: user errors
(`TedError`) print their message, usage errors (unknown flag, extra argument) print Click's, and
anything else is reported as an internal error (TED_DEBUG=1 shows the traceback).
"""

import atexit
import importlib
import inspect
import os
import sys
import threading
from collections.abc import Iterator, MutableMapping
from typing import Annotated, Any, NoReturn, Optional, Union

import typer
from typer.core import TyperCommand, TyperGroup
from typer.exceptions import TyperException
from typer.main import get_command_from_info, get_command_name, get_group_from_info, solve_typer_info_help
from typer.models import CommandInfo, TyperInfo

from ted import __version__
from ted.commands.options import metavar, normalise_flag
from ted.errors import RUNTIME_EXIT, USAGE_EXIT, TedError

INTERNAL_EXIT = 70  # EX_SOFTWARE: a bug in ted, not in the user's input

EXAMPLES = {
    "distill": "ted distill --data problems.jsonl --student local --teacher openai:gpt-4o-mini --out lib.json",
    "show": "ted show lib.json --prompt --no-citations",
    "chat": "ted chat --library org/name@v2 --student local",
    "push": "ted push lib.json org/name@v3",
    "pull": "ted pull org/name@v2 --out lib/",
    "versions": "ted versions org/name --json",
    "diff": "ted diff org/name@v1 org/name@v2",
    "card": "ted card lib.json --out card/",
    "eval": "ted eval --task gsm8k --library lib.json --model local-chat-completions --model-args model=m,base_url=http://127.0.0.1:8080/v1/chat/completions",
    "space": "ted space --library org/name@v2",
    "space deploy": "ted space deploy org/my-space --library org/name@v2 --dry-run --out space-out/",
    "doctor": "ted doctor --json",
    "tasks-path": 'lm_eval --include_path "$(ted tasks-path)" --tasks ted_text ...',
    "data sample": "ted data sample pool.jsonl --samples 100 --exclude eval.jsonl --out train.jsonl",
    "reproduce": "ted reproduce --benchmark aime --student openai:m@http://127.0.0.1:8080/v1 --teacher openai:gpt-4o --out runs/aime --dry-run",
    "log": "ted log out/library.json --rejected",
    "attribute": "ted attribute lib.json --data test.jsonl --task generic --student openai:m@http://127.0.0.1:8080/v1 --limit 200",
    "completion": 'eval "$(ted completion bash)"',
    "serve": "ted serve local local:teacher --parallel 4",
    "ask": "ted ask lib.json --question 'How many legs do 3 spiders have?' --answer 24 --student local",
}
"""One example per command, shown at the end of its `--help` (tests check every command has one)."""

class _Commands(MutableMapping):
    """The root's subcommands by name: each Click command is built on first access."""

    def __init__(self) -> None:
        self.built: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self.built:
            self.built[name] = _build(registered[name])  # KeyError for an unknown name, as a dict
        return self.built[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self.built[name] = command

    def __delitem__(self, name: str) -> None:
        del self.built[name]

    def __iter__(self) -> Iterator[str]:
        return iter(registered)

    def __len__(self) -> int:
        return len(registered)


class _Root(TyperGroup):
    """The `ted` group; its command list (`ted --help`) comes from the registrations, building nothing."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = _Commands()

    def invoke(self, ctx: typer.Context) -> Any:
        from ted.redact import scrub_logs  # logging and the URL parser: not needed to print the help

        scrub_logs()  # a warning that reaches stderr through logging's last resort is scrubbed like our own lines
        return super().invoke(ctx)

    def list_commands(self, ctx: typer.Context) -> list[str]:
        return list(registered)

    def format_commands(self, ctx: typer.Context, formatter: Any) -> None:
        summaries = {name: TyperCommand(name=name, help=_help(info), short_help=info.short_help) for name, info in registered.items() if not info.hidden}
        limit = formatter.width - 6 - max(map(len, summaries))
        with formatter.section("Commands"):
            formatter.write_dl([(name, summary.get_short_help_str(limit)) for name, summary in summaries.items()])


app = typer.Typer(
    name="ted",
    cls=_Root,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # Click's plain help: Typer's Rich help alone costs more CPU than the 0.15 s `ted --help` may take
    context_settings={"help_option_names": ["-h", "--help"], "token_normalize_func": normalise_flag},
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"ted {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[Optional[bool], typer.Option("--version", "-V", callback=_print_version, is_eager=True, help="Print the version and exit.")] = None,
) -> None:
    """Training-free experience distillation: a teacher writes a budgeted library of lessons for a frozen student."""


COMMAND_MODULES = [
    "ted.commands.core", "ted.commands.hub", "ted.commands.eval", "ted.commands.space", "ted.commands.doctor",
    "ted.commands.data", "ted.commands.reproduce", "ted.commands.log", "ted.commands.completion", "ted.commands.ask", "ted.commands.serve",
    "ted.commands.attribute",
]

_commands = typer.Typer()  # what the modules register: commands and groups, not yet built
for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(_commands)
registered: dict[str, Union[CommandInfo, TyperInfo]] = {
    **{info.name or get_command_name(info.callback.__name__): info for info in _commands.registered_commands},  # type: ignore[union-attr]
    **{str(info.name): info for info in _commands.registered_groups},
}


def _help(info: Union[CommandInfo, TyperInfo]) -> Optional[str]:
    return solve_typer_info_help(info) if isinstance(info, TyperInfo) else info.help or inspect.getdoc(info.callback)


def _build(info: Union[CommandInfo, TyperInfo]) -> Union[TyperCommand, TyperGroup]:
    """One subcommand as Typer builds it, with the root's settings, readable metavars and its example."""
    if isinstance(info, TyperInfo):
        command: Any = get_group_from_info(info, pretty_exceptions_short=app.pretty_exceptions_short, suggest_commands=app.suggest_commands, rich_markup_mode=app.rich_markup_mode)
    else:
        command = get_command_from_info(info, pretty_exceptions_short=app.pretty_exceptions_short, rich_markup_mode=app.rich_markup_mode)
    _finish(command, command.name)
    return command


def _finish(command: Any, path: str) -> None:
    """Metavars and the example of a built command and, for a group, of its subcommands."""
    for param in command.params:
        if param.param_type_name == "option" and not param.is_flag and param.metavar is None:
            param.metavar = metavar(param.display_type(None))
        elif param.param_type_name == "argument":
            param.metavar = param.metavar or param.name.upper()
            param.display_type_rich = lambda ctx: None  # "REF_A", not "ref_a <str>": its help says what it is
    if path in EXAMPLES:
        command.epilog = f"\b\nExample:\n  {EXAMPLES[path]}"
    for name, sub in getattr(command, "commands", {}).items():
        _finish(sub, f"{path} {name}")


def _fail(message: str, code: int) -> None:
    """The one `error:` line. Messages quote what the user or a file gave (a path, a name, a server's
    words): a newline in it would forge a second line, an escape sequence would reach the terminal."""
    from ted.redact import scrub_text
    from ted.shown import visible

    typer.secho(f"error: {visible(scrub_text(message))}", err=True, fg="red")
    sys.exit(code)


def _bad_value(err: TyperException) -> Optional[str]:
    """A value Typer refused (its checks are pydantic's), said as ted says it: `--flag VALUE: what is wrong`,
    and where the value came from when it was the `--config` file."""
    param, ctx, cause = getattr(err, "param", None), getattr(err, "ctx", None), err.__cause__
    if param is None or ctx is None or not hasattr(cause, "errors") or not cause.errors():
        return None
    first = cause.errors()[0]
    message = str(first["msg"]).removeprefix("Value error, ")
    value = str(first.get("input"))
    source = getattr(ctx.get_parameter_source(param.name), "name", None)  # by name: Typer vendors Click's enum
    origin = f" (from --config {ctx.params.get('config')})" if source == "DEFAULT_MAP" else ""
    shown = "" if repr(value) in message else f" {value}"
    return f"{param.opts[0]}{shown}{origin}: {message[:1].lower()}{message[1:]}"


def main() -> None:
    """The `ted` console script: `run`, then leave without the interpreter's teardown (`_leave`)."""
    _reopen_closed_streams()
    try:
        run()
    except SystemExit as exit:
        _leave(exit.code)
    _leave(0)


def _reopen_closed_streams() -> None:
    """`ted … >&-`: with stdout closed, Python has no sys.stdout (every print a traceback) and the next
    file ted opens takes descriptor 1, where a child server's output would land. /dev/null takes each
    closed standard descriptor first (os.open returns the lowest free one)."""
    for fd, name in ((0, "stdin"), (1, "stdout"), (2, "stderr")):
        try:
            os.fstat(fd)
        except OSError:
            os.open(os.devnull, os.O_RDWR)
            setattr(sys, name, open(fd, "r" if fd == 0 else "w", closefd=False))  # noqa: SIM115 - the process's own stream


def _leave(code: object) -> NoReturn:
    """Exit with `code` once the command is done, skipping the interpreter's teardown.

    Freeing every imported module (the openai SDK's ~700 model classes, pydantic, Typer…) takes
    ~0.3 s after the work is finished: a tenth of a `ted show`. A finished command needs only what
    the normal exit does first: the atexit hooks (the token-count cache, logging) and flushed
    streams. A command that left a non-daemon thread running gets the normal exit, which waits for it,
    and so does a process being profiled or traced (cProfile and debuggers report after the exit).
    """
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    if sys.getprofile() or sys.gettrace() or any(not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)
    atexit._run_exitfuncs()  # what the normal exit runs first (CPython's own hook for it)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader that went away (`ted show | head`), a closed stream
            pass
    os._exit(code)


def run() -> None:
    """Run the command line in `sys.argv`; ends with SystemExit carrying the exit code (0 when it returns)."""
    if os.environ.get("_TED_COMPLETE"):  # a completion script asking for candidates (`ted completion`)
        from ted.commands.completion import init

        init()
    for stream in (sys.stdout, sys.stderr):  # a terminal or pipe that is not UTF-8 (LANG=C): escapes, not a crash
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    _bound_columns()
    try:
        app(standalone_mode=False, prog_name="ted")
    except BrokenPipeError:  # the reader went away (`ted show x --json | head -1`): stop quietly, exit 1 as Rich's console does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except TedError as err:
        _fail(str(err), err.exit_code)
    except TyperException as err:  # Click's errors, as vendored by Typer: usage errors and the like
        ctx = getattr(err, "ctx", None)
        if type(err).__name__ == "NoArgsIsHelpError":  # `ted` or a group with no command: the help
            typer.echo(err.format_message())
            sys.exit(USAGE_EXIT)
        hint = f" (see: {ctx.command_path} --help)" if ctx is not None else ""
        _fail(f"{_bad_value(err) or err.format_message()}{hint}", getattr(err, "exit_code", USAGE_EXIT))
    except (KeyboardInterrupt, typer.Abort):
        typer.secho("interrupted", err=True, fg="yellow")
        sys.exit(130)
    except typer.Exit as err:
        sys.exit(err.exit_code)
    except OSError as err:  # the machine said no (a read-only or full disk, a name too long, an unwritable HOME): the user's to fix
        if os.environ.get("TED_DEBUG"):
            raise
        where = _shortened(str(err.filename)) + ": " if err.filename else ""
        _fail(f"{where}{err.strerror or type(err).__name__}", RUNTIME_EXIT)
    except Exception as err:  # noqa: BLE001 - the last line of defence: one line, never a traceback
        if os.environ.get("TED_DEBUG"):
            raise
        _fail(f"internal error: {type(err).__name__}: {_shortened(str(err))} (rerun with TED_DEBUG=1 for the traceback)", INTERNAL_EXIT)


def _bound_columns() -> None:
    """Rich pads every line to $COLUMNS: COLUMNS=99999999 made `ted show` write 1.2 GB of spaces, and
    COLUMNS=0 printed nothing. A width outside 1..MAX_COLUMNS is taken as no width (the terminal's, or 80)."""
    from ted.limits import MAX_COLUMNS

    width = os.environ.get("COLUMNS", "").strip()
    if "COLUMNS" in os.environ and not (width.isdigit() and int(width) >= 1):
        del os.environ["COLUMNS"]
    elif width.isdigit() and int(width) > MAX_COLUMNS:
        os.environ["COLUMNS"] = str(MAX_COLUMNS)


def _shortened(text: str, limit: int = 300) -> str:
    """A value quoted in an error line, cut to `limit` characters: a 5,000-character argument makes no readable line."""
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


if __name__ == "__main__":
    main()

"""`ted.distill(...)`: one call from training problems to a saved library (the engine's front door).

The shape of gepa's `optimize` and DSPy's `compile`: give the data and the two models, get the
library back. Everything a run needs around the loop happens here, so `ted distill`, `ted
reproduce` and a Python caller run the same code: the output checks and lock, the confirmation of
a large run, both models (a spec string, or a `ChatModel` of your own), the system-prompt probe,
`system_in_user`, the call log, resuming from the checkpoint (read once), the final atomic save.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ted.distill.checkpoint import RunState, checkpoint_path
from ted.distill.config import RunConfig
from ted.distill.options import OPTIONS
from ted.distill.pipeline import Distiller
from ted.distill.progress import Reporter
from ted.errors import ConfigError, TedError
from ted.library import FILENAME, Library
from ted.models import load_model
from ted.models.base import ChatModel
from ted.models.calllog import calls_path
from ted.run_guard import RunLock, lock_path, refuse_inputs_as_output
from ted.run_plan import confirm
from ted.tasks import Problem, get_task
from ted.tasks.data import load_problems

IN_MEMORY = "(problems given in Python)"  # `data` as recorded when the caller passes Problem objects


def library_path(out: str | Path) -> Path:
    """Where a run with this `out` writes its library: `out` itself, or `library.json` in a folder."""
    path = Path(out)
    return path / FILENAME if path.is_dir() else path


def distill(
    data: str | Sequence[Problem],
    *,
    student: str | ChatModel,
    teacher: str | ChatModel,
    out: str | Path,
    resume: bool = OPTIONS["resume"].default,
    force: bool = OPTIONS["force"].default,
    yes: bool = OPTIONS["yes"].default,
    reporter: Reporter | None = None,
    say: Callable[[str], None] = lambda line: None,
    api_key_env: str = OPTIONS["api_key_env"].default,
    teacher_api_key_env: str | None = OPTIONS["teacher_api_key_env"].default,
    request_timeout: float = OPTIONS["request_timeout"].default,
    max_retries: int = OPTIONS["max_retries"].default,
    **options: Any,
) -> Library:
    """Distill a library from labelled problems, save it to `out` and return it.

    `data` is a data reference (file, datasets folder, Hub id) or a list of `Problem`s; `student`
    and `teacher` are model specs (`local`, `openai:MODEL@URL`, …) or `ChatModel` objects, which
    stay open for the caller. `options` are the run's options (`ted.distill.options`: `task`,
    `epochs`, `rollouts`, `batch_size`, `budget_tokens`, …, `fields` and `price` as mappings).
    `say` receives the one-line notices (a large run's plan, a lock taken over, resuming).
    Errors are `TedError`s with one line each; a run that stopped part-way says how to resume."""
    out_path = library_path(out)
    ckpt = checkpoint_path(out_path)
    given = not isinstance(data, str)
    refuse_inputs_as_output([out_path, ckpt, lock_path(out_path), calls_path(out_path)], {"--data": None if given else data, "--val-data": options.get("val_data")})
    if resume and force:
        raise ConfigError("--resume and --force contradict each other: choose one")
    if out_path.exists() and not (force or resume):
        raise ConfigError(f"{out_path} exists; use --force to overwrite it or --resume to continue its run")
    if resume and not ckpt.exists() and out_path.exists():
        raise ConfigError(f"nothing to resume: {out_path} is complete and there is no checkpoint; use --force to start over")
    run = RunConfig(
        data=IN_MEMORY if given else data,
        student=_spec(student),
        teacher=_spec(teacher),
        out=str(out_path),
        **options,
    )
    task = get_task(run.task)
    problems = list(data) if given else load_problems(run.data, fields=run.fields, split=run.split, limit=run.limit)  # type: ignore[arg-type]
    val = load_problems(run.val_data, fields=run.fields, split=run.split) if run.val_data else None
    confirm(run, len(problems), yes, say)
    bounds = {"timeout": request_timeout, "max_retries": max_retries}  # an outage ends the run instead of hanging it
    own: list[ChatModel] = []  # the models this call opened, and so closes

    def open_model(model: str | ChatModel, key_env: str) -> ChatModel:
        if not isinstance(model, str):
            return model
        own.append(load_model(model, api_key_env=key_env, max_concurrency=run.concurrency, **bounds))
        return own[-1]

    student_model = open_model(student, api_key_env)
    same = run.teacher == run.student and not teacher_api_key_env and isinstance(teacher, str)
    teacher_model = student_model if same else open_model(teacher, teacher_api_key_env or api_key_env)
    distiller = Distiller(run, student_model, teacher_model, task, problems, val, reporter=reporter)
    _check_writable(out_path)
    lock = RunLock(out_path).acquire()  # one run per --out; a killed run's lock is taken over
    try:
        if lock.stale_pid is not None:
            say(f"took over the lock of a run that is gone (PID {lock.stale_pid})")
        state: RunState | None = None
        if resume and ckpt.exists():
            state = distiller.load_checkpoint()  # another run's checkpoint, or a damaged one, is refused before any call
            say(f"resuming from {ckpt}")
        student_model.system_in_user = run.system_in_user
        library = _run(distiller, own, state, ckpt, out_path)
        try:
            library.save(out_path)
        except OSError as err:
            raise TedError(f"cannot write {out_path}: {err.strerror or err}; the finished run is in {ckpt}: free space, then rerun with --resume") from None
        ckpt.unlink(missing_ok=True)
        return library
    finally:
        lock.release()


def _run(distiller: Distiller, own: list[ChatModel], state: RunState | None, ckpt: Path, out: Path) -> Library:
    """The loop (it probes the student's system prompt first), then the models this call opened
    closed; failures as one line."""

    async def go() -> Library:
        try:
            return await distiller.run(state=state)
        finally:
            for model in own:
                await model.aclose()

    try:
        return asyncio.run(go())
    except KeyboardInterrupt:
        if not ckpt.exists():
            raise TedError("interrupted before the first batch finished; nothing was saved") from None
        raise TedError(f"interrupted; progress up to the last finished batch is in {ckpt}: rerun with --resume") from None
    except TedError as err:
        if ckpt.exists():
            raise type(err)(f"{err} (progress saved: rerun with --resume)") from None
        raise
    except OSError as err:  # a checkpoint could not be written: the disk filled up, the folder went away
        saved = " (progress saved: rerun with --resume)" if ckpt.exists() else ""
        raise TedError(f"cannot write {err.filename or out.parent}: {err.strerror or err}{saved}") from None


def _spec(model: str | ChatModel) -> str:
    """What the run records for a model: its spec, or the model name of an object."""
    return model if isinstance(model, str) else model.model


def _check_writable(out: Path) -> None:
    """Fail before the first paid call, not at the first checkpoint, if nothing can be written next to `out`."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent):
            pass
    except FileExistsError as err:
        raise ConfigError(f"--out {out}: {err.filename} is a file, not a folder; choose another path") from None
    except OSError as err:
        raise ConfigError(f"--out {out}: cannot write there ({err.strerror or err}); choose another path") from None

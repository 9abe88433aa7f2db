"""`ted eval`'s engine: run an lm-eval task twice through lm-eval's Python API, baseline and with
a library, on one model, and compare the scores. The documents and scoring inside lm-eval are
`ted.lm_eval_docs`.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ted import charts
from ted.errors import ConfigError, DataError, LibraryError
from ted.library import Library, atomic_write
from ted.lm_eval_docs import optional_library
from ted.redact import scrub_text
from ted.tasks import LM_EVAL_TASKS


@dataclass
class RunScores:
    """One lm-eval run of one task: accuracy, counts, and accuracy per category."""

    acc: float
    samples: int
    no_answer: int
    image_errors: int
    categories: dict[str, tuple[float, int]] = field(default_factory=dict)


@dataclass
class EvalReport:
    task: str
    library: str
    library_items: int
    library_tokens: int
    baseline: RunScores
    with_library: RunScores

    @property
    def delta(self) -> float:
        return self.with_library.acc - self.baseline.acc

    def to_dict(self) -> dict[str, Any]:
        def run(scores: RunScores) -> dict[str, Any]:
            return {
                "acc": scores.acc, "samples": scores.samples, "no_answer": scores.no_answer,
                "image_errors": scores.image_errors,
                "categories": {name: {"acc": acc, "samples": n} for name, (acc, n) in scores.categories.items()},
            }  # fmt: skip

        return {
            "task": self.task, "library": self.library, "library_items": self.library_items,
            "library_tokens": self.library_tokens, "baseline": run(self.baseline),
            "with_library": run(self.with_library), "delta": self.delta,
        }  # fmt: skip


TASKS_DIR = Path(__file__).resolve().parent / "eval_tasks"


def eval_tasks_dir(include_path: str | None = None) -> Path:
    """The folder of lm-eval task YAMLs: `include_path`, `TED_EVAL_TASKS`, or the one inside the package.

    The tasks live in `ted/eval_tasks/` so an installed wheel carries them; the checkout's top-level
    `eval_tasks` is a symlink to that folder, so there is one copy."""
    candidates = [include_path, os.environ.get("TED_EVAL_TASKS"), str(TASKS_DIR)]
    for candidate in candidates:
        if candidate and (Path(candidate) / "utils.py").is_file():
            return Path(candidate)
    raise ConfigError("cannot find the eval_tasks/ folder; pass --include_path PATH (the repository's eval_tasks/) or set TED_EVAL_TASKS")


def run_eval(
    task: str,
    library_ref: str,
    model: str,
    model_args: str,
    *,
    include_path: str | None = None,
    data_files: str | None = None,
    limit: int | None = None,
    gen_kwargs: str | None = None,
    batch_size: int | str = 1,
    apply_chat_template: bool = True,
    system_instruction: str | None = None,
    device: str | None = None,
    system_in_user: bool = False,
) -> EvalReport:
    """Run `task` through lm-eval's Python API twice, baseline then with the library, on one model."""
    if task not in LM_EVAL_TASKS:
        raise DataError(f"unknown task {task!r}; choose one of {', '.join(LM_EVAL_TASKS)}")
    library = optional_library(library_ref)
    if library is None:
        raise LibraryError("no library given: pass --library PATH or org/name@version")
    try:
        import lm_eval
        from lm_eval.api.registry import get_model
        from lm_eval.tasks import TaskManager
    except ImportError:
        raise ConfigError("ted eval needs lm-eval: pip install 'ted-distill[eval]'") from None
    folder = eval_tasks_dir(include_path)
    try:
        lm = get_model(model).create_from_arg_string(model_args, {"batch_size": batch_size, "device": device})
    except (ValueError, KeyError) as err:
        raise ConfigError(scrub_text(f"cannot create lm-eval model {model!r} from {model_args!r}: {err}")) from None
    if not system_in_user:
        _probe_endpoint(model, model_args)
    runs: dict[str, RunScores] = {}
    for label, ref in (("baseline", ""), ("with_library", library_ref)):
        metadata: dict[str, Any] = {"library": ref, "system_in_user": system_in_user}
        if data_files:
            metadata["data_files"] = data_files
        results = lm_eval.simple_evaluate(
            model=lm,
            tasks=[task],
            task_manager=TaskManager(include_path=str(folder), metadata=metadata),
            limit=limit,
            gen_kwargs=gen_kwargs,
            apply_chat_template=apply_chat_template,
            system_instruction=system_instruction,
            log_samples=True,
            bootstrap_iters=0,
        )
        if results is None:
            raise ConfigError("lm-eval returned no results (a non-zero rank of a distributed run?)")
        runs[label] = _scores(results["samples"][task])
    return EvalReport(
        task=task,
        library=library_ref,
        library_items=len(library.items),
        library_tokens=library.tokens(),
        baseline=runs["baseline"],
        with_library=runs["with_library"],
    )


def _probe_endpoint(model: str, model_args: str) -> None:
    """lm-eval's chat-completions models: stop before scoring when the server drops system messages."""
    import asyncio

    from ted.models.openai_api import OpenAIChatModel
    from ted.system_probe import ensure_system_reaches

    if model not in ("local-chat-completions", "openai-chat-completions"):
        return
    args = dict(part.split("=", 1) for part in model_args.split(",") if "=" in part)
    base_url = args.get("base_url", "").removesuffix("/").removesuffix("/chat/completions")
    if not base_url:
        return
    student = OpenAIChatModel(f"openai:{args.get('model', '')}@{base_url}", args.get("model", ""), base_url=base_url,
                              api_key=os.environ.get("OPENAI_API_KEY") or "sk-probe", max_retries=1)  # fmt: skip

    async def probe() -> None:
        try:
            await ensure_system_reaches(student)
        finally:
            await student.aclose()

    asyncio.run(probe())


def _scores(samples: list[dict[str, Any]]) -> RunScores:
    """Scores from lm-eval's logged samples (one per document, with our metrics merged in)."""
    by_category: dict[str, list[float]] = defaultdict(list)
    for sample in samples:
        if sample["doc"].get("category"):
            by_category[str(sample["doc"]["category"])].append(sample["acc"])
    n = len(samples)
    return RunScores(
        acc=sum(s["acc"] for s in samples) / n if n else 0.0,
        samples=n,
        no_answer=int(sum(s["no_answer"] for s in samples)),
        image_errors=int(sum(s["image_errors"] for s in samples)),
        categories={name: (sum(values) / len(values), len(values)) for name, values in sorted(by_category.items())},
    )


def record(report: EvalReport, library_ref: str) -> Path:
    """Write the scores into a local library's `metrics` (atomically); Hub references are refused."""
    path = Path(library_ref).expanduser()
    if not path.exists():
        raise LibraryError(f"--record writes into a local library file; {library_ref} is not one (pull it first)")
    library = Library.load(path)
    library.metrics.task = report.task
    library.metrics.baseline = report.baseline.acc
    library.metrics.with_library = report.with_library.acc
    extra = library.metrics.model_extra if library.metrics.model_extra is not None else {}
    extra["samples"] = report.with_library.samples
    if report.with_library.categories:
        extra["categories"] = {
            name: {"baseline": report.baseline.categories.get(name, (math.nan, 0))[0], "with_library": acc}
            for name, (acc, _) in report.with_library.categories.items()
        }
    target = path / "library.json" if path.is_dir() else path
    return library.save(target)


def bar_chart(report: EvalReport, path: str | os.PathLike[str]) -> Path:
    """A grouped bar chart (baseline vs library), overall and per category, as PNG."""
    labels = ["overall"] + list(report.with_library.categories)
    png = charts.comparison(
        f"{report.task}: {report.baseline.acc:.3f} → {report.with_library.acc:.3f} ({report.delta:+.3f})",
        labels,
        baseline=[report.baseline.acc] + [report.baseline.categories.get(c, (0.0, 0))[0] for c in labels[1:]],
        with_library=[report.with_library.acc] + [report.with_library.categories[c][0] for c in labels[1:]],
    )
    return atomic_write(Path(path), png)

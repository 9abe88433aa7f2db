"""`ted eval`'s engine: run an lm-eval task twice through lm-eval's Python API, baseline and with
a library, on one model, and compare the scores.

ted's own tasks (`eval_tasks/`, LM_EVAL_TASKS) carry the library in their documents and grade
with ted's scorers (`ted.lm_eval_docs`). Any other lm-eval task (gsm8k, …) takes the library as
lm-eval's `system_instruction`, in its citation-free form (`Library.render(cite=False)`: an
upstream answer extractor must not read a `Used: [E1]` trailer), and is scored by its own YAML:
each problem's value of one metric and filter from lm-eval's logged samples. lm-eval's request
cache key holds the system instruction's hash, so two libraries never share cached prompts.

Why ted's tasks keep `description` + `--metadata` rather than `--system_instruction`: the request
cache key has no fingerprint of the documents, so another `--data-files` would still reuse stale
requests (`guard_request_cache` stays), and a chat template without a system role drops a
system instruction as it drops a description (`keep_system_text` stays): moving would remove neither.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import math
import os
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ted import charts
from ted.errors import ConfigError, DataError, LibraryError
from ted.files import atomic_write
from ted.library import Library
from ted.lm_eval_docs import optional_library, score_doc
from ted.models.calllog import CallLog, Recorded, context, image_digest
from ted.redact import scrub_text
from ted.stats import Comparison, compare, per_problem
from ted.tasks import LM_EVAL_TASKS
from ted.tokens import get_counter

MULTIMODAL_LOCAL_MODELS = ("hf-multimodal", "vllm-vlm")  # lm-eval models that read `<image>` placeholders


@dataclass
class RunScores:
    """One lm-eval run of one task: each problem's verdicts (one per repeat), counts, categories."""

    verdicts: dict[str, list[float]]  # problem id → acc of each reply
    no_answer: int
    image_errors: int
    category_of: dict[str, str] = field(default_factory=dict)

    @property
    def samples(self) -> int:
        return len(self.verdicts)

    @property
    def acc(self) -> float:
        means = per_problem(list(self.verdicts.values())) if self.verdicts else []
        return sum(means) / len(means) if means else 0.0

    @property
    def categories(self) -> dict[str, tuple[float, int]]:
        """Accuracy (mean@k) and problem count per category."""
        grouped: dict[str, list[list[float]]] = defaultdict(list)
        for pid, name in self.category_of.items():
            grouped[name].append(self.verdicts[pid])
        return {name: (sum(per_problem(rows)) / len(rows), len(rows)) for name, rows in sorted(grouped.items())}


@dataclass
class EvalReport:
    task: str
    library: str
    library_items: int
    library_tokens: int
    baseline: RunScores
    with_library: RunScores
    repeats: int = 1
    metric: str = "acc"
    """The per-problem score compared: ted's `acc`, or an upstream task's `METRIC,FILTER`."""

    @property
    def delta(self) -> float:
        return self.with_library.acc - self.baseline.acc

    def comparison(self, category: str | None = None) -> Comparison:
        """The statistics over the problems both runs scored (of one category, if given)."""
        ids = [pid for pid in self.baseline.verdicts if pid in self.with_library.verdicts]
        if category is not None:
            ids = [pid for pid in ids if self.with_library.category_of.get(pid) == category]
        return compare([self.baseline.verdicts[i] for i in ids], [self.with_library.verdicts[i] for i in ids])

    def summary(self) -> dict[str, Any]:
        """What `ted eval --json` prints and `--record` stores."""
        return {"task": self.task, **self.comparison().to_dict()}

    def to_dict(self) -> dict[str, Any]:
        def run(scores: RunScores) -> dict[str, Any]:
            return {
                "acc": scores.acc, "samples": scores.samples, "no_answer": scores.no_answer,
                "image_errors": scores.image_errors,
                "categories": {name: {"acc": acc, "samples": n} for name, (acc, n) in scores.categories.items()},
            }  # fmt: skip

        return {
            "task": self.task, "library": self.library, "library_items": self.library_items,
            "library_tokens": self.library_tokens, "repeats": self.repeats, "metric": self.metric, "baseline": run(self.baseline),
            "with_library": run(self.with_library), "delta": self.delta, "stats": self.summary(),
            "category_stats": {name: self.comparison(name).to_dict() for name in self.with_library.categories},
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
    repeats: int = 1,
    temperature: float | None = None,
    calls: Path | None = None,
    metric: str | None = None,
    output_path: str | None = None,
    save_samples: bool = False,
    use_cache: str | None = None,
) -> EvalReport:
    """Run `task` through lm-eval's Python API twice, baseline then with the library, on one model.

    `repeats` k > 1 samples k replies per problem (at `temperature`, default 1.0 then) and every
    reply is graded, so the report holds mean@k with intervals over problems (see `ted.stats`).
    `task` is an lm-eval task of `eval_tasks/` or a reasoning-gym spec `rg:NAME[?split=test&n=…]`.
    A task that is not ted's is scored by `metric` (`METRIC[,FILTER]`, default lm-eval's first).
    `output_path` (with `save_samples`: each reply too, lm-eval's `--log_samples`) and `use_cache`
    are lm-eval's; the two runs go under `output_path/baseline` and `output_path/with_library`."""
    ours = is_ted_task(task)
    lm_task, task_metadata = resolve_task(task) if ours else (task, {})
    if repeats < 1:
        raise ConfigError(f"--repeats must be at least 1, got {repeats}")
    if not ours:
        for flag, given in (("--data-files", data_files), ("--system-in-user", system_in_user), ("--repeats", repeats > 1)):
            if given:
                raise ConfigError(f"{flag} is for ted's own tasks ({', '.join(LM_EVAL_TASKS)}); {task} takes its data and replies from its lm-eval YAML")
    elif metric:
        raise ConfigError(f"--metric is for other lm-eval tasks; {task} compares acc (the upstream harness's verdict)")
    if save_samples and not output_path:
        raise ConfigError("--log-samples writes into --output-path: give both")
    library = optional_library(library_ref)
    if library is None:
        raise LibraryError("no library given: pass --library PATH or org/name@version")
    try:
        from lm_eval.api.registry import get_model
        from lm_eval.tasks import TaskManager
    except ImportError:
        raise ConfigError("ted eval needs lm-eval: pip install 'ted-distill[eval]'") from None
    folder = eval_tasks_dir(include_path) if ours else None
    upstream = None if ours else _task_manager(TaskManager, task, include_path)
    if upstream is not None and task not in upstream.all_tasks:
        raise DataError(f"unknown task {task!r}: neither ted's ({', '.join(LM_EVAL_TASKS)}, rg:NAME) nor one lm-eval knows (`lm_eval ls tasks`)")
    try:
        lm = get_model(model).create_from_arg_string(model_args, {"batch_size": batch_size, "device": device})
    except (ValueError, KeyError) as err:
        raise ConfigError(scrub_text(f"cannot create lm-eval model {model!r} from {model_args!r}: {err}")) from None
    sampling = [] if repeats == 1 and temperature is None else ["do_sample=true", f"temperature={1.0 if temperature is None else temperature}"]
    gen_kwargs = ",".join([part for part in (gen_kwargs,) if part] + sampling) or None
    block = library.render(cite=ours)
    runs: dict[str, RunScores] = {}
    scored = "acc"
    with (
        CallLog(calls).open() if calls is not None else contextlib.nullcontext() as log,  # every request lm-eval makes, on record
        tempfile.TemporaryDirectory(prefix="ted-eval-") as tmp,
    ):
        if not system_in_user:
            _probe_endpoint(model, model_args, log)
        # The reference is resolved once (above): ted's documents read the library from a local
        # file, so a Hub reference is not looked up again.
        local = library_ref if Path(library_ref).expanduser().exists() else str(library.save(Path(tmp) / "library.json"))
        for label, ref in (("baseline", ""), ("with_library", local)):
            tracker = _tracker(output_path, label)
            common: dict[str, Any] = dict(limit=limit, gen_kwargs=gen_kwargs, apply_chat_template=apply_chat_template, use_cache=use_cache, evaluation_tracker=tracker)
            if upstream is None:
                metadata: dict[str, Any] = {**task_metadata, "library": ref, "system_in_user": system_in_user, "image_placeholders": model in MULTIMODAL_LOCAL_MODELS}
                if data_files:
                    metadata["data_files"] = data_files
                runs[label], results = score_run(lm, lm_task, folder, metadata, repeats=repeats, system_instruction=system_instruction, **common)  # type: ignore[arg-type]
            else:
                system = "\n\n".join(part for part in (system_instruction, block if ref else "") if part) or None
                results = evaluate_task(lm, upstream, lm_task, system_instruction=system, **common)
                runs[label], scored = _upstream_scores(task, results["samples"][lm_task], metric)
            if tracker is not None:
                _save(tracker, results, save_samples)
            if log is not None:
                log_samples(log, results["samples"][lm_task], label)
    return EvalReport(
        task=task,
        library=library_ref,
        library_items=len(library.items),
        library_tokens=get_counter(library.budget.tokenizer).count(block),
        baseline=runs["baseline"],
        with_library=runs["with_library"],
        repeats=repeats,
        metric=scored,
    )


def evaluate_task(lm: Any, manager: Any, lm_task: str, *, repeats: int | None = None, **options: Any) -> dict[str, Any]:
    """One `lm_eval.simple_evaluate` of one task from `manager`, its samples logged: every run of
    `ted eval` and `ted reproduce` goes through here. `repeats` replies per problem (ted's tasks)."""
    import lm_eval

    task_object = manager.load([lm_task])["tasks"][lm_task]
    if repeats is not None:
        task_object.set_config(key="repeats", value=repeats)
    results = lm_eval.simple_evaluate(model=lm, tasks=[task_object], task_manager=manager, log_samples=True, bootstrap_iters=0, **options)
    if results is None:
        raise ConfigError("lm-eval returned no results (a non-zero rank of a distributed run?)")
    results["samples"][lm_task] = sorted(results["samples"][lm_task], key=lambda s: s["doc_id"])
    return results


def score_run(lm: Any, lm_task: str, folder: Path, metadata: dict[str, Any], *, repeats: int, **options: Any) -> tuple[RunScores, dict[str, Any]]:
    """One arm of a ted task (`metadata["library"]`: "" is the baseline), every one of the `repeats`
    replies per problem graded (mean@k as `ted.stats` defines it); also lm-eval's results."""
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(folder), include_defaults=False, metadata=metadata)  # ted's tasks only: no index of lm-eval's own
    results = evaluate_task(lm, manager, lm_task, repeats=repeats, **options)
    return _scores(results["samples"][lm_task]), results


def is_ted_task(task: str) -> bool:
    """Whether ted's own documents and scorers run `task` (an `eval_tasks/` task or `rg:` spec), not an lm-eval YAML's."""
    from ted.tasks import rg

    return rg.is_spec(task) or task in LM_EVAL_TASKS


def resolve_task(task: str) -> tuple[str, dict[str, Any]]:
    """The lm-eval task that scores `task` and the metadata it needs (reasoning-gym specs go to `ted_rg`)."""
    from ted.tasks import rg

    if rg.is_spec(task):
        return rg.LM_TASK, rg.lm_eval_metadata(rg.parse_spec(task, split="test"))
    if task not in LM_EVAL_TASKS:
        raise DataError(f"unknown task {task!r}; choose one of {', '.join(LM_EVAL_TASKS)} or rg:NAME?split=test&n=N (reasoning-gym)")
    return task, {}


def _task_manager(manager_class: Any, task: str, include_path: str | None) -> Any:
    """lm-eval's TaskManager for a task that is not ted's: the `include_path` folder alone when it
    holds the task (indexing lm-eval's own thousands of YAMLs takes seconds), else with them."""
    if include_path:
        own = manager_class(include_path=include_path, include_defaults=False)
        if task in own.all_tasks:
            return own
    return manager_class(include_path=include_path)


def _tracker(output_path: str | None, label: str) -> Any:
    """lm-eval's EvaluationTracker writing one run under `output_path/label` (None: nothing written)."""
    if not output_path:
        return None
    from lm_eval.loggers import EvaluationTracker

    return EvaluationTracker(output_path=str(Path(output_path) / label))


def _save(tracker: Any, results: dict[str, Any], with_samples: bool) -> None:
    """What `lm_eval --output_path [--log_samples]` writes: the results, and each reply when asked."""
    samples = results["samples"]
    tracker.save_results_aggregated(results={k: v for k, v in results.items() if k != "samples"}, samples=samples if with_samples else None)
    if with_samples:
        for name in results["configs"]:
            tracker.save_results_samples(task_name=name, samples=samples[name])


def _upstream_scores(task: str, samples: list[dict[str, Any]], wanted: str | None) -> tuple[RunScores, str]:
    """Each problem's value of one metric under one filter, as lm-eval logged it (its own scoring),
    and that `METRIC,FILTER`: `wanted` (the filter optional), else the first lm-eval reports."""
    reported = list(dict.fromkeys(f"{name},{sample['filter']}" for sample in samples for name in sample.get("metrics", ())))
    name, _, only = (wanted or (reported or ["?"])[0]).partition(",")
    chosen = next((pair for pair in reported if pair.partition(",")[0] == name and only in ("", pair.partition(",")[2])), None)
    if chosen is None:
        raise ConfigError(f"--metric {wanted}: {task} reports {', '.join(reported) or 'no metric'} (METRIC or METRIC,FILTER)")
    keep = chosen.partition(",")[2]
    verdicts = {str(s["doc_id"]): [float(s[name])] for s in samples if s["filter"] == keep and name in s.get("metrics", ())}
    return RunScores(verdicts=verdicts, no_answer=0, image_errors=0), chosen


def _probe_endpoint(model: str, model_args: str, log: CallLog | None = None) -> None:
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
    student: Any = OpenAIChatModel(f"openai:{args.get('model', '')}@{base_url}", args.get("model", ""), base_url=base_url,
                                   api_key=os.environ.get("OPENAI_API_KEY") or "sk-probe", max_retries=1)  # fmt: skip
    if log is not None:
        student = Recorded(student, log, "student")

    async def probe() -> None:
        try:
            with context(stage="probe"):
                await ensure_system_reaches(student)
        finally:
            await student.aclose()

    asyncio.run(probe())


def log_samples(log: CallLog, samples: list[dict[str, Any]], arm: str, **fields: Any) -> None:
    """One `eval` record per request lm-eval made: the chat it sent, every reply, the sample's score.

    lm-eval keeps no tokens or seconds per request, so those fields are null (docs/call-log.md)."""
    for sample in samples:
        doc = sample.get("doc") if isinstance(sample.get("doc"), dict) else {}
        problem = str(doc.get("id", sample.get("doc_id")))
        for args, replies in zip(sample.get("arguments") or [], sample.get("resps") or []):
            args = list(args) if isinstance(args, (list, tuple)) else [args]
            extra = args[2] if len(args) > 2 and isinstance(args[2], dict) else {}
            flat = [r for reply in (replies if isinstance(replies, (list, tuple)) else [replies]) for r in (reply if isinstance(reply, (list, tuple)) else [reply])]
            log.write(
                "call", stage="eval", role="student", arm=arm, problem=problem, **fields,
                messages=eval_messages(args[0] if args else "", extra.get("visual") or []),
                params=args[1] if len(args) > 1 and isinstance(args[1], dict) else None,
                replies=[{"content": str(r), "reasoning": None, "finish_reason": None} for r in flat],
                score=sample.get("acc"), usage=None, seconds=None, error=None,
            )  # fmt: skip


def eval_messages(prompt: Any, images: list[Any]) -> list[dict[str, Any]]:
    """The chat lm-eval sent, as call-log messages: its JSON chat string (chat templates applied by an
    API model) or one plain prompt; every image (a part's data URL, or the request's visuals) as a hash."""
    try:
        chat = json.loads(prompt) if isinstance(prompt, str) else prompt
    except (ValueError, RecursionError):
        chat = None
    if not (isinstance(chat, list) and chat and all(isinstance(m, dict) for m in chat)):
        chat = [{"role": "user", "content": str(prompt)}]
    messages = []
    for message in chat:
        content, hashes = message.get("content"), []
        if isinstance(content, list):  # content parts: text, and images as data URLs
            texts = [str(part.get("text", "")) for part in content if isinstance(part, dict) and part.get("type") == "text"]
            hashes = [_data_url_digest(part) for part in content if isinstance(part, dict) and part.get("type") == "image_url"]
            content = "\n".join(texts)
        messages.append({"role": str(message.get("role", "user")), "text": str(content or "")} | ({"images": hashes} if hashes else {}))
    if images:
        messages[-1].setdefault("images", []).extend(image_digest(image) for image in images)
    return messages


def _data_url_digest(part: dict[str, Any]) -> str:
    url = str((part.get("image_url") or {}).get("url", "")) if isinstance(part.get("image_url"), dict) else ""
    try:
        return "sha256:" + hashlib.sha256(base64.b64decode(url.split(",", 1)[1], validate=True)).hexdigest()
    except (IndexError, ValueError):
        return "unreadable: not a base64 data URL"


def _scores(samples: list[dict[str, Any]]) -> RunScores:
    """Every reply of lm-eval's logged samples graded again with the task's scorer (lm-eval's own
    metrics see only the first reply of a repeated request)."""
    verdicts: dict[str, list[float]] = {}
    category_of: dict[str, str] = {}
    no_answer = image_errors = 0
    for sample in samples:
        doc = sample["doc"]
        pid = str(doc["id"])
        replies = [reply for group in sample["resps"] for reply in (group if isinstance(group, list) else [group])]
        scores = [score_doc(doc, [reply]) for reply in replies] or [score_doc(doc, [])]
        verdicts[pid] = [float(score["acc"]) for score in scores]
        no_answer += int(sum(score["no_answer"] for score in scores))
        image_errors += int(scores[0]["image_errors"])
        if doc.get("category"):
            category_of[pid] = str(doc["category"])
    return RunScores(verdicts=verdicts, no_answer=no_answer, image_errors=image_errors, category_of=category_of)


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
    extra["stats"] = report.summary()
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

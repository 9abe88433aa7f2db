"""Score a student with and without a library: the lm-eval glue and `ted eval`.

The lm-eval tasks in `eval_tasks/` are thin YAML; their `utils.py` calls `lm_eval_docs` to build
the documents and `score_doc` to grade a reply, so `ted distill --task X` and `lm_eval --tasks
ted_X` grade alike. Each document carries its prompt already rendered: the system text
(`[system prompt; E]`, the same `solve` prompt the rollouts use) goes through lm-eval's
`description`, the question through `doc_to_text`, images through `doc_to_image` (PIL).

The library comes from `--metadata '{"library": REF}'` or `TED_LIBRARY`; an empty or absent
reference is the baseline. lm-eval's request cache (`--cache_requests`) is keyed by task name
only, so `guard_request_cache` drops a task's cached requests whenever the documents change
(another library, other data): two libraries never share cached prompts.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ted.errors import ConfigError, DataError, LibraryError
from ted.library import Library
from ted.redact import scrub_text
from ted.tasks import BaseTask, BenchmarkTask, Problem, get_task

log = logging.getLogger(__name__)

# lm-eval task name → (ted task, split). `None` split: the dataset's only split.
LM_EVAL_TASKS: dict[str, tuple[str, str | None]] = {
    "ted_mathvision": ("mathvision", "test"),
    "ted_mathvision_testmini": ("mathvision", "testmini"),
    "ted_visualpuzzles": ("visualpuzzles", None),
    "ted_aime": ("aime", "test"),
    "ted_aime24": ("aime24", "train"),
}
IMAGE_PLACEHOLDER = "<image>"  # lm-eval's hf-multimodal / vllm-vlm put one image per placeholder
_DATA_SUFFIXES = ("", ".parquet", ".jsonl", ".json", ".csv", ".arrow")


# --------------------------------------------------------------------------- references
def resolve_library(ref: str | None) -> Library | None:
    """A library from a local path or a Hub reference `org/name[@version]`; None for no reference."""
    if ref is None or not str(ref).strip():
        return None
    try:
        from ted.hub import load_library
    except ImportError:  # a ted without Hub support still reads local libraries
        return Library.load(str(ref).strip())
    return load_library(str(ref).strip())


def library_reference(metadata: dict[str, Any]) -> str | None:
    """`metadata["library"]` if given (an empty string means the baseline), else `TED_LIBRARY`."""
    if "library" in metadata:
        value = metadata["library"]
        return None if value is None else str(value)
    return os.environ.get("TED_LIBRARY") or None


def data_source(task: BaseTask, metadata: dict[str, Any]) -> str | None:
    """Local data for a task: `metadata["data_files"]`, else `TED_DATA_DIR/<task>[.parquet|…]`."""
    if metadata.get("data_files"):
        return str(metadata["data_files"])
    folder = os.environ.get("TED_DATA_DIR")
    if not folder:
        return None
    for suffix in _DATA_SUFFIXES:
        candidate = Path(folder).expanduser() / f"{task.name}{suffix}"
        if candidate.exists():
            return str(candidate)
    names = ", ".join(f"{task.name}{suffix or '/'}" for suffix in _DATA_SUFFIXES[:3])
    raise DataError(f"TED_DATA_DIR={folder} has no data for {task.name} (expected one of {names})")


def system_text(task: BaseTask, library: Library | None) -> str:
    """lm-eval's `description`: the task's system text for the library ("" for the baseline).

    It ends with a blank line, because without a chat template lm-eval writes it straight in
    front of the question."""
    text = task.system_prompt(library.render() if library is not None else "")
    return f"{text.rstrip()}\n\n" if text else ""


def wants_placeholders(metadata: dict[str, Any]) -> bool:
    """Whether the question text carries `<image>` placeholders: local multimodal models need them
    (hf-multimodal, vllm-vlm: lm-eval merges their `pretrained` model argument into the metadata),
    chat APIs would receive them as literal text. `image_placeholders` in the metadata decides explicitly."""
    if "image_placeholders" in metadata:
        return str(metadata["image_placeholders"]).strip().lower() in ("1", "true", "yes")
    return "pretrained" in metadata


# --------------------------------------------------------------------------- lm-eval documents
def lm_eval_docs(lm_task: str, **metadata: Any) -> dict[str, Any]:
    """The documents of an lm-eval task as `{split: datasets.Dataset}` (lm-eval's `custom_dataset`).

    `metadata` is lm-eval's `--metadata` merged with the task's own and the model arguments, so only
    names no model uses are read: `library`, `data_files`, `dataset_revision`, `image_placeholders`
    (never `revision`, which is the model's).
    """
    import datasets

    if lm_task not in LM_EVAL_TASKS:
        raise DataError(f"unknown task {lm_task!r}; choose one of {', '.join(LM_EVAL_TASKS)}")
    task_name, split = LM_EVAL_TASKS[lm_task]
    task = get_task(task_name)
    library = resolve_library(library_reference(metadata))
    source = data_source(task, metadata)
    if not isinstance(task, BenchmarkTask):
        raise DataError(f"{lm_task}: {task_name} is not a benchmark task")
    revision = metadata.get("dataset_revision")
    problems = task.load(split=split, data_files=source, revision=revision)
    system = system_text(task, library)
    with_images = task.has_images
    placeholders = with_images and wants_placeholders(metadata)
    rows = [_doc(task, problem, system, with_images, placeholders) for problem in problems]
    if system and str(metadata.get("system_in_user", "")).lower() in ("1", "true"):
        for row in rows:  # `--system-in-user`: for servers whose chat template drops system messages
            row["ted_prompt"], row["ted_system"] = f"{system.rstrip()}\n\n{row['ted_prompt']}", ""
    features = _features(with_images)
    dataset = datasets.Dataset.from_list(rows, features=features)
    fingerprint = hashlib.sha256(
        "\x00".join([lm_task, source or task.dataset, str(revision), system] + [r["ted_prompt"] + "\x01" + r["answer"] for r in rows]).encode()
    ).hexdigest()
    guard_request_cache(lm_task, fingerprint)
    bad = sum(1 for row in rows if row["image_error"])
    if bad:
        log.warning("%s: %d of %d images could not be decoded; those problems are scored wrong", lm_task, bad, len(rows))
    return {"test": dataset}


def _doc(task: BaseTask, problem: Problem, system: str, with_images: bool, placeholders: bool) -> dict[str, Any]:
    prompt = task.format_prompt(problem)
    row: dict[str, Any] = {
        "ted_task": task.name,
        "id": problem.id,
        "question": problem.question,
        "answer": problem.answer,
        "options": problem.options,
        "category": task.category(problem) if isinstance(task, BenchmarkTask) else None,
        "image_error": problem.meta.get("image_error", ""),
        "ted_system": system,
    }
    if with_images:
        row["ted_images"] = [image.convert("RGB") if image.mode not in ("RGB", "L") else image for image in problem.images]
        if placeholders and problem.images:
            prompt = IMAGE_PLACEHOLDER * len(problem.images) + "\n" + prompt
    row["ted_prompt"] = prompt
    return row


def _features(with_images: bool) -> Any:
    import datasets

    text = datasets.Value("string")
    spec = {
        "ted_task": text, "id": text, "question": text, "answer": text,
        "options": datasets.List(text), "category": text,
        "image_error": text, "ted_system": text, "ted_prompt": text,
    }  # fmt: skip
    if with_images:
        spec["ted_images"] = datasets.List(datasets.Image())
    return datasets.Features(spec)


def doc_problem(doc: dict[str, Any]) -> Problem:
    """The Problem behind an lm-eval document (what the task's scorer needs)."""
    return Problem(id=doc["id"], question=doc["question"], answer=doc["answer"], options=doc.get("options") or None)


def score_doc(doc: dict[str, Any], results: list[str]) -> dict[str, float]:
    """lm-eval `process_results`: acc (the upstream verdict), acc_lenient (ted's reading), no_answer,
    image_errors, and acc per category (NaN elsewhere)."""
    task = get_task(doc["ted_task"])
    reply = results[0] if results else ""
    scores: dict[str, float] = {"acc": 0, "acc_lenient": 0, "no_answer": 0, "image_errors": 0}
    if doc.get("image_error"):
        scores["image_errors"] = 1
    else:
        problem = doc_problem(doc)
        grade = task.grade(reply, problem)
        scores["acc"] = int(grade.correct)
        scores["acc_lenient"] = int(task.grade_lenient(reply, problem).correct)
        scores["no_answer"] = int(grade.no_answer)
    for category in getattr(task, "categories", ()):
        scores[f"acc_{category}"] = scores["acc"] if (doc.get("category") or "").lower() == category else math.nan
    return scores


def guard_request_cache(lm_task: str, fingerprint: str) -> None:
    """Drop lm-eval's cached requests for `lm_task` when its documents changed since they were cached."""
    try:
        from lm_eval.caching import cache
    except ImportError:
        return
    folder = Path(cache.PATH)
    marker = folder / f"ted-{lm_task}.fingerprint"
    try:
        if marker.is_file() and marker.read_text() == fingerprint:
            return
        stale = list(folder.glob(f"requests-{lm_task}-*")) if folder.is_dir() else []
        for path in stale:
            path.unlink()
        if stale:
            log.warning("%s: dropped %d cached request file(s) built from other documents or another library", lm_task, len(stale))
        folder.mkdir(parents=True, exist_ok=True)
        marker.write_text(fingerprint)
    except OSError as err:
        raise ConfigError(f"cannot check lm-eval's request cache at {folder} ({err}); run without --cache_requests or set LM_HARNESS_CACHE_PATH") from None


# lm-eval's local models whose `apply_chat_template(chat_history, add_generation_prompt)` renders a chat.
_CHAT_MODELS = (
    ("lm_eval.models.huggingface", "HFLM"),
    ("lm_eval.models.hf_vlms", "HFMultimodalLM"),
    ("lm_eval.models.vllm_causallms", "VLLM"),
    ("lm_eval.models.vllm_vlms", "VLLM_VLM"),
)
_warned_no_system_role: list[bool] = []


def keep_system_text() -> None:
    """Make lm-eval's local models keep the library when their chat template has no system role.

    lm-eval drops the system turn of such templates (with a generic warning), and the library would
    never reach the model. Here, when the rendered prompt lacks the system text, the chat is rendered
    again with that text at the start of the first user turn, and a warning says so once per run.
    Called when the ted tasks load, which lm-eval does after creating the model: only the model
    modules already imported are touched, so nothing heavy (vLLM, torch) is imported for an API model."""
    import sys

    for module_name, class_name in _CHAT_MODELS:
        model_class = getattr(sys.modules.get(module_name), class_name, None)
        if model_class is None:
            continue
        original = model_class.__dict__.get("apply_chat_template")
        if original is None or getattr(original, "ted_keeps_system", False):
            continue
        model_class.apply_chat_template = _keeping_system(original)


def _keeping_system(original: Any) -> Any:
    import copy

    def apply_chat_template(self: Any, chat_history: list[dict[str, Any]], *args: Any, **kwargs: Any) -> Any:
        system = next((m["content"] for m in chat_history if m.get("role") == "system"), None)
        rendered = original(self, copy.deepcopy(chat_history), *args, **kwargs)
        if not isinstance(system, str) or not system.strip() or not isinstance(rendered, str) or system.strip() in rendered:
            return rendered
        if not _warned_no_system_role:
            _warned_no_system_role.append(True)
            log.warning("the chat template has no system role: the system text (the library) goes at the start of the first user turn")
        return original(self, merge_system_into_user(chat_history), *args, **kwargs)

    apply_chat_template.ted_keeps_system = True  # type: ignore[attr-defined]
    return apply_chat_template


def merge_system_into_user(chat: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The chat without system turns, their text in front of the first user turn's text."""
    system = "".join(m["content"] for m in chat if m.get("role") == "system")
    merged, placed = [], False
    for message in chat:
        if message.get("role") == "system":
            continue
        if message.get("role") == "user" and not placed and isinstance(message.get("content"), str):
            message = {**message, "content": system + message["content"]}
            placed = True
        merged.append(message)
    return merged


def total(values: list[float]) -> float:
    """lm-eval aggregation for counts (no_answer, image_errors)."""
    return float(sum(values))


# --------------------------------------------------------------------------- ted eval
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
    library = resolve_library(library_ref)
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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = ["overall"] + list(report.with_library.categories)
    base = [report.baseline.acc] + [report.baseline.categories.get(c, (0.0, 0))[0] for c in labels[1:]]
    lib = [report.with_library.acc] + [report.with_library.categories[c][0] for c in labels[1:]]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(labels) + 2), 3.6), dpi=120)
    xs = range(len(labels))
    width = 0.38
    ax.bar([x - width / 2 for x in xs], base, width, label="baseline", color="#9aa5b1")
    ax.bar([x + width / 2 for x in xs], lib, width, label="with library", color="#2f6fde")
    ax.set_xticks(list(xs), labels, rotation=20 if len(labels) > 4 else 0, ha="right" if len(labels) > 4 else "center")
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title(f"{report.task}: {report.baseline.acc:.3f} → {report.with_library.acc:.3f} ({report.delta:+.3f})")
    ax.legend(frameon=False)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out

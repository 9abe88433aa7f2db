"""The code that runs inside lm-eval: the documents of the `ted_*` tasks, and their scoring.

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
import json
import logging
import math
import os
import re
from pathlib import Path
from typing import Any

from ted.errors import ConfigError, DataError
from ted.library import Library
from ted.models.base import Message, fold_system, fold_text
from ted.tasks import LM_EVAL_TASKS, BaseTask, BenchmarkTask, Problem, get_task, student_system

log = logging.getLogger(__name__)

IMAGE_PLACEHOLDER = "<image>"  # lm-eval's hf-multimodal / vllm-vlm put one image per placeholder
_DATASET_PLACEHOLDER = re.compile(r"<image\d*>")  # MathVision questions say where their figure goes
_DATA_SUFFIXES = ("", ".parquet", ".jsonl", ".json", ".csv", ".arrow")


# --------------------------------------------------------------------------- references
def optional_library(ref: str | None) -> Library | None:
    """A library from a local path or a Hub reference `org/name[@version]`; None (the baseline) for no reference."""
    if ref is None or not str(ref).strip():
        return None
    from ted.hub import load_library

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


def system_text(task: BaseTask, library: Library | None, placebo: bool = False) -> str:
    """lm-eval's `description`: the task's system text for the library ("" for the baseline;
    the library's empty frame for the placebo, `metadata["placebo"]`).

    It ends with a blank line, because without a chat template lm-eval writes it straight in
    front of the question."""
    text = student_system(None, task, frame=True) if placebo else student_system(library, task)
    return f"{text.rstrip()}\n\n" if text else ""


def is_placebo(metadata: dict[str, Any]) -> bool:
    """`metadata["placebo"]`: the library's frame without lessons (a library given beside it is an error)."""
    placebo = str(metadata.get("placebo", "")).strip().lower() in ("1", "true", "yes")
    if placebo and library_reference(metadata):
        raise ConfigError("metadata: placebo and a library together; the placebo arm has no lessons")
    return placebo


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
    if lm_task not in LM_EVAL_TASKS:
        raise DataError(f"unknown task {lm_task!r}; choose one of {', '.join(LM_EVAL_TASKS)}")
    task_name, split = LM_EVAL_TASKS[lm_task]
    task = get_task(task_name)
    if not isinstance(task, BenchmarkTask):
        raise DataError(f"{lm_task}: {task_name} is not a benchmark task")
    system = _system(task, metadata)
    source = data_source(task, metadata)
    revision = metadata.get("dataset_revision")
    problems = task.load(split=split, data_files=source, revision=revision)
    return _documents(lm_task, task, problems, system, metadata, [source or task.dataset, str(revision)])


def rg_docs(**metadata: Any) -> dict[str, Any]:
    """The documents of `ted_rg`: the reasoning-gym problems that `metadata["rg"]` names, a spec
    `rg:NAME?split=test&n=N&seed=K` (see `ted.tasks.rg.spec_from_metadata`)."""
    from ted.tasks.rg import LM_TASK, generate, spec_from_metadata
    from ted.tasks.rg_task import RgTask

    spec = spec_from_metadata(metadata)
    task = RgTask(spec.generator)
    system = _system(task, metadata)
    return _documents(LM_TASK, task, generate(spec), system, metadata, [str(spec)])


def _system(task: BaseTask, metadata: dict[str, Any]) -> str:
    """The task's system text for the metadata's library (or placebo), read before any data: a bad
    library is refused with its own line, whatever state the data is in."""
    return system_text(task, optional_library(library_reference(metadata)), placebo=is_placebo(metadata))


def _documents(lm_task: str, task: BaseTask, problems: list[Problem], system: str, metadata: dict[str, Any], origin: list[str]) -> dict[str, Any]:
    """`{"test": datasets.Dataset}` of rendered documents; `origin` names the data for the request-cache guard."""
    import datasets

    with_images = bool(getattr(task, "has_images", False))
    placeholders = with_images and wants_placeholders(metadata)
    rows = [_doc(task, problem, system, with_images, placeholders) for problem in problems]
    if system and str(metadata.get("system_in_user", "")).lower() in ("1", "true"):
        for row in rows:  # `--system-in-user`: for servers whose chat template drops system messages
            row["ted_prompt"], row["ted_system"] = fold_text(system, row["ted_prompt"]), ""
    features = _features(with_images)
    dataset = datasets.Dataset.from_list(rows, features=features)
    fingerprint = hashlib.sha256(
        "\x00".join([lm_task, *origin, system] + [r["ted_prompt"] + "\x01" + r["answer"] for r in rows]).encode()
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
        "ted_meta": json.dumps(problem.meta, sort_keys=True, default=str),  # what a scorer may need (reasoning-gym's item seed)
    }
    if with_images:
        row["ted_images"] = [image.convert("RGB") if image.mode not in ("RGB", "L") else image for image in problem.images]
        if placeholders and problem.images:
            prompt = IMAGE_PLACEHOLDER * len(problem.images) + "\n" + prompt
        elif not placeholders:  # a chat API gets the images as images: no `<image1>` text in the question
            prompt = _DATASET_PLACEHOLDER.sub("", prompt)
    row["ted_prompt"] = prompt
    return row


def _features(with_images: bool) -> Any:
    import datasets

    text = datasets.Value("string")
    spec = {
        "ted_task": text, "id": text, "question": text, "answer": text,
        "options": datasets.List(text), "category": text,
        "image_error": text, "ted_system": text, "ted_prompt": text, "ted_meta": text,
    }  # fmt: skip
    if with_images:
        spec["ted_images"] = datasets.List(datasets.Image())
    return datasets.Features(spec)


def doc_problem(doc: dict[str, Any]) -> Problem:
    """The Problem behind an lm-eval document (what the task's scorer needs)."""
    meta = json.loads(doc.get("ted_meta") or "{}")
    return Problem(id=doc["id"], question=doc["question"], answer=doc["answer"], options=doc.get("options") or None, meta=meta)


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
    """lm-eval's chat (role/content dicts) folded as a ted model's messages are (`fold_system`).
    lm-eval hands over text contents; a chat with any other content is left as it is."""
    if not all(isinstance(m.get("content"), str) and m.get("role") in ("system", "user", "assistant") for m in chat):
        return chat
    return [{"role": m.role, "content": m.text} for m in fold_system([Message(m["role"], m["content"]) for m in chat])]


def total(values: list[float]) -> float:
    """lm-eval aggregation for counts (no_answer, image_errors)."""
    return float(sum(values))

"""The card and the derived files of a published library: README.md, experiences.jsonl, charts.

A library on the Hub is a dataset repo (DESIGN §4). `library.json` is canonical; everything here
is derived from it so a reader (or the dataset viewer) can judge the library without ted:

* `README.md` — YAML metadata plus the body rendered from `ted/templates/card.md.j2`;
* `experiences.jsonl` — one row per experience, declared under `configs` so the viewer shows it;
* `assets/learning_curve.png`, `assets/usage.png` — charts (matplotlib, Agg backend).

The YAML is built as data and written with `yaml.safe_dump`, so strings taken from a library
(names, model ids) cannot break the metadata. In the body every library-supplied string is
escaped for Markdown and HTML, and only strings with a conservative character set go into the
copy-paste commands: a card shows the lessons, it never lets them inject markup or commands.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jinja2
import yaml

from ted import charts
from ted.errors import LibraryError
from ted.library import Library, clean_text
from ted.repo_ids import check_repo_id
from ted.shown import visible
from ted.tasks import LM_EVAL_TASKS, rg
from ted.tasks.registry import LM_TASK_ALIASES
from ted.tokens import DEFAULT_TOKENIZER, get_counter

TEMPLATE_NAME = "card.md.j2"
LIBRARY_FILE = "library.json"
CARD_FILE = "README.md"
EXPERIENCES_FILE = "experiences.jsonl"
CURVE_IMAGE = "assets/learning_curve.png"
USAGE_IMAGE = "assets/usage.png"
UNSTATED_LICENSE = "unknown"
"""The card's license when the publisher states none: a library's lessons derive from the training data
and the teacher's outputs, whose terms only the publisher knows, so ted never picks one (`--license`)."""
LANGUAGE = ["en"]
"""The lessons' language: ted's prompts ask the teacher in English."""
PAPER_TITLE = "TED: Training-Free Experience Distillation for Multimodal Reasoning"
PAPER_ARXIV = "2603.26778"
"""The paper's arXiv id: in the card's tags (`arxiv:ID`) and body, so the Hub links the paper page."""
PAPER_AUTHORS = "Shuozhi Yuan and Jinqing Wang and Zihao Liu and Miaomiao Yuan and Haoran Peng and Jin Zhao and Bingwen Wang and Haoyi Wang"
STUDENT_URL = "http://127.0.0.1:8000/v1"
"""Where the card's copy-paste commands expect the student's OpenAI-compatible server."""
_DATA_FILE_SUFFIXES = (".json", ".jsonl", ".csv", ".parquet", ".arrow", ".txt", ".tsv")

_MD_SPECIAL = re.compile(r"([\\`*_\[\]{}#|~!])")
_COMMAND_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,199}\Z")
_RG_PROBLEMS = re.compile(rf"^{rg.PREFIX}[a-z0-9_]{{1,80}}(\?[A-Za-z0-9_.=&,-]{{1,200}})?\Z")  # no quote, no shell character


def md(value: Any) -> str:
    """One line of library-supplied text, safe inside Markdown (tables included) and HTML; control and
    invisible characters spelled out (`ted.shown`), so the card shows every character the student gets."""
    text = visible(value) if value is not None else ""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def command_token(value: Any, placeholder: str) -> str:
    """A value for a copy-paste command: used as is only if it cannot break out of the command."""
    text = str(value or "")
    return text if _COMMAND_SAFE.match(text) else placeholder


def hub_dataset_id(value: str | None) -> str | None:
    """`value` if it names a Hub dataset (`org/name` or a bare canonical `name`), else None.

    A run records what `--data` was given: a local file or folder is not a Hub id even when it
    looks like one (`data/train`), so anything that exists here or ends like a data file is left out.
    """
    text = clean_text(value or "")
    if not text or text.lower().endswith(_DATA_FILE_SUFFIXES) or Path(text).expanduser().exists():
        return None
    try:
        check_repo_id(text if "/" in text else f"canonical/{text}")
    except LibraryError:
        return None
    return text


def fmt_score(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def library_tokens(library: Library) -> int:
    """Tokens of the rendered block, always counted with the offline cl100k encoding.

    A library names its own tokenizer, but one from the Hub must not make us load an arbitrary
    tokenizer; cl100k is exact for the budget whenever the library was built with the default.
    """
    return library.tokens(get_counter(DEFAULT_TOKENIZER))


def lm_eval_task(library: Library) -> str | None:
    """The lm-eval task (eval_tasks/) that scores this library's task, preferring its split."""
    tasks, task = LM_EVAL_TASKS, library.metrics.task
    if task in tasks:
        return task
    if rg_problems(library):
        return rg.LM_TASK
    matches = [name for name, (ted_task, _) in tasks.items() if ted_task == task]
    same_split = [name for name in matches if tasks[name][1] == library.source.split]
    return (same_split or matches or [None])[0]


def rg_problems(library: Library) -> str | None:
    """The reasoning-gym problems a library's task names (`rg:NAME`, or the spec `ted eval --record`
    kept), for `ted eval --task` and `ted_rg`'s `--metadata`; None when it is no such spec, or one
    that holds characters a copy-paste command must not (the spec comes from the library file)."""
    task = library.metrics.task or ""
    return task if _RG_PROBLEMS.match(task) else None


def lm_eval_metadata(library: Library, ref_cmd: str) -> str:
    """lm-eval's `--metadata` for the card's command: the library, and the problems for `ted_rg`."""
    problems = rg_problems(library)
    return json.dumps({"library": ref_cmd, **({rg.METADATA_KEY: problems} if problems else {})})


def card_metadata(library: Library, *, version: str | None, license: str | None = None) -> dict[str, Any]:
    """The card's YAML metadata, as the Hub's `DatasetCardData` lays it out: its fields (license,
    language, creators, task category, configs, …) and a `ted` block.

    The rows are lessons a model wrote (creators `machine-generated`) for a generating model's
    prompt (`text-generation`); the license is the publisher's (UNSTATED_LICENSE when none is given)."""
    from huggingface_hub import DatasetCardData

    source = {k: (clean_text(v) if isinstance(v, str) else v) for k, v in library.source.model_dump().items() if v is not None}
    metrics = library.metrics
    delta = None if metrics.baseline is None or metrics.with_library is None else round(metrics.with_library - metrics.baseline, 4)
    source_id = hub_dataset_id(library.source.dataset)
    ted_block = {
        "format": library.format,
        "name": clean_text(library.name),
        "version": version,
        "library_version": clean_text(library.version),
        "created": library.created,
        "student": {"model": clean_text(library.student.model), "backend": clean_text(library.student.backend)},
        "teacher": {"model": clean_text(library.teacher.model), "backend": clean_text(library.teacher.backend)},
        "source": source,
        "budget": library.budget.model_dump(),
        "compression": library.compression,
        "items": len(library.items),
        "tokens": library_tokens(library),
        "tokenizer": DEFAULT_TOKENIZER,
        "metrics": {
            "task": clean_text(metrics.task) if metrics.task else None,
            "without_library": metrics.baseline,
            "with_library": metrics.with_library,
            "delta": delta,
            **significance(metrics.model_extra or {}),
        },
    }
    return DatasetCardData(
        license=license or UNSTATED_LICENSE,
        language=LANGUAGE,
        language_creators=["machine-generated"],
        annotations_creators=["machine-generated"],
        pretty_name=f"TED experience library: {clean_text(library.name)}",
        tags=["ted", "experience-library", "distillation", "in-context-learning", f"arxiv:{PAPER_ARXIV}"],
        task_categories=["text-generation"],
        size_categories=["n<1K"],
        source_datasets=[source_id] if source_id else None,
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": EXPERIENCES_FILE}]}],
        ted=ted_block,
    ).to_dict()


def significance(extra: dict[str, Any]) -> dict[str, Any]:
    """The recorded `ted eval` statistics (see ted.stats): the gain's 95% interval, p, whether it is significant.

    Read from untrusted library JSON, so only finite numbers pass; nothing recorded gives nothing."""
    stats = extra.get("stats")
    ci = stats.get("delta_ci95") if isinstance(stats, dict) else None
    if not isinstance(ci, list) or len(ci) != 2 or None in (low := charts._number(ci[0]), high := charts._number(ci[1])):
        return {}
    return {
        "delta_ci95": [low, high],
        "p_value": charts._number(stats.get("p_value")),
        "problems": charts._number(stats.get("n")),
        "repeats": charts._number(stats.get("repeats")),
        "significant": not low <= 0.0 <= high,
    }


def render_card(
    library: Library,
    *,
    ref: str,
    version: str | None = None,
    images: Iterable[str] = (),
    license: str | None = None,
) -> str:
    """The README.md of a published library. `ref` is how users load it (e.g. `org/name@v2`)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("ted", "templates"),  # inside the package: works from a wheel
        autoescape=False,  # Markdown, not HTML: untrusted strings go through the `md` filter instead
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(md=md, score=fmt_score)
    metadata = card_metadata(library, version=version, license=license)
    front = yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True, width=1000)
    cost = library.cost
    roles = [(name, role) for name, role in sorted(cost.roles.items())]
    ref_cmd = command_token(ref, "ORG/NAME@VERSION")
    repo_cmd, _, version_cmd = ref_cmd.partition("@")
    body = env.get_template(TEMPLATE_NAME).render(
        lib=library,
        meta=metadata["ted"],
        ref=ref,
        ref_cmd=ref_cmd,
        repo_cmd=repo_cmd,
        version_cmd=version_cmd or "VERSION",
        student_url=STUDENT_URL,
        student_cmd=command_token(library.student.model, "STUDENT_MODEL"),
        lm_task=lm_eval_task(library),
        lm_metadata=lm_eval_metadata(library, ref_cmd),
        rg_problems=rg_problems(library),
        lm_tasks=[f"`{name}`" for name in LM_EVAL_TASKS if name not in LM_TASK_ALIASES],
        version=version,
        images=set(images),
        curve_image=CURVE_IMAGE,
        usage_image=USAGE_IMAGE,
        curve=[charts.curve_row(point) for point in library.metrics.curve],
        roles=roles,
        cost=cost,
        paper_title=PAPER_TITLE,
        paper_arxiv=PAPER_ARXIV,
        paper_authors=PAPER_AUTHORS,
    )
    return f"---\n{front}---\n\n{body}"


def split_card(text: str) -> tuple[dict[str, Any], str]:
    """(metadata, body) of a card; the metadata is parsed with `yaml.safe_load`."""
    match = re.match(r"^---\n(.*?)\n---\n", text, re.DOTALL)
    if not match:
        return {}, text
    data = yaml.safe_load(match.group(1))
    return (data if isinstance(data, dict) else {}), text[match.end() :]


def experiences_jsonl(library: Library) -> bytes:
    """One JSON row per experience (the dataset viewer's table)."""
    rows = [
        {
            "id": item.id,
            "text": item.text,
            "usage": item.usage,
            "priority": round(item.priority, 4),
            "created_step": item.created_step,
            "updated_step": item.updated_step,
            "sources": item.sources,
            **({"attribution": item.attribution.model_dump(mode="json")} if item.attribution else {}),
        }
        for item in library.items
    ]
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")


def render_files(library: Library, *, ref: str, version: str | None = None, license: str | None = None) -> dict[str, bytes]:
    """Every derived file of the Hub layout, by path in the repo (library.json excluded)."""
    files: dict[str, bytes] = {EXPERIENCES_FILE: experiences_jsonl(library)}
    for path, png in ((CURVE_IMAGE, charts.learning_curve(library)), (USAGE_IMAGE, charts.usage(library))):
        if png is not None:
            files[path] = png
    card = render_card(library, ref=ref, version=version, images=files.keys(), license=license)
    files[CARD_FILE] = card.encode("utf-8")
    return files

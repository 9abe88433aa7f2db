"""Training files that share no problem with an evaluation set (`ted data sample`).

A distilled library is only evidence if its training problems are not in the benchmark it is
scored on. Problems are read as `--data` reads them (a file, a datasets folder or a Hub id, with
`--field` maps), or through a benchmark's own loader for a benchmark's Hub id or `--task`. A pool
problem is left out when the evaluation set has

- its id — compared only within one dataset (the same benchmark, or user files on both sides):
  across benchmarks ids are unrelated numbering ("1" in MathVerse is not "1" in MathVision);
- its question text, after normalising case, Unicode forms, punctuation, spacing and image
  placeholders — except a text several problems with figures share (MathVerse's Vision Only
  versions all read "According to the question shown in the image…"), which names no problem;
- one of its images, compared by the hash of the decoded pixels.

Duplicates inside the pool (same id or same identifying text) are kept once. The sample is drawn
with a seeded `random.Random`, and written in pool order as JSONL with its images as PNG files
beside it, so `ted distill --data` reads it back as it was.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ted.errors import DataError
from ted.tasks.base import Problem, question_key

REASONS = ("id", "question text", "image")


@dataclass
class Source:
    """Problems read from one source, and which dataset they are (for comparing ids)."""

    problems: list[Problem]
    dataset: str | None  # a benchmark's Hub id; None for user data


def read_source(
    source: str, task: str | None = None, split: str | None = None, fields: Mapping[str, str] | None = None
) -> Source:
    """Problems from `source` as `ted distill --data` reads them.

    A benchmark's own loader (its schema, its option parsing) reads the benchmark's Hub id, or a
    local copy when `task` names the benchmark and no `fields` are mapped; anything else is read
    by the generic loader.
    """
    from ted.tasks import TASKS, get_task
    from ted.tasks.benchmark import BenchmarkTask
    from ted.tasks.data import load_problems

    chosen = get_task(task) if task else next((t() for t in TASKS.values() if getattr(t, "dataset", None) == source), None)
    if isinstance(chosen, BenchmarkTask) and not fields:
        data_files = None if source == chosen.dataset else source
        problems = chosen.load(split=split, data_files=data_files)
        if not problems:
            raise DataError(f"{source}: no problems found (the split is empty)")
        return Source(problems, chosen.dataset)
    return Source(load_problems(source, fields=fields, split=split, on_bad_image="mark"), None)


def image_key(image: Any) -> str:
    """A hash of an image's decoded pixels (the same figure re-saved losslessly hashes alike).

    Not a perceptual hash (imagehash's pHash), measured: on ted's fixture figures (small line
    drawings, a shape and a label) pHash gives a circle labelled "2" the same hash as one labelled
    "3" (0 bits apart; triangles "1" and "2": 4 bits), while a halved JPEG copy of the triangle
    "1" lies 4 bits from it, so no threshold catches copies without joining distinct problems;
    benchmark figures that differ only in their labels are common (one diagram, other lengths).
    On 400 larger synthetic diagrams
    pHash equality caught 38-67% of JPEG or rescaled copies, with no false match among 79,800
    distinct pairs: a gain on such figures, a loss on labelled ones, so the exact key stays."""
    from PIL import Image

    img = image if isinstance(image, Image.Image) else Image.open(image)
    rgb = img.convert("RGB")
    return hashlib.sha256(f"{rgb.size}".encode() + rgb.tobytes()).hexdigest()


@dataclass
class _Keys:
    ids: set[str] = field(default_factory=set)
    texts: set[str] = field(default_factory=set)
    images: set[str] = field(default_factory=set)


def _shared_texts(problems: Sequence[Problem]) -> set[str]:
    """Texts that several problems with figures share: they do not identify a problem."""
    counts = Counter(question_key(p.question) for p in problems if p.images)
    return {text for text, count in counts.items() if count > 1}


@dataclass
class Sample:
    """What `sample_disjoint` chose, and why the rest was left out."""

    problems: list[Problem]
    read: int
    eligible: int
    excluded: int = 0  # pool problems the evaluation sets share, each counted once
    by: Counter[str] = field(default_factory=Counter)  # by reason; a problem can match several ways
    duplicates: int = 0
    unreadable: int = 0

    def summary(self, out: Path) -> str:
        reasons = ", ".join(f"by {reason} {self.by[reason]}" for reason in REASONS)
        return (
            f"wrote {len(self.problems)} problems to {out}, sampled from {self.eligible} eligible of {self.read} read; "
            f"excluded {self.excluded} that the evaluation set has ({reasons}), "
            f"{self.duplicates} duplicates within the pool, {self.unreadable} with unreadable images"
        )


def sample_disjoint(pool: Source, exclude: Sequence[Source], n: int, seed: int = 0) -> Sample:
    """`n` problems of `pool` that none of `exclude` has, drawn with `seed`, in pool order."""
    if n < 1:
        raise DataError(f"--samples {n}: ask for at least one problem")
    boilerplate = _shared_texts(pool.problems) | set().union(*(_shared_texts(e.problems) for e in exclude))
    keys = _Keys()
    for other in exclude:
        for problem in other.problems:
            if other.dataset == pool.dataset:
                keys.ids.add(problem.id)
            keys.texts.add(question_key(problem.question))
            keys.images.update(image_key(img) for img in problem.images)
    keys.texts.discard("")

    result = Sample(problems=[], read=len(pool.problems), eligible=0)
    eligible: list[Problem] = []
    seen_ids: set[str] = set()
    seen_texts: set[str] = set()
    for problem in pool.problems:
        if "image_error" in problem.meta:
            result.unreadable += 1
            continue
        text = question_key(problem.question)
        identifying = bool(text) and not (problem.images and text in boilerplate)
        matched = {
            "id": problem.id in keys.ids,
            "question text": identifying and text in keys.texts,
            "image": any(image_key(img) in keys.images for img in problem.images),
        }
        if any(matched.values()):
            result.excluded += 1
            result.by.update(reason for reason, hit in matched.items() if hit)
            continue
        if problem.id in seen_ids or (identifying and text in seen_texts):
            result.duplicates += 1
            continue
        seen_ids.add(problem.id)
        if identifying:
            seen_texts.add(text)
        eligible.append(problem)
    result.eligible = len(eligible)
    if n > len(eligible):
        raise DataError(
            f"the pool has only {len(eligible)} problems outside the evaluation set "
            f"({result.excluded} excluded, {result.duplicates} duplicates); ask for at most {len(eligible)} with --samples"
        )
    chosen = set(random.Random(seed).sample(range(len(eligible)), n))
    result.problems = [problem for index, problem in enumerate(eligible) if index in chosen]
    return result


def write_jsonl(problems: Sequence[Problem], out: Path) -> Path:
    """Problems as JSONL in ted's field names; images as PNG files in `<stem>-images/` beside it."""
    from ted.files import atomic_write

    folder = out.with_name(f"{out.stem}-images")
    lines = []
    for index, problem in enumerate(problems):
        row: dict[str, Any] = {"id": problem.id, "question": problem.question, "answer": problem.answer}
        if problem.options:
            row["options"] = problem.options
        if problem.images:
            folder.mkdir(parents=True, exist_ok=True)
            paths = []
            for k, image in enumerate(problem.images):
                name = f"{index + 1:05d}-{k + 1}.png"
                _save_png(image, folder / name)
                paths.append(f"{folder.name}/{name}")
            row["images"] = paths
        row.update({key: value for key, value in problem.meta.items() if key not in row})
        lines.append(json.dumps(row, ensure_ascii=False))
    atomic_write(out, "\n".join(lines) + "\n")
    return out


def _save_png(image: Any, path: Path) -> None:
    from PIL import Image

    img = image if isinstance(image, Image.Image) else Image.open(image)
    if img.mode not in ("RGB", "RGBA", "L"):
        img = img.convert("RGB")
    img.save(path, format="PNG")

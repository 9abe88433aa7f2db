"""Load labelled problems from a JSONL/CSV file, a local `datasets` folder, a Hub dataset, or a
reasoning-gym spec `rg:NAME?split=train&n=100` (made on the spot, see `ted.tasks.rg`).

JSONL and CSV are read here (so a bad line is reported by its number); everything else goes
through `datasets`, so a Hub id works with network and a local copy in the same schema works
offline. Image columns are read undecoded and decoded one row at a time: one corrupt image is
then either a clear error (training data) or a counted, marked problem (benchmarks), never a
crash halfway through a dataset.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from ted.errors import DataError
from ted.files import parse_json, read_capped
from ted.limits import MAX_DATA_FILE_BYTES, MAX_NESTING
from ted.tasks.base import Problem

CANONICAL = ("id", "question", "answer", "options", "images")
ALIASES: dict[str, tuple[str, ...]] = {
    "id": ("id", "idx", "pid", "uid", "problem_id"),
    "question": ("question", "problem", "prompt", "query", "input"),
    "answer": ("answer", "final_answer", "label", "target", "gold"),
    "options": ("options", "choices"),
    "images": ("images", "decoded_image", "image", "image_path", "image_paths"),
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+\Z", re.ASCII)
_DISK_MARKERS = ("dataset_info.json", "dataset_dict.json", "state.json")
_TEXT_SUFFIXES = {".jsonl", ".json", ".csv"}
BadImage = Literal["raise", "mark"]
IMAGE_ROOT_ENV = "TED_IMAGE_ROOT"  # a folder of the user's whose images any data may name (docs/limits.md)


# --------------------------------------------------------------------------- public API
def load_problems(
    source: str,
    fields: Mapping[str, str] | None = None,
    split: str | None = None,
    limit: int | None = None,
    *,
    revision: str | None = None,
    on_bad_image: BadImage = "raise",
) -> list[Problem]:
    """Read problems from `source` (JSONL, CSV, a datasets folder, a Hub dataset id, or an `rg:` spec).

    `fields` maps ted's names (question, answer, options, images, id) to source columns, e.g.
    `{"question": "problem"}`; unmapped names fall back to common column names. Image paths are
    relative to the data file and must stay inside its folder (see `_confined`). `on_bad_image="mark"` keeps a problem whose image cannot be read,
    with no images and `meta["image_error"]` set, instead of raising.
    """
    from ted.tasks import rg

    if rg.is_spec(source):
        return rg.load(source, split or "train", limit)
    fields = dict(fields or {})
    unknown = set(fields) - set(CANONICAL)
    if unknown:
        raise DataError(f"unknown field name(s) {', '.join(sorted(unknown))}: map one of {', '.join(CANONICAL)}")
    path = Path(source).expanduser()
    if path.is_file() and path.suffix.lower() in (".jsonl", ".csv") or path.suffix.lower() == ".json" and _is_json_lines(path):
        rows: Iterable[tuple[str, dict[str, Any]]] = _read_text_rows(path)
        base_dir = path.parent
    else:
        dataset, base_dir = open_dataset(source, split=split, revision=revision)
        if limit is not None:
            dataset = dataset.select(range(min(limit, len(dataset))))
        rows = ((f"row {i + 1}", row) for i, row in enumerate(dataset))
    problems: list[Problem] = []
    first_seen: dict[str, str] = {}
    for index, (where, row) in enumerate(rows):
        if limit is not None and index >= limit:
            break
        problem = row_to_problem(row, index, fields, base_dir, f"{source} {where}", on_bad_image)
        if problem.id in first_seen:  # ids key checkpoints, provenance and paired scoring: never silently renamed
            raise DataError(f"{source} {where}: duplicate problem id {problem.id!r} (first at {first_seen[problem.id]}); make the ids unique or map another column with --field id=COLUMN")
        first_seen[problem.id] = where
        problems.append(problem)
    if not problems:
        raise DataError(f"{source}: no problems found (the file or split is empty)")
    return problems


def open_dataset(
    source: str, split: str | None = None, revision: str | None = None, name: str | None = None
) -> tuple[Any, Path | None]:
    """A `datasets.Dataset` (one split) from a local file or folder or a Hub id, images undecoded.

    `name` picks a configuration of a dataset that has several (a folder or Hub repository whose
    card declares them). Returns the dataset and the folder relative image paths are resolved against.
    """
    import datasets

    path = Path(source).expanduser()
    try:
        if path.is_file():
            if path.stat().st_size == 0:
                raise DataError(f"{source}: the file is empty")
            builder = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet", ".arrow": "arrow"}.get(
                path.suffix.lower()
            )
            if builder is None:
                raise DataError(f"{source}: unsupported file type {path.suffix!r}; use JSONL, JSON, CSV, Parquet or a datasets folder")
            loaded = datasets.load_dataset(builder, data_files=str(path))
            base_dir: Path | None = path.parent
        elif path.is_dir():
            if any((path / marker).exists() for marker in _DISK_MARKERS):
                loaded = datasets.load_from_disk(str(path))
            else:
                # datasets caches a folder's rows under its name and layout, not its contents: two
                # copies called `mathvision` (or one edited copy) would read each other's rows.
                loaded = datasets.load_dataset(str(path), name, download_mode="force_redownload")
            base_dir = path
        elif _HUB_ID.match(source) and path.suffix.lower() not in _TEXT_SUFFIXES | {".parquet"}:
            loaded = datasets.load_dataset(source, name, revision=revision)
            base_dir = None
        elif path.exists():  # a FIFO, a device, a socket: refused before anything reads it
            raise DataError(f"{source}: not a regular file (a FIFO, a device or a socket); give a regular file")
        else:
            raise DataError(f"{source}: no such file or folder (give a JSONL/CSV/Parquet file, a datasets folder, or a Hub id org/name)")
    except DataError:
        raise
    except FileNotFoundError as err:
        raise DataError(f"{source}: {err}") from None
    except (ConnectionError, OSError) as err:
        raise DataError(f"{source}: cannot load the dataset ({_one_line(err)}); without network, pass a local copy in the same schema") from None
    except Exception as err:  # noqa: BLE001  (datasets raises many types for unreadable data)
        raise DataError(f"{source}: cannot read the dataset ({type(err).__name__}: {_one_line(err)})") from None
    # A single file has one split, named `train` by datasets: any requested split means that one.
    return _undecoded(_pick_split(loaded, None if path.is_file() else split, source)), base_dir


def require_columns(columns: Iterable[str], required: Iterable[str | tuple[str, ...]], origin: str, schema: str) -> None:
    """Raise DataError naming the first missing field; a tuple means any one of those names."""
    present = set(columns)
    needed = ", ".join(need if isinstance(need, str) else "/".join(need) for need in required)
    for need in required:
        names = (need,) if isinstance(need, str) else need
        if not present & set(names):
            wanted = " or ".join(repr(n) for n in names)
            have = ", ".join(sorted(present)) or "none"
            raise DataError(f"{origin}: missing field {wanted} ({schema} rows need {needed}; this data has {have})")


# --------------------------------------------------------------------------- rows
def row_to_problem(
    row: Mapping[str, Any],
    index: int,
    fields: Mapping[str, str],
    base_dir: Path | None,
    where: str,
    on_bad_image: BadImage = "raise",
) -> Problem:
    """One source row as a Problem, naming the row and the field when something is missing."""
    columns = {name: _column(row, name, fields, where) for name in CANONICAL}
    values = {name: (row.get(col) if col else None) for name, col in columns.items()}
    for name in ("question", "answer"):
        if _blank(values[name]):
            has = f"column {columns[name]!r} is empty" if columns[name] else f"no {name!r} field (columns: {', '.join(row)})"
            raise DataError(f"{where}: {has}; map another column with --field {name}=COLUMN")
    meta = {key: value for key, value in row.items() if key not in columns.values() and _plain(value)}
    for name in ("question", "answer", "id"):  # a list or an object would be sent as its Python repr
        if isinstance(values[name], (Mapping, list, tuple)):
            raise DataError(f"{where}: {name!r} is a {'list' if isinstance(values[name], (list, tuple)) else 'JSON object'}, expected text or a number")
    problem_id = values["id"]
    problem = Problem(
        id=str(problem_id) if not _blank(problem_id) else f"sample-{index}",
        question=str(values["question"]),
        answer=_answer_text(values["answer"]),
        options=_options(values["options"], where),
        meta=meta,
    )
    try:
        problem.images = [decode_image(value, base_dir, where) for value in _as_list(values["images"])]
    except DataError as err:
        if on_bad_image == "raise":
            raise
        problem.meta["image_error"] = str(err)
    return problem


def decode_image(value: Any, base_dir: Path | None, where: str) -> Any:
    """A loaded PIL image from a path (relative to `base_dir`), bytes, a datasets dict or PIL."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(value, Mapping):
        value = value.get("bytes") or value.get("path")
    try:
        if isinstance(value, Image.Image):
            value.load()
            return value
        if isinstance(value, (bytes, bytearray)):
            image = Image.open(io.BytesIO(value))
        elif isinstance(value, (str, Path)):
            path = _confined(Path(value), base_dir, where)
            if path.is_dir():
                raise DataError(f"{where}: {path} is a folder, not an image file")
            if not path.is_file():
                raise DataError(f"{where}: image file not found: {path}")
            image = Image.open(path)
        else:
            raise DataError(f"{where}: unreadable image value of type {type(value).__name__}")
        image.load()
        return image
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as err:
        name = f" {str(value)[:120]}" if isinstance(value, (str, Path)) else ""
        raise DataError(f"{where}: cannot decode image{name} ({_one_line(err)})") from None


def _confined(path: Path, base_dir: Path | None, where: str) -> Path:
    """An image path of a row, resolved inside the data's own folder (or $TED_IMAGE_ROOT, a root the
    user trusts). A dataset is untrusted: a path outside would open any file of the user's (`/home/…`,
    `../../.ssh/id_rsa`) and send it to the model endpoints. A Hub dataset has no folder here: its
    images come as bytes, never as paths."""
    roots = [root.resolve() for root in (base_dir, Path(os.environ[IMAGE_ROOT_ENV]).expanduser() if os.environ.get(IMAGE_ROOT_ENV) else None) if root is not None]
    resolved = (path if path.is_absolute() or base_dir is None else base_dir / path).resolve()
    if not any(resolved.is_relative_to(root) for root in roots):
        inside = f"inside {base_dir}" if base_dir is not None else "as image bytes (a Hub dataset's paths are not opened)"
        raise DataError(
            f"{where}: image path {str(path)[:120]!r} is outside the data's folder; images must be {inside}, "
            f"or set {IMAGE_ROOT_ENV}=DIR to trust a folder of yours"
        )
    return resolved


def _column(row: Mapping[str, Any], name: str, fields: Mapping[str, str], where: str) -> str | None:
    if name in fields:
        if fields[name] not in row:
            raise DataError(f"{where}: --field {name}={fields[name]} names a missing column (columns: {', '.join(row)})")
        return fields[name]
    # Common names in order, ignoring case ("Problem" is "problem"); a filled column beats an empty one.
    by_lower = {column.lower(): column for column in row}
    present = [by_lower[alias] for alias in ALIASES[name] if alias in by_lower]
    return next((column for column in present if not _blank(row[column])), None) or next(iter(present), None)


def _answer_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _options(value: Any, where: str) -> list[str] | None:
    if _blank(value):
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise DataError(f"{where}: options must be a list (in CSV, a JSON list like [\"3\", \"4\"])") from None
    if not isinstance(value, (list, tuple)):
        raise DataError(f"{where}: options must be a list, got {type(value).__name__}")
    options = [str(option) for option in value]
    return options or None


def _as_list(value: Any) -> list[Any]:
    if _blank(value):
        return []
    if isinstance(value, (list, tuple)):
        return [v for v in value if not _blank(v)]
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            return list(json.loads(value))
        except json.JSONDecodeError:
            pass
    return [value]


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or (isinstance(value, (list, tuple)) and not value)


def _plain(value: Any) -> bool:
    """Metadata worth keeping: JSON-friendly scalars and short lists (not images or blobs)."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return not (isinstance(value, str) and len(value) > 20_000)
    return isinstance(value, list) and all(isinstance(v, (str, int, float, bool)) for v in value)


# --------------------------------------------------------------------------- JSONL / CSV
def _is_json_lines(path: Path) -> bool:
    """A `.json` file holding one object per line (rather than one JSON document)."""
    if not path.is_file():
        return False
    with path.open("rb") as handle:
        head = handle.read(1 << 16).lstrip()
    return head.startswith(b"{")


def _read_text_rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        text = read_capped(path, MAX_DATA_FILE_BYTES, DataError).decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    if not text.strip():
        raise DataError(f"{path}: the file is empty")
    if path.suffix.lower() == ".csv":
        for number, row in enumerate(csv.DictReader(io.StringIO(text)), start=2):
            yield f"line {number}", {key: value for key, value in row.items() if key is not None}
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        row = parse_json(line, DataError, f"{path} line {number}", MAX_NESTING)  # strict: `"answer": NaN` or a key twice is refused
        if not isinstance(row, dict):
            raise DataError(f"{path} line {number}: expected a JSON object, got {type(row).__name__}")
        yield f"line {number}", row


# --------------------------------------------------------------------------- datasets helpers
def _pick_split(loaded: Any, split: str | None, source: str) -> Any:
    import datasets

    if isinstance(loaded, datasets.Dataset):
        return loaded
    names = list(loaded.keys())
    if split is not None:
        if split not in loaded:
            raise DataError(f"{source}: no split {split!r}; it has {', '.join(names)}")
        return loaded[split]
    if len(names) == 1:
        return loaded[names[0]]
    raise DataError(f"{source}: several splits ({', '.join(names)}); choose one with --split")


def _undecoded(dataset: Any) -> Any:
    """Image columns as raw {bytes, path} so rows decode one at a time (see the module docstring)."""
    import datasets

    for name, feature in dataset.features.items():
        if isinstance(feature, datasets.Image) and feature.decode:
            dataset = dataset.cast_column(name, datasets.Image(decode=False))
        else:
            inner = getattr(feature, "feature", None)
            if isinstance(feature, list) and feature and isinstance(feature[0], datasets.Image):
                dataset = dataset.cast_column(name, [datasets.Image(decode=False)])
            elif isinstance(inner, datasets.Image) and inner.decode:
                dataset = dataset.cast_column(name, type(feature)(datasets.Image(decode=False)))
    return dataset


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:300] if text else type(err).__name__

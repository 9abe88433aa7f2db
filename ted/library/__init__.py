"""The experience library, in rooms: what a lesson is (`lessons`), how the student sees and cites
lessons (`citations`), the file's data model and its verbs (`model`), and what a run records in
it (`metrics`). Import from here; the rooms import each other, never this package."""

from ted.library.citations import cited_ids, item_line, placebo_block, render_block, strip_trailer
from ted.library.lessons import (
    ID_PATTERN,
    LESSON_MAX_CHARS,
    LESSON_MAX_WORDS,
    LESSON_MIN_CHARS,
    MAX_ITEM_CHARS,
    LessonProblem,
    Rejection,
    clean_text,
    id_number,
    lesson_problem,
    lesson_shape_error,
)
from ted.library.metrics import Cost, CurvePoint, ExtractionTally, Metrics, RoleCost
from ted.library.model import (
    FILENAME,
    FORMAT,
    MAX_FILE_BYTES,
    MAX_HISTORY,
    MAX_SOURCES,
    VERDICTS,
    Attribution,
    Budget,
    Experience,
    HistoryEntry,
    Library,
    LibraryDiff,
    ModelInfo,
    SourceInfo,
    Verdict,
    Verdicts,
    check_library,
    diff,
)
from ted.limits import MAX_ITEMS

__all__ = [
    "FILENAME", "FORMAT", "ID_PATTERN", "LESSON_MAX_CHARS", "LESSON_MAX_WORDS", "LESSON_MIN_CHARS", "MAX_FILE_BYTES",
    "MAX_HISTORY", "MAX_ITEMS", "MAX_ITEM_CHARS", "MAX_SOURCES", "VERDICTS", "Attribution", "Budget", "Cost", "CurvePoint", "Experience",
    "ExtractionTally", "HistoryEntry", "LessonProblem", "Library", "LibraryDiff", "Metrics", "ModelInfo", "Rejection",
    "RoleCost", "SourceInfo", "Verdict", "Verdicts", "check_library", "cited_ids", "clean_text", "diff", "id_number",
    "item_line", "lesson_problem", "placebo_block", "lesson_shape_error", "render_block", "strip_trailer",
]  # fmt: skip

"""What a lesson is: its id, its limits, and the one check every lesson a teacher writes passes.

Extraction (`add`/`update`) and compression (`merge`/`rewrite`) both call `lesson_problem`, so a
compressed lesson meets the same bar as an extracted one: lesson-shaped, no chat-template control
sequence, no placeholder copied from the prompt, no distinctive number copied from its problem.
The id format `E<n>` is written here once; the reply schemas and the citation reader use it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import Enum

from ted.control_tokens import find_control
from ted.errors import LibraryError
from ted.prompts import copy_key

# Lesson length. A lesson the teacher proposes (extraction, merge, rewrite) must be 20-400
# characters and at most 40 words ("When <trigger>, <action>"): short enough to stay general, long
# enough to say something. The prompts state the same limits. A library file is allowed up to
# 2,000 characters per item, so hand-edited libraries still load.
LESSON_MIN_CHARS = 20
LESSON_MAX_CHARS = 400
LESSON_MAX_WORDS = 40
MAX_ITEM_CHARS = 2_000

# Ids are `E1`, `E2`, …: never reused, at most six digits.
ID_NUMBER = r"[1-9][0-9]{0,5}"
ID_PATTERN = f"^E{ID_NUMBER}$"  # for JSON schemas (constrained decoding)
ID_RE = re.compile(f"^E({ID_NUMBER})\\Z", re.ASCII)  # \Z, not $: "E1\n" is not an id

# Bidi overrides, zero-width characters and other invisible format characters: they can hide
# instructions from a reader of the card while the model still sees them.
INVISIBLE = re.compile("[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff]")
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")

_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:[.,]\d+)?(?![\w.])")
# Numbers a general lesson may use even when the problem has them: the common angles (a right
# angle, a straight line, a full turn, the special triangles), ten and a hundred (percent).
COMMON_NUMBERS = frozenset({"10", "30", "45", "60", "90", "100", "180", "360"})
# A reply-format slot such as `<final answer>`: two or more plain words in angle brackets, not
# touching other word characters (so `x<y and y>z` is not one).
_SLOT = re.compile(r"(?<![\w)])<[A-Za-z]+(?: [A-Za-z]+)+>(?![\w(])")


def format_id(number: int) -> str:
    return f"E{number}"


def id_number(value: str) -> int:
    match = ID_RE.match(value)
    if not match:
        raise LibraryError(f"invalid experience id {value!r}: ids look like E1, E2, …")
    return int(match.group(1))


def clean_text(text: str) -> str:
    """Normalise text proposed by a model: NFC, no invisible or control characters, one line."""
    text = unicodedata.normalize("NFC", text)
    text = INVISIBLE.sub("", text)
    text = CONTROL.sub(" ", text.replace("\t", " ").replace("\n", " "))
    return re.sub(r"\s+", " ", text).strip()


def lesson_shape_error(text: str) -> str | None:
    """Why `text` is not lesson-shaped (too short, too long), or None. Also what the Space asks to
    tell a library of real lessons from a placeholder one."""
    if not LESSON_MIN_CHARS <= len(text) <= LESSON_MAX_CHARS:
        return f"length {len(text)} outside {LESSON_MIN_CHARS}-{LESSON_MAX_CHARS} characters"
    if len(text.split()) > LESSON_MAX_WORDS:
        return f"{len(text.split())} words, over {LESSON_MAX_WORDS}"
    return None


class Rejection(str, Enum):
    """Why a teacher proposal was not applied; the value is the tally's key in the file."""

    UNKNOWN_ID = "update of unknown id"
    PLACEHOLDER = "placeholder text, not a lesson"
    LENGTH = "length"
    FORM = "not of the form When <trigger>, <action>"
    CONTROL = "chat-template control sequence"
    COPIES_NUMBERS = "copies numbers from the problem"
    DUPLICATE = "duplicate of an existing lesson"
    TOO_MANY = "too many operations"
    DUPLICATE_IN_BATCH = "duplicate within the batch"
    UNUSABLE = "unusable reply"  # a whole extraction reply that was not the JSON asked for: no proposal in it
    LIBRARY_FULL = "library at the file's item cap"


@dataclass(frozen=True)
class LessonProblem:
    """Why a proposed lesson text is refused: the tally's reason and the run log's detail."""

    reason: Rejection
    detail: str


def normal(text: str) -> str:
    """Lower-case words only: how two lessons are compared for sameness."""
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


# This many of a problem's numbers in one lesson restate the problem, single digits included: the demo's
# teacher wrote "When combining like terms, subtract 9 from 5 first, then subtract 9 from the result, …".
RESTATED_NUMBERS = 3


def problem_numbers(*texts: str) -> frozenset[str]:
    """Every number in a problem (and its answer), without its sign: what a lesson learnt from it may not repeat."""
    return frozenset(n.lstrip("-") for text in texts for n in _NUMBER.findall(text))


def copied_numbers(text: str, numbers: frozenset[str]) -> set[str]:
    """The problem's numbers that `text` repeats, when that makes it no general lesson: any distinctive
    one, or `RESTATED_NUMBERS` of any kind. Single digits and `COMMON_NUMBERS` alone are allowed:
    lessons legitimately say "check both cases", "divide by 2" or "angles on a line sum to 180 degrees"."""
    used = {n.lstrip("-") for n in _NUMBER.findall(text)} & numbers
    distinctive = {n for n in used if len(n.replace(".", "").replace(",", "")) >= 2} - COMMON_NUMBERS
    return distinctive or (used if len(used) >= RESTATED_NUMBERS else set())


# A run of this many words shared with a prompt is copied wording: the demo's 1.5B teacher wrote the
# prompt's cooking example back with "a recipe" swapped for "the problem" (docs/demo.md).
COPIED_RUN_WORDS = 8


def _copies_the_prompt(text: str, prompt_words: str) -> str | None:
    """How the text is no lesson of its own: an empty or slot-bearing text (`<a new lesson>`, `...`),
    the prompts' own wording copied whole, or a run of `COPIED_RUN_WORDS` words of it."""
    if re.fullmatch(r"<[^<>]*>|[.\s…]*", text) or _SLOT.search(text):
        return Rejection.PLACEHOLDER.value
    words, padded = copy_key(text).split(), f" {prompt_words} "
    if len(text) >= LESSON_MIN_CHARS and words and f" {' '.join(words)} " in padded:
        return Rejection.PLACEHOLDER.value
    for start in range(len(words) - COPIED_RUN_WORDS + 1):
        run = " ".join(words[start : start + COPIED_RUN_WORDS])
        if f" {run} " in padded:
            return f"copies a prompt's wording: {run!r}"
    return None


# The paper's lesson form, "When <trigger>, <action>": a trigger of at least one word, a comma, an action.
LESSON_FORM = re.compile(r"when(?:ever)?\s+[^,]*\w[^,]*,\s*\w", re.I)


def lesson_problem(text: str, prompt_words: str, numbers: frozenset[str] = frozenset()) -> LessonProblem | None:
    """Why the cleaned `text` is not an acceptable lesson, or None.

    `prompt_words` is the prompt set's `words` (wording copied back from any prompt is no lesson,
    even with the numbers the prompt was filled with); `numbers` those of the problem the lesson was
    learnt from (`problem_numbers`)."""
    if copied_prompt := _copies_the_prompt(text, prompt_words):
        return LessonProblem(Rejection.PLACEHOLDER, copied_prompt)
    if shape := lesson_shape_error(text):
        return LessonProblem(Rejection.LENGTH, shape)
    if found := find_control(text):
        return LessonProblem(Rejection.CONTROL, f"chat-template control sequence {found!r}")
    if not LESSON_FORM.match(text):
        return LessonProblem(Rejection.FORM, Rejection.FORM.value)
    if copied := copied_numbers(text, numbers):
        return LessonProblem(Rejection.COPIES_NUMBERS, f"copies numbers from the problem: {', '.join(sorted(copied))}")
    return None

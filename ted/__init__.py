"""ted: training-free experience distillation."""

from ted.errors import TedError
from ted.library import Experience, Library, diff

__all__ = ["Experience", "Library", "TedError", "diff"]
__version__ = "0.1.0"

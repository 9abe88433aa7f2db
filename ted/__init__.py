"""ted: training-free experience distillation."""

from __future__ import annotations

from importlib import import_module
from typing import Any

# Everything loads on first use, so `import ted` (every `ted` command starts with it) imports
# neither pydantic nor huggingface_hub until a name is asked for.
_LAZY = {
    "distill": "ted.distill",  # the package is callable: `ted.distill(data, student=..., teacher=..., out=...)`
    "TedError": "ted.errors",
    "Experience": "ted.library",
    "Library": "ted.library",
    "diff": "ted.library",
    "load_library": "ted.hub",
    "pull_library": "ted.hub",
    "push_library": "ted.hub",
    "list_versions": "ted.hub",
    "parse_ref": "ted.hub",
}

__all__ = list(_LAZY)
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = import_module(_LAZY[name])
        value = module if module.__name__ == f"{__name__}.{name}" else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ted' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

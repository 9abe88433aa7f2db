"""The paper's stages, one module each, and the pipeline that runs them.

Names load on first use, so `ted.distill.config` (which the CLI reads for its flags) is imported
without the pipeline and its stages.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "Distiller": "ted.distill.pipeline",
    "RunConfig": "ted.distill.config",
    "Reporter": "ted.distill.progress",
    "Status": "ted.distill.progress",
    "checkpoint_path": "ted.distill.checkpoint",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ted.distill' has no attribute {name!r}")

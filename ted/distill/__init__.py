"""The paper's stages, one module each, the loop that runs them (`pipeline.py`), and the front
door around the loop (`api.py`).

`ted.distill(...)` is that door: this package is callable, so the function and the stages share
the name the paper gives them; `from ted.distill.api import distill` is the same function for
type checkers. Nothing else is re-exported, so `ted.distill.config` (which the CLI reads) loads
without the pipeline and its stages: import from the modules themselves.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any


class _Door(ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from ted.distill.api import distill  # the engine loads on the first call, not on `import ted.distill.config`

        return distill(*args, **kwargs)


sys.modules[__name__].__class__ = _Door

"""The paper's stages, one module each, and the loop that runs them (`pipeline.py`).

Nothing is re-exported here, so `ted.distill.config` (which the CLI reads) loads without the
pipeline and its stages: import from the modules themselves.
"""

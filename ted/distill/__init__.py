"""The paper's stages, one module each, and the pipeline that runs them."""

from ted.distill.pipeline import Distiller, Reporter, RunConfig, Status, checkpoint_path

__all__ = ["Distiller", "Reporter", "RunConfig", "Status", "checkpoint_path"]

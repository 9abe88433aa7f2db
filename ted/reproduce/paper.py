"""The paper's reported accuracies, quoted for comparison: never measured here, never mixed with ours.

Source: *TED: Training-Free Experience Distillation for Multimodal Reasoning* (arXiv, March 2026),
as summarised in the project's design notes. Students: Qwen3-VL-8B (MathVision, VisualPuzzles),
Qwen3-8B (AIME 2025). The compression ablation is reported on MathVision only.
"""

from __future__ import annotations

SOURCE = "TED paper (arXiv, March 2026), quoted"

STUDENTS = {"mathvision": "Qwen3-VL-8B", "visualpuzzles": "Qwen3-VL-8B", "aime": "Qwen3-8B"}

# benchmark → row (baseline or compression strategy) → accuracy
ACCURACY: dict[str, dict[str, float]] = {
    "mathvision": {"baseline": 0.627, "teacher": 0.702, "none": 0.594, "truncate": 0.648, "random": 0.632},
    "visualpuzzles": {"baseline": 0.517, "teacher": 0.561},
    "aime": {"baseline": 0.673, "teacher": 0.733},
}

COST_NOTE = "about $12.60 and 8 h for a TED library, versus ~$288 and 3 days for naive knowledge distillation"


def accuracy(benchmark: str, row: str) -> float | None:
    """The paper's number for a row (`baseline` or a strategy name of the primary teacher); None if it reports none."""
    return ACCURACY.get(benchmark, {}).get(row)

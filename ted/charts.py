"""Every chart ted draws, with one matplotlib set-up: PNG bytes, no display needed.

The library card's learning curve and usage bars (`ted push`), and `ted eval`'s comparison bars.
"""

from __future__ import annotations

import io
import math
from typing import Any

from ted.library import Library


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def curve_row(point: dict[str, Any]) -> dict[str, Any]:
    return {key: _number(point.get(key)) for key in ("epoch", "step", "items", "tokens", "train_accuracy", "val_accuracy")}


def learning_curve(library: Library) -> bytes | None:
    """Accuracy per epoch (train rollouts, validation, the no-library baseline) and library size."""
    points = [curve_row(p) for p in library.metrics.curve]
    series = {key: [(i + 1 if p["epoch"] is None else p["epoch"], p[key]) for i, p in enumerate(points) if p[key] is not None]
              for key in ("train_accuracy", "val_accuracy", "items")}
    if not series["train_accuracy"] and not series["val_accuracy"]:
        return None
    plt, MaxNLocator = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    for key, label, style in (("val_accuracy", "validation", "o-"), ("train_accuracy", "train rollouts", "s--")):
        if series[key]:
            ax.plot(*zip(*series[key]), style, label=label)
    baseline = _number(library.metrics.baseline)
    if baseline is not None:
        ax.axhline(baseline, color="gray", linestyle=":", label="without library")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    epochs = sorted({x for key in series for x, _ in series[key]})
    ax.set_xlim(epochs[0] - 0.5, epochs[-1] + 0.5)
    if len(epochs) <= 12:
        ax.set_xticks(epochs)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    handles, labels = ax.get_legend_handles_labels()
    if series["items"]:
        twin = ax.twinx()
        twin.plot(*zip(*series["items"]), color="tab:green", alpha=0.5, linestyle="-.", label="items (right axis)")
        twin.set_ylabel("items in library")
        twin.set_ylim(0, max(y for _, y in series["items"]) + 1)
        twin.yaxis.set_major_locator(MaxNLocator(integer=True))
        more_handles, more_labels = twin.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    ax.legend(handles, labels, loc="lower right", fontsize=8)
    ax.set_title("Learning curve")
    return _png(plt, fig)


def usage(library: Library) -> bytes | None:
    """How often student rollouts cited each experience (the paper's usage statistic)."""
    if not library.items:
        return None
    plt, MaxNLocator = _pyplot()
    ids = [item.id for item in library.items]
    fig, ax = plt.subplots(figsize=(6, max(2.0, 0.28 * len(ids) + 1)), dpi=100)
    ax.barh(ids, [item.usage for item in library.items], color="tab:blue")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.invert_yaxis()
    ax.set_xlabel("citations by student rollouts (usage)")
    ax.set_title("Experience usage")
    return _png(plt, fig)


def _pyplot() -> tuple[Any, Any]:
    """pyplot on the Agg backend (no display), imported on first use: matplotlib is slow to import."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    return plt, MaxNLocator


def _png(plt: Any, fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def comparison(title: str, labels: list[str], baseline: list[float], with_library: list[float]) -> bytes:
    """Grouped bars, baseline vs with the library, one group per label (overall, then categories)."""
    plt, _ = _pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(labels) + 2), 3.6), dpi=120)
    xs = range(len(labels))
    width = 0.38
    ax.bar([x - width / 2 for x in xs], baseline, width, label="baseline", color="#9aa5b1")
    ax.bar([x + width / 2 for x in xs], with_library, width, label="with library", color="#2f6fde")
    ax.set_xticks(list(xs), labels, rotation=20 if len(labels) > 4 else 0, ha="right" if len(labels) > 4 else "center")
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.legend(frameon=False)
    return _png(plt, fig)

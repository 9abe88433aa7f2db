"""Every chart ted draws, with one matplotlib set-up: PNG bytes, no display needed.

The library card's learning curve and usage bars (`ted push`), `ted eval`'s comparison bars, and
`ted reproduce`'s learning curves of several libraries and accuracy per arm.
"""

from __future__ import annotations

import io
import math
from typing import Any

from ted.library import CurvePoint, Library


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def curve_row(point: CurvePoint) -> dict[str, float | None]:
    """A point's figures, each a finite number or None (a library from elsewhere may hold NaN or worse)."""
    return {key: _number(getattr(point, key)) for key in ("epoch", "step", "items", "tokens", "train_accuracy", "val_accuracy")}


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


def learning_curves(curves: dict[str, list[dict[str, Any]]]) -> bytes | None:
    """Train-rollout (and validation, if scored) accuracy per epoch, one line per library (`ted reproduce`)."""
    plt, MaxNLocator = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=100)
    drawn = False
    for name, points in curves.items():
        rows = [curve_row(CurvePoint.model_validate(p)) for p in points]
        for key, style in (("train_accuracy", "o-"), ("val_accuracy", "s--")):
            xy = [(r["epoch"], r[key]) for r in rows if r["epoch"] is not None and r[key] is not None]
            if xy:
                ax.plot(*zip(*xy), style, label=f"{name} ({'train rollouts' if key == 'train_accuracy' else 'validation'})")
                drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("Learning curves per library")
    return _png(plt, fig)


def arm_accuracy(title: str, labels: list[str], acc: list[float], ci95: list[list[float]], quoted: list[float | None]) -> bytes:
    """Measured accuracy per arm with 95% CI bars; the paper's quoted numbers as separate, labelled markers."""
    plt, _ = _pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, 1.0 * len(labels) + 2), 3.8), dpi=110)
    xs = list(range(len(labels)))
    low = [a - c[0] for a, c in zip(acc, ci95)]
    high = [c[1] - a for a, c in zip(acc, ci95)]
    colours = ["#9aa5b1"] + ["#2f6fde"] * (len(labels) - 1)
    ax.bar(xs, acc, 0.6, yerr=[low, high], capsize=4, color=colours, label="measured by this run")
    points = [(x, q) for x, q in zip(xs, quoted) if q is not None]
    if points:
        ax.scatter(*zip(*points), marker="x", color="#d1495b", zorder=3, label="paper, quoted (other models; not measured here)")
    ax.set_xticks(xs, labels, rotation=20 if len(labels) > 4 else 0, ha="right" if len(labels) > 4 else "center")
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.legend(frameon=False, fontsize=8)
    return _png(plt, fig)

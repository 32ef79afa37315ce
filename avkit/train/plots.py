"""Training curves from a run's ``metrics.jsonl``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from avkit.plotting import plt, save_figure


def plot_curves(rows: Sequence[dict[str, Any]], path: str | Path) -> None:
    """Training loss against step, and each validation metric named ``score`` against step."""
    train = [r for r in rows if r.get("split") == "train"]
    val = [r for r in rows if r.get("split") == "val"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    if train:
        axes[0].plot([r["step"] for r in train], [r["loss"] for r in train], lw=1)
    axes[0].set(xlabel="step", ylabel="training loss", title="loss")
    axes[0].grid(alpha=0.3)
    if val:
        axes[1].plot([r["step"] for r in val], [r["score"] for r in val], marker="o")
    axes[1].set(xlabel="step", ylabel="validation score", title="validation")
    axes[1].grid(alpha=0.3)
    save_figure(fig, path)

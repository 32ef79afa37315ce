"""Training curves from a run's ``metrics.jsonl``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from avkit.plotting import plt, save_figure


def plot_curves(rows: Sequence[dict[str, Any]], path: str | Path, metric: str) -> None:
    """Training loss against step, and the evaluation ``metric`` (the one that picks ``best``) against step."""
    train = [r for r in rows if r.get("kind") == "train"]
    evals = [r for r in rows if r.get("kind") == "eval" and metric in r]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    if train:
        axes[0].plot([r["step"] for r in train], [r["loss"] for r in train], lw=1)
    axes[0].set(xlabel="step", ylabel="training loss (weighted sum)", title="loss")
    axes[0].grid(alpha=0.3)
    if evals:
        axes[1].plot([r["step"] for r in evals], [r[metric] for r in evals], marker="o")
    split = evals[-1]["split"] if evals else "validation"
    axes[1].set(xlabel="step", ylabel=metric, title=f"evaluation on the {split} split")
    axes[1].grid(alpha=0.3)
    save_figure(fig, path)

"""A picture of a query and its results, drawn with each modality's ``render``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from avkit.errors import AvkitError
from avkit.modalities import get_modality
from avkit.plotting import plt, save_figure
from avkit.retrieval.index import Hit

log = logging.getLogger(__name__)


def _draw(ax: plt.Axes, modality: str, path: str | Path | None) -> None:
    mod = get_modality(modality)
    ax.set_xticks([])
    ax.set_yticks([])
    if path is None or mod.render is None or not Path(path).is_file():
        ax.text(0.5, 0.5, Path(path).name if path else "?", ha="center", va="center", fontsize=7, wrap=True)
        return
    try:
        arr = mod.render(Path(path))
    except Exception as exc:  # noqa: BLE001 - any bad result (a plugin's renderer too) costs its tile, not the picture
        log.warning("gallery: cannot draw %s: %s", path, exc if isinstance(exc, AvkitError) else f"{type(exc).__name__}: {exc}")
        ax.text(0.5, 0.5, f"unreadable\n{Path(path).name}", ha="center", va="center", fontsize=7, color="red")
        return
    if arr.ndim == 2:
        ax.imshow(arr, origin="lower", aspect="auto", cmap="magma")
    else:
        ax.imshow(np.clip(arr, 0, 1))


def plot_gallery(
    query_modality: str, query_path: str | Path, result_modality: str, hits: Sequence[Hit], out: str | Path,
    query_label: str | None = None,
) -> None:
    """Save a one-row figure: the query, then each hit with its rank, score, id and label.

    A hit whose label equals ``query_label`` is titled in green, others in red.
    """
    n = len(hits) + 1
    fig, axes = plt.subplots(1, n, figsize=(1.9 * n, 2.3), squeeze=False)
    _draw(axes[0, 0], query_modality, query_path)
    axes[0, 0].set_title(f"query ({query_modality})\n{Path(query_path).name}", fontsize=8)
    for rank, (ax, hit) in enumerate(zip(axes[0, 1:], hits), start=1):
        _draw(ax, result_modality, hit.metadata.get("path"))
        label = hit.metadata.get("label")
        colour = "black" if query_label is None or label is None else ("green" if label == query_label else "red")
        ax.set_title(f"#{rank} {hit.score:.3f}\n{hit.key} [{label}]", fontsize=7, color=colour)
    save_figure(fig, out)

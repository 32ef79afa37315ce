"""Heat maps drawn over their images: one overlay, or a grid of the best and worst scenes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch import Tensor

from avkit.data.manifest import read_manifest
from avkit.localization.protocol import LocalizationReport, heat_for_files, localization_head
from avkit.models import AVModel
from avkit.plotting import save_figure


def draw_overlay(ax, image: Tensor, heat: Tensor, boxes: Tensor | None = None, title: str = "") -> None:  # noqa: ANN001
    """Draw ``image (3, H, W)`` in [0, 1] with ``heat (H, W)`` in [0, 1] on top, and the sounding
    object's ``boxes (N, 4)`` in green, on a matplotlib axis."""
    from matplotlib.patches import Rectangle

    ax.imshow(image.permute(1, 2, 0).numpy())
    ax.imshow(heat.numpy(), cmap="jet", alpha=0.45, vmin=0, vmax=1)
    if boxes is not None:
        for x0, y0, x1, y1 in np.asarray(boxes, dtype=float).reshape(-1, 4):
            ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="lime", linewidth=1.5))
    ax.set_title(title, fontsize=8)
    ax.axis("off")


def save_overlay(path: str | Path, image: Tensor, heat: Tensor, boxes: Tensor | None = None, title: str = "") -> Path:
    """One overlay as a PNG (written atomically)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4))
    draw_overlay(ax, image, heat, boxes, title)
    save_figure(fig, path)
    return Path(path)


def save_cases(path: str | Path, rows: Sequence[tuple[str, Sequence[tuple[Tensor, Tensor, Tensor, str]]]]) -> Path:
    """A grid: one row per ``(name, cases)``, each case ``(image, heat, boxes, title)``."""
    import matplotlib.pyplot as plt

    cols = max(len(cases) for _, cases in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(2.2 * cols, 2.4 * len(rows)), squeeze=False)
    for r, (name, cases) in enumerate(rows):
        for c in range(cols):
            ax = axes[r][c]
            if c < len(cases):
                draw_overlay(ax, *cases[c])
            else:
                ax.axis("off")
        axes[r][0].text(-0.08, 0.5, name, transform=axes[r][0].transAxes, rotation=90, va="center", ha="right", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
    return Path(path)


def save_best_and_worst(path: str | Path, report: LocalizationReport, model: AVModel, manifest: str | Path,
                        k: int = 6, head: str | None = None) -> Path:  # fmt: skip
    """The ``k`` scenes with the highest and the lowest adaptive cIoU, drawn with their own sound."""
    man = read_manifest(manifest)
    by_id = {rec.id: rec for rec in man}
    order = np.argsort(-report.cious, kind="stable")
    _, loc = localization_head(model, head)
    image_modality, audio_modality = (model.towers[t].modality for t in (loc.image_tower, loc.audio_tower))
    rows = []
    for name, picks in (("best", order[:k]), ("worst", order[::-1][:k])):
        cases = []
        for i in picks:
            rec = by_id[report.ids[int(i)]]
            fh = heat_for_files(model, man.resolve(rec, image_modality), man.resolve(rec, audio_modality),
                                [list(b) for b in rec.boxes or ()], head)  # fmt: skip
            cases.append((fh.image, fh.heat, fh.boxes, f"{rec.id}\ncIoU {report.cious[int(i)]:.2f}"))
        rows.append((f"{name} {len(cases)}", cases))
    return save_cases(path, rows)

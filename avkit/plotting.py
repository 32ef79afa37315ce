"""Shared plotting plumbing: a headless matplotlib, and atomic figure saves."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from avkit.errors import ConfigError  # noqa: E402
from avkit.fileio import atomic_open  # noqa: E402

#: Suffixes a figure can be saved as.
PICTURE_SUFFIXES = (".png", ".svg", ".pdf", ".jpg", ".jpeg")


def check_picture_path(path: str | Path, what: str = "--out") -> None:
    """ConfigError unless ``path`` names a picture matplotlib writes (by its suffix)."""
    suffix = Path(path).suffix.lower()
    if suffix not in PICTURE_SUFFIXES:
        raise ConfigError(f"{what} {path}: a picture file (.png, .svg, .pdf, .jpg), not {suffix or 'no suffix'!r}")


def save_figure(fig: plt.Figure, path: str | Path, dpi: int = 110) -> None:
    """Save a matplotlib figure atomically and close it."""
    path = Path(path)
    with atomic_open(path) as handle:
        fig.savefig(handle, format=path.suffix.lstrip(".") or "png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)

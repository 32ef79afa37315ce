"""Scoring generated items against real ones: the Fréchet distance between feature distributions.

    fd = frechet_distance(judge_features(generated), judge_features(real))

FID (Heusel et al. 2017) is this distance in an Inception network's pool features;
avkit takes the features of a judge trained here on real data (no pretrained weights).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
from torch import Tensor


def frechet_distance(a: Tensor, b: Tensor) -> float:
    """``‖μ_a − μ_b‖² + tr(Σ_a + Σ_b − 2 (Σ_a Σ_b)^½)`` of two feature sets ``(N, D)``, ``(M, D)``.

    Raises:
        ValueError: fewer than 2 rows in either set, or different feature sizes.
    """
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"frechet_distance: two (N >= 2, D) feature sets of one D, got {tuple(a.shape)} and {tuple(b.shape)}")
    x, y = a.double().cpu().numpy(), b.double().cpu().numpy()
    mu_x, mu_y = x.mean(0), y.mean(0)
    cov_x, cov_y = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    root = scipy.linalg.sqrtm(cov_x @ cov_y)
    if not np.isfinite(root).all():  # a singular product: nudge both covariances, as pytorch-fid does
        eps = np.eye(len(cov_x)) * 1e-6
        root = scipy.linalg.sqrtm((cov_x + eps) @ (cov_y + eps))
    return float(((mu_x - mu_y) ** 2).sum() + np.trace(cov_x + cov_y - 2 * np.real(root)))


def accuracy(logits: Tensor, labels: Tensor) -> float:
    """Top-1 accuracy of ``logits (N, C)`` against ``labels (N,)``."""
    return float((logits.argmax(-1) == labels).float().mean()) if len(labels) else float("nan")


__all__ = ["accuracy", "frechet_distance"]

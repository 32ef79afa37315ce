"""Linear probes: how linearly separable a frozen encoder's features are (SoundNet's evaluation).

SoundNet trains a linear SVM on pool5; here a multinomial logistic regression
(scikit-learn) on standardised features, trained on one split and scored on
another (for AV-digits: seen voices -> unseen voices).
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import Tensor

from avkit.train.tasks import Task


@torch.no_grad()
def intermediate_features(task: Task, modality: str, x: Tensor, name: str | None = None, batch_size: int = 256) -> np.ndarray:
    """Per-item feature vectors ``(N, F)`` from a frozen task's encoder.

    ``name`` picks an intermediate (e.g. SoundNet's ``pool5``, ``(B, C, t)``),
    summarised by its mean and max over time/space (``F = 2C``); None takes the
    pooled output.
    """
    task.eval()
    device = next(task.parameters()).device
    out = []
    for i in range(0, len(x), batch_size):
        feats = task.features(modality, x[i : i + batch_size].to(device))
        if name is None:
            out.append(feats.pooled.cpu())
            continue
        if name not in feats.intermediates:
            raise KeyError(f"encoder has no intermediate {name!r}; it has {sorted(feats.intermediates)}")
        t = feats.intermediates[name].flatten(2)
        out.append(torch.cat([t.mean(-1), t.amax(-1)], dim=1).cpu())
    return torch.cat(out).numpy()


def linear_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, seed: int = 0) -> float:
    """Test accuracy of a logistic-regression probe trained on ``(train_x, train_y)``."""
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=1.0, random_state=seed))
    probe.fit(train_x, train_y)
    return float((probe.predict(test_x) == test_y).mean())

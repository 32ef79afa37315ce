"""Linear probes: how linearly separable frozen features are (SoundNet's evaluation).

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
from threadpoolctl import threadpool_limits
from torch import Tensor


def summarise_map(fmap: Tensor) -> Tensor:
    """A feature map ``(B, C, *spatial)`` as one vector per item: its mean and max over space/time ``(B, 2C)``."""
    flat = fmap.flatten(2)
    return torch.cat([flat.mean(-1), flat.amax(-1)], dim=1)


def linear_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, seed: int = 0) -> float:
    """Test accuracy of a logistic-regression probe trained on ``(train_x, train_y)``.

    It runs on one BLAS thread: beside torch's OpenMP threads, OpenBLAS's own threads fight them
    for the cores (a 251-iteration fit took 3.1 s on 2 threads, 0.27 s on one, on 2 cores); one
    thread also makes the result the same on any machine.
    """
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=1.0, random_state=seed))
    with threadpool_limits(1):
        probe.fit(train_x, train_y)
        return float((probe.predict(test_x) == test_y).mean())

"""Regressing one embedding onto another, as Speech2Face does (Oh et al. 2019)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def normalized_l1(predicted: Tensor, target: Tensor) -> Tensor:
    """``‖p/|p| − t/|t|‖₁`` of each row, averaged over the batch: ``(B, D), (B, D)`` -> scalar.

    The scale of either vector does not matter, only its direction.
    """
    return (F.normalize(predicted, dim=-1) - F.normalize(target, dim=-1)).abs().sum(-1).mean()

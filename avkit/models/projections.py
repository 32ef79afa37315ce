"""Projections into the shared embedding space (CLIP's linear, SimCLR's MLP), L2-normalised.

Heads that embed (``contrastive``) own one per tower: ``PROJECTIONS.create("mlp", in_dim=256, embed_dim=128)``.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from avkit.registry import Registry

#: Projections, by name.
PROJECTIONS: Registry[nn.Module] = Registry("projection")


class _Normalized(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in_dim) -> (B, embed_dim)``, each row of unit L2 norm."""
        return F.normalize(self.net(x), dim=-1)


@PROJECTIONS.register("linear")
class LinearProjection(_Normalized):
    """One linear map into the shared space, then L2 normalisation (CLIP's projection)."""

    def __init__(self, in_dim: int, embed_dim: int = 128) -> None:
        super().__init__(nn.Linear(in_dim, embed_dim))


@PROJECTIONS.register("mlp")
class MLPProjection(_Normalized):
    """Linear -> BatchNorm -> ReLU -> Linear, then L2 normalisation (SimCLR's projection)."""

    def __init__(self, in_dim: int, embed_dim: int = 128, hidden_dim: int = 256) -> None:
        super().__init__(nn.Sequential(
            nn.Linear(in_dim, hidden_dim, bias=False), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, embed_dim),
        ))  # fmt: skip

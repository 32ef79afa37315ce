"""Heads on top of encoders: projections into the shared space, and classifiers."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from avkit.registry import Registry

#: Projection heads, by name: ``HEADS.create("mlp", in_dim=256, embed_dim=128)``.
HEADS: Registry[nn.Module] = Registry("head")


class _Normalized(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in_dim) -> (B, embed_dim)``, each row of unit L2 norm."""
        return F.normalize(self.net(x), dim=-1)


@HEADS.register("linear")
class LinearProjection(_Normalized):
    """One linear map into the shared space, then L2 normalisation (CLIP's projection)."""

    def __init__(self, in_dim: int, embed_dim: int = 128) -> None:
        super().__init__(nn.Linear(in_dim, embed_dim))


@HEADS.register("mlp")
class MLPProjection(_Normalized):
    """Linear -> BatchNorm -> ReLU -> Linear, then L2 normalisation (SimCLR's projection)."""

    def __init__(self, in_dim: int, embed_dim: int = 128, hidden_dim: int = 256) -> None:
        super().__init__(nn.Sequential(
            nn.Linear(in_dim, hidden_dim, bias=False), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, embed_dim),
        ))  # fmt: skip

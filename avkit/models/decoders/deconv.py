"""``deconv``: an upsampling CNN from an embedding to pixels (Speech2Face's face decoder, made small).

    cond (B, D) ─▶ linear ─▶ (B, C·2^k, 4, 4) ─▶ k × [upsample x2, conv3x3-BN-ReLU x2] ─▶ conv3x3 ─▶ (B, 3, size, size)

Trained by pixel L1 and a feature-matching term: the frozen image tower's
embedding of the decoded image should be the embedding it was decoded from.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avkit.errors import ConfigError
from avkit.losses import normalized_l1
from avkit.models.decoders.base import IMAGE_DECODERS, ImageDecoder


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"),
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
    )  # fmt: skip


@IMAGE_DECODERS.register("deconv")
class DeconvDecoder(ImageDecoder):
    """Loss terms ``l1`` (pixels) and ``feature`` (``‖f(x̂)/|f(x̂)| − f(x)/|f(x)|‖₁`` through the frozen tower).

    Args:
        cond_dim: the condition's size. size: the output side (4 · 2^k). channels: image channels.
        width: channels at the output resolution; each coarser level doubles it.
    """

    loss_terms = ("l1", "feature")

    def __init__(self, cond_dim: int, size: int, channels: int = 3, width: int = 32) -> None:
        super().__init__()
        levels = math.log2(size / 4) if size >= 4 else -1
        if levels < 1 or not levels.is_integer():
            raise ConfigError(f"the deconv decoder renders sides 4 · 2^k (8, 16, 32, 64, ...), not {size}")
        widths = [width * 2 ** i for i in reversed(range(int(levels) + 1))]  # coarse -> fine
        self.start = widths[0]
        self.project = nn.Sequential(nn.Linear(cond_dim, widths[0] * 16), nn.ReLU(inplace=True))
        self.blocks = nn.Sequential(*(_block(a, b) for a, b in zip(widths, widths[1:], strict=False)))
        self.out = nn.Conv2d(widths[-1], channels, 3, padding=1)

    def forward(self, cond: Tensor) -> Tensor:
        """``(B, D)`` -> ``(B, C, size, size)``."""
        x = self.project(cond).view(len(cond), self.start, 4, 4)
        return self.out(self.blocks(x))

    def losses(self, cond: Tensor, images: Tensor, features: Callable[[Tensor], Tensor], embedding: Tensor) -> dict[str, Tensor]:
        decoded = self(cond)
        return {"l1": F.l1_loss(decoded, images), "feature": normalized_l1(features(decoded), embedding.detach())}

    def generate(self, cond: Tensor, generator: torch.Generator | None = None, **options: Any) -> Tensor:
        if options:
            raise ConfigError(f"the deconv decoder is deterministic and takes no sampling options; got {sorted(options)}")
        return self(cond)

    def validation_error(self, cond: Tensor, images: Tensor) -> Tensor:
        return (self(cond) - images).abs().flatten(1).mean(1)

"""Image encoder: a stacked hourglass (Newell et al. 2016) that keeps a stride-4 map.

    image (B, 3, H, W) ─▶ stem (stride 4) ─▶ hourglass 1 ─▶ features 1 ─┬─▶ (supervised: "stack1")
                                         ┌──────────────── + remap ◀───┘
                                         └▶ hourglass 2 ─▶ features 2 ─▶ feature_map (B, C, H/4, W/4)

Each hourglass pools down ``depth`` times and comes back up, adding at every
scale a skip branch kept at that scale, so a cell of the output sees the whole
image and still sits at stride 4. Every stack's features are a map that a head
can supervise (``feature_info.deep_supervision``); later stacks refine earlier ones.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from avkit.errors import ConfigError
from avkit.models.encoders.base import (
    ENCODERS,
    EncoderOutput,
    FeatureInfo,
    FeatureMap,
    conv_bn_relu,
)
from avkit.models.encoders.image import BasicBlock


class Hourglass(nn.Module):
    """One encoder-decoder: ``(B, C, h, w) -> (B, C, h, w)``, ``depth`` poolings down and back up."""

    def __init__(self, channels: int, depth: int) -> None:
        super().__init__()
        self.skip = BasicBlock(channels, channels)
        self.down = BasicBlock(channels, channels)
        self.inner = Hourglass(channels, depth - 1) if depth > 1 else BasicBlock(channels, channels)
        self.up = BasicBlock(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        low = self.up(self.inner(self.down(F.max_pool2d(x, 2, ceil_mode=True))))
        return self.skip(x) + F.interpolate(low, size=x.shape[-2:], mode="nearest")


@ENCODERS.register("image_hourglass")
class StackedHourglass(nn.Module):
    """``stacks`` hourglasses of ``depth`` on a stride-4 stem, with intermediate supervision.

    Shapes:
        input ``(B, 3, H, W)`` -> ``feature_map (B, width, ⌈H/4⌉, ⌈W/4⌉)`` (the last stack),
        ``pooled (B, width)`` (its global average), ``intermediates["stackK"]`` for the
        stacks before the last (same shape), listed in ``feature_info.deep_supervision``.
    """

    def __init__(self, width: int = 32, stacks: int = 2, depth: int = 3, in_channels: int = 3) -> None:
        super().__init__()
        if stacks < 1 or depth < 1 or width < 2:
            raise ConfigError(f"image_hourglass: stacks and depth >= 1, width >= 2; got {stacks}, {depth}, {width}")
        self.stem = nn.Sequential(
            conv_bn_relu(in_channels, width // 2, 3, 2), BasicBlock(width // 2, width),
            nn.MaxPool2d(2, ceil_mode=True), BasicBlock(width, width),
        )  # fmt: skip
        self.hourglasses = nn.ModuleList(Hourglass(width, depth) for _ in range(stacks))
        self.features = nn.ModuleList(conv_bn_relu(width, width, 1) for _ in range(stacks))
        self.remaps = nn.ModuleList(nn.Conv2d(width, width, 1) for _ in range(stacks - 1))
        intermediates = tuple(f"stack{k + 1}" for k in range(stacks - 1))
        # the stem's stride-2 convolution centres output i on pixel 2i, its 2x2 max-pool cell i on pixels 4i and
        # 4i + 2: centre 1.5 (the hourglasses keep that grid; their nearest upsampling alternates +-2 px by cell)
        self.feature_info = FeatureInfo(
            "image", width, tuple(FeatureMap(name, width, (4, 4), centre=(1.5, 1.5)) for name in ("map", *intermediates)),
            deep_supervision=intermediates,
        )  # fmt: skip

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> EncoderOutput:
        x = self.stem(x)
        intermediates = {}
        for k, (hourglass, features) in enumerate(zip(self.hourglasses, self.features)):
            f = features(hourglass(x))
            if k < len(self.remaps):
                intermediates[f"stack{k + 1}"] = f
                x = x + self.remaps[k](f)
        return EncoderOutput(pooled=f.mean(dim=(-2, -1)), feature_map=f, intermediates=intermediates)

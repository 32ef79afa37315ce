"""Image encoder: a small ResNet that returns both its spatial map and a pooled vector."""

from __future__ import annotations

from torch import Tensor, nn

from avkit.errors import ConfigError
from avkit.models.encoders.base import (
    ENCODERS,
    EncoderOutput,
    FeatureInfo,
    FeatureMap,
    conv_bn_relu,
)


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convs with an identity (or 1x1 projected) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv_bn_relu(cin, cout, 3, stride)
        self.conv2 = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.shortcut = (
            nn.Identity() if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )  # fmt: skip
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


@ENCODERS.register("image_resnet")
class ImageResNet(nn.Module):
    """Small ResNet: a 3x3 stem, then stages of basic blocks, the first at the stem's resolution.

    Shapes:
        input ``(B, 3, H, W)`` -> ``feature_map (B, C, H / s, W / s)`` with stride
        ``s = stem_stride * 2**(stages-1)`` (for localization) and ``pooled (B, C)``
        (global average), ``C = width * 2**(stages-1)``.

    Args:
        stem_stride: 1 keeps the first stage at full resolution (32-px digits); 2 halves it
            first, for large scenes (128 px, 4 stages: a 16x16 map at a quarter of the cost).
    """

    def __init__(self, width: int = 32, stages: int = 3, blocks_per_stage: int = 1, in_channels: int = 3,
                 stem_stride: int = 1) -> None:  # fmt: skip
        super().__init__()
        if stem_stride not in (1, 2) or stages < 1 or blocks_per_stage < 1:
            raise ConfigError(f"image_resnet: stem_stride must be 1 or 2, stages and blocks_per_stage >= 1; "
                              f"got {stem_stride}, {stages}, {blocks_per_stage}")  # fmt: skip
        self.stem = conv_bn_relu(in_channels, width, 3, stem_stride)
        layers, cin = [], width
        for s in range(stages):
            cout = width * 2**s
            for b in range(blocks_per_stage):
                layers.append(BasicBlock(cin, cout, stride=2 if s > 0 and b == 0 else 1))
                cin = cout
        self.stages = nn.Sequential(*layers)
        stride = stem_stride * 2 ** (stages - 1)
        # every stride-2 layer (3x3, padding 1; the shortcut's 1x1) centres output i on input 2i: cell i on pixel
        # stride * i, whose centre is at 0.5
        self.feature_info = FeatureInfo("image", cin, (FeatureMap("map", cin, (stride, stride), centre=(0.5, 0.5)),))

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> EncoderOutput:
        fmap = self.stages(self.stem(x))
        return EncoderOutput(pooled=fmap.mean(dim=(-2, -1)), feature_map=fmap)

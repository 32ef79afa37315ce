"""A third modality in one file: depth maps stored as ``.npy`` arrays.

Import this module (or paste it into your project) and ``depth`` works
everywhere a modality name is accepted: manifests (a ``"depth"`` path field),
model configs (``[model.towers.depth]``), ``avkit embed --modality depth``,
``avkit query --depth FILE``, ``avkit data check --modalities audio,depth``.
No avkit file is edited.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from avkit.errors import MediaError
from avkit.modalities import Modality, register_modality
from avkit.models.encoders import ENCODERS, EncoderOutput, FeatureInfo, FeatureMap, conv_bn_relu
from avkit.vision.transforms import resize

SIZE = 32


@ENCODERS.register("depth_cnn")
class DepthCNN(nn.Module):
    """Two conv blocks over a depth map: ``(B, 1, 32, 32)`` -> ``pooled (B, 2 * width)``."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(conv_bn_relu(1, width), nn.MaxPool2d(2), conv_bn_relu(width, 2 * width), nn.MaxPool2d(2))
        # what it takes and gives: heads size their layers from pooled_dim, localization uses the map's stride (and
        # its centre: max-pooling tiles the input, the default; strided 3x3 convolutions would declare centre=(0.5, 0.5))
        self.feature_info = FeatureInfo("depth", 2 * width, (FeatureMap("map", 2 * width, (4, 4)),))

    def forward(self, x: Tensor) -> EncoderOutput:
        fmap = self.net(x)
        return EncoderOutput(pooled=fmap.mean(dim=(-2, -1)), feature_map=fmap)


def load_depth(path: Path) -> np.ndarray:
    """A 2-D float array of depths in metres; anything else is refused, naming the file."""
    try:
        depth = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise MediaError(path, f"cannot be read as a .npy depth map ({exc})") from None
    if depth.ndim != 2 or not np.isfinite(depth).all():
        raise MediaError(path, f"expected a finite 2-D depth map, got shape {depth.shape}")
    return depth.astype(np.float32)


def preprocess_depth(depth: np.ndarray) -> Tensor:
    """``(H, W)`` metres -> ``(1, 32, 32)``, scaled to [0, 1] per map."""
    x = torch.from_numpy(depth)[None]
    x = (x - x.min()) / (x.max() - x.min()).clamp(min=1e-6)
    return resize(x, (SIZE, SIZE)) if x.shape[-2:] != (SIZE, SIZE) else x


DEPTH = register_modality(
    Modality(
        name="depth",
        load=load_depth,
        preprocess=preprocess_depth,
        encoders=("depth_cnn",),
        metadata={"units": "metres", "size": SIZE, "shape": "(1, 32, 32)"},
        describe="a .npy file holding a 2-D float array",
        render=load_depth,
    )
)

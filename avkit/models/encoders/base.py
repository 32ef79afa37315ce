"""What every encoder returns, and the encoder registry."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor, nn

from avkit.registry import Registry

#: All encoders, by name: ``ENCODERS.create("logmel_cnn", width=32)``.
ENCODERS: Registry[nn.Module] = Registry("encoder")


@dataclass
class EncoderOutput:
    """An encoder's outputs.

    Attributes:
        pooled: one vector per item, ``(B, D)`` with ``D = encoder.out_dim``.
        feature_map: spatial (or time-frequency) features before pooling,
            ``(B, C, h, w)`` for 2-D encoders, ``(B, C, t)`` for 1-D ones.
        intermediates: named intermediate activations (e.g. SoundNet's ``pool5``).
    """

    pooled: Tensor
    feature_map: Tensor | None = None
    intermediates: dict[str, Tensor] = field(default_factory=dict)


def conv_bn_relu(cin: int, cout: int, kernel: int = 3, stride: int = 1, dims: int = 2) -> nn.Sequential:
    """Conv (no bias) + BatchNorm + ReLU, 1-D or 2-D, 'same'-style padding for odd kernels."""
    conv, bn = (nn.Conv2d, nn.BatchNorm2d) if dims == 2 else (nn.Conv1d, nn.BatchNorm1d)
    return nn.Sequential(conv(cin, cout, kernel, stride, padding=kernel // 2, bias=False), bn(cout), nn.ReLU(inplace=True))

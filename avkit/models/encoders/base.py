"""What every encoder declares and returns, and the encoder registry.

An encoder is an ``nn.Module`` with a ``feature_info`` attribute (after timm's
``FeatureInfo``): what its ``forward`` takes, the size of its pooled vector, and
for each spatial or temporal map its channels, its stride in input units and
where its first cell's receptive field is centred.
``forward(x, lengths=None)`` returns an :class:`EncoderOutput`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from avkit.registry import Registry

#: All encoders, by name: ``ENCODERS.create("logmel_cnn", width=32)``.
ENCODERS: Registry[nn.Module] = Registry("encoder")


@dataclass(frozen=True)
class FeatureMap:
    """One spatial or temporal map.

    Attributes:
        name: ``"map"`` for :attr:`EncoderOutput.feature_map`; an intermediate's key otherwise.
        channels: ``C`` of the map ``(B, C, *spatial)``.
        stride: input units per map cell along each spatial axis, in order: pixels
            ``(y, x)`` for images, ``(mel bins, frames)`` for log-mels, samples ``(t,)`` for waveforms.
        centre: the input position on which cell 0's receptive field is centred, per axis, in
            continuous coordinates (input element ``k`` spans ``[k, k + 1)``); cell ``i`` is
            centred on ``centre + i * stride``. None: the cells tile the input (``stride / 2``).
            Strided 3x3 convolutions with padding 1 centre cell ``i`` on element ``stride * i``: 0.5.
    """

    name: str
    channels: int
    stride: tuple[int, ...]
    centre: tuple[float, ...] | None = None

    def centres(self) -> tuple[float, ...]:
        """:attr:`centre`, or ``stride / 2`` per axis where the encoder does not declare it."""
        return self.centre if self.centre is not None else tuple(s / 2 for s in self.stride)


@dataclass(frozen=True)
class FeatureInfo:
    """What an encoder takes and gives.

    Attributes:
        input: what ``forward`` takes: ``"waveform"`` ``(B, T)``, ``"logmel"``
            ``(B, n_mels, frames)``, ``"image"`` ``(B, C, H, W)``, or any other
            name a modality's pipeline produces.
        pooled_dim: ``D`` of :attr:`EncoderOutput.pooled` ``(B, D)``.
        maps: the feature map and named intermediates.
        deep_supervision: intermediates shaped like ``map`` that a head supervising the
            map supervises as well (a stacked hourglass's intermediate supervision).
    """

    input: str
    pooled_dim: int
    maps: tuple[FeatureMap, ...] = ()
    deep_supervision: tuple[str, ...] = ()

    def map(self, name: str = "map") -> FeatureMap:
        """The map called ``name``."""
        for m in self.maps:
            if m.name == name:
                return m
        raise KeyError(f"no feature map {name!r}; the encoder has {[m.name for m in self.maps]}")


@dataclass
class EncoderOutput:
    """An encoder's outputs.

    Attributes:
        pooled: one vector per item, ``(B, D)``.
        feature_map: spatial (or time-frequency) features before pooling,
            ``(B, C, h, w)`` for 2-D encoders, ``(B, C, t)`` for 1-D ones.
        intermediates: named intermediate activations (e.g. SoundNet's ``pool5``).
        map_lengths: ``(B,)`` valid cells along the map's last axis, when the
            input was a padded batch of variable length; None otherwise.
    """

    pooled: Tensor
    feature_map: Tensor | None = None
    intermediates: dict[str, Tensor] = field(default_factory=dict)
    map_lengths: Tensor | None = None


def map_lengths(lengths: Tensor | None, stride: int, size: int) -> Tensor | None:
    """Valid cells of a map with ``stride`` along an axis of ``size`` cells, for input ``lengths``."""
    if lengths is None:
        return None
    return torch.div(lengths + stride - 1, stride, rounding_mode="floor").clamp(1, size)


def masked_mean(fmap: Tensor, lengths: Tensor | None) -> Tensor:
    """Mean over every axis after the channels; ``lengths (B,)`` masks the last axis (padding)."""
    if lengths is None:
        return fmap.flatten(2).mean(-1)
    mask = torch.arange(fmap.shape[-1], device=fmap.device)[None, :] < lengths[:, None]  # (B, t)
    mask = mask.view(mask.shape[0], *([1] * (fmap.dim() - 2)), mask.shape[1]).to(fmap.dtype)
    cells = mask.sum(-1) * (fmap[0, 0].numel() // fmap.shape[-1])
    return (fmap * mask).flatten(2).sum(-1) / cells.flatten(1)


def conv_bn_relu(cin: int, cout: int, kernel: int = 3, stride: int = 1, dims: int = 2) -> nn.Sequential:
    """Conv (no bias) + BatchNorm + ReLU, 1-D or 2-D, 'same'-style padding for odd kernels."""
    conv, bn = (nn.Conv2d, nn.BatchNorm2d) if dims == 2 else (nn.Conv1d, nn.BatchNorm1d)
    return nn.Sequential(conv(cin, cout, kernel, stride, padding=kernel // 2, bias=False), bn(cout), nn.ReLU(inplace=True))

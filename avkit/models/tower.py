"""A modality's tower: its encoder, then a head. Built from config data."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from avkit.errors import ConfigError
from avkit.modalities import get_modality
from avkit.models.encoders import ENCODERS, EncoderOutput
from avkit.models.heads import HEADS


def build_encoder(modality: str, spec: dict[str, Any] | None = None) -> nn.Module:
    """The encoder for ``modality`` from ``{"name": ..., **kwargs}`` (default: the modality's first).

    Raises:
        ConfigError: the encoder is unknown, not offered by the modality, or gets bad arguments.
    """
    mod = get_modality(modality)
    spec = dict(spec or {})
    name = spec.pop("name", mod.encoders[0])
    if name not in mod.encoders:
        raise ConfigError(f"encoder {name!r} does not take {modality!r} input; {modality} offers {list(mod.encoders)}")
    return ENCODERS.create(name, **spec)


class Tower(nn.Module):
    """Encoder -> projection head into the shared space.

    Shapes: one modality's preprocessed batch ``(B, ...)`` -> ``(B, embed_dim)``, unit norm.
    """

    def __init__(self, encoder: nn.Module, head: str, embed_dim: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = HEADS.create(head, in_dim=encoder.out_dim, embed_dim=embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.encoder(x).pooled)

    def features(self, x: Tensor) -> EncoderOutput:
        """The encoder's outputs (pooled vector, feature map, intermediates), before the head."""
        return self.encoder(x)

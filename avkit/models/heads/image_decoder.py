"""``image_decoder``: render a frozen image tower's embedding back to pixels (Speech2Face's face decoder).

    image tower (frozen) ─▶ pooled (B, D) ─▶ unit norm ─▶ decoder (``deconv`` | ``diffusion``) ─▶ (B, 3, H, W)

Decoders work on pixels scaled to [-1, 1], the usual range of image generators (a
diffusion sampler clips its estimates to it); the head maps the tower's normalised
images there, and its renderings back.

Trained on images alone. At translation time the condition comes from elsewhere:
a voice encoder's prediction of that embedding (``regress_embedding``), so a
sound becomes a picture (avkit.translation).

    [heads.decoder]
    kind = "image_decoder"
    tower = "image"
    decoder = { name = "diffusion", steps = 50, guidance = 3.0 }
    [init.classifier]                      # the frozen tower, from a classification run
    checkpoint = "runs/classifier"
    parts = { "towers.image" = "towers.image" }
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from avkit.data.batch import Batch
from avkit.errors import ConfigError
from avkit.models.decoders import IMAGE_DECODERS, ImageDecoder
from avkit.models.encoders import EncoderOutput
from avkit.models.heads.base import Head, HeadContext, borrow, register_head


@register_head("image_decoder")
class ImageDecoderHead(Head):
    """A registered decoder from the frozen ``tower``'s unit-norm embedding to that tower's input pixels.

    Loss terms: the decoder's (``deconv``: ``l1``, ``feature``; ``diffusion``: ``mse``).
    Metrics: ``error``, the decoder's deterministic validation error; ``score`` = −error.

    Args:
        tower: the image tower (frozen by an ``init``).
        decoder: ``{"name": registered decoder, ...its arguments}``.
        condition_noise: the std of Gaussian noise added to the unit condition in training, then
            renormalised, so the decoder tolerates predicted embeddings near the real ones (0: off).
    """

    def __init__(self, context: HeadContext, tower: str = "image", decoder: Mapping[str, Any] | None = None,
                 condition_noise: float = 0.0) -> None:  # fmt: skip
        super().__init__()
        context.require(tower)
        info = context.towers[tower]
        if info.feature_info is None or info.feature_info.input != "image" or info.encoder is None:
            raise ConfigError(f"image_decoder: tower {tower!r} must have an image encoder")
        if condition_noise < 0:
            raise ConfigError(f"image_decoder: condition_noise must be >= 0, got {condition_noise}")
        spec = dict(decoder or {"name": "deconv"})
        name = spec.pop("name", "deconv")
        self.decoder: ImageDecoder = IMAGE_DECODERS.create(name, cond_dim=context.pooled_dim(tower),
                                                           size=int(info.settings["size"]), **spec)  # fmt: skip
        self.decoder_name, self.condition_noise = name, condition_noise
        shape = (1, -1, 1, 1)  # per channel; from the tower's settings, so not saved with the weights
        self.register_buffer("mean", torch.tensor(info.settings["mean"]).view(shape), persistent=False)
        self.register_buffer("std", torch.tensor(info.settings["std"]).view(shape), persistent=False)
        self.towers = self.frozen_towers = (tower,)
        self.loss_terms = self.decoder.loss_terms
        self._features = borrow(info.encoder)  # the frozen tower, for feature-matching losses

    @property
    def tower(self) -> str:
        return self.towers[0]

    def to_unit_range(self, images: Tensor) -> Tensor:
        """The tower's normalised images ``(B, 3, H, W)`` -> pixels in [-1, 1]."""
        return 2 * (images * self.std + self.mean) - 1

    def to_tower(self, pixels: Tensor) -> Tensor:
        """Pixels in [-1, 1] -> the tower's normalised images."""
        return ((pixels + 1) / 2 - self.mean) / self.std

    def condition(self, embedding: Tensor) -> Tensor:
        """``(B, D)`` tower embeddings (or predictions of them) -> unit-norm conditions."""
        return F.normalize(embedding, dim=-1)

    def forward(self, outputs: Mapping[str, EncoderOutput], batch: Batch) -> dict[str, Tensor]:
        embedding = outputs[self.tower].pooled
        cond = self.condition(embedding)
        if self.training and self.condition_noise > 0:
            cond = self.condition(cond + self.condition_noise * torch.randn_like(cond))
        images = self.to_unit_range(batch.inputs[self.tower])
        return self.decoder.losses(cond, images, lambda x: self._features(self.to_tower(x)).pooled, embedding)

    def generate(self, embedding: Tensor, generator: torch.Generator | None = None, **options: Any) -> Tensor:
        """Images ``(B, 3, H, W)``, pixels in [0, 1], from embeddings ``(B, D)``."""
        return ((self.decoder.generate(self.condition(embedding), generator, **options) + 1) / 2).clamp(0, 1)

    def evaluator(self) -> DecoderErrorEvaluator:
        return DecoderErrorEvaluator(self)


class DecoderErrorEvaluator:
    """The mean of the decoder's validation error over a split; ``score`` = −error."""

    def __init__(self, head: ImageDecoderHead) -> None:
        self.head = head
        self.total, self.count = 0.0, 0

    def update(self, outputs: Mapping[str, EncoderOutput], batch: Batch) -> None:
        cond = self.head.condition(outputs[self.head.tower].pooled)
        images = self.head.to_unit_range(batch.inputs[self.head.tower])
        self.total += float(self.head.decoder.validation_error(cond, images).sum())
        self.count += len(cond)

    def compute(self) -> dict[str, float]:
        error = self.total / self.count if self.count else float("nan")
        return {"error": error, "score": -error}

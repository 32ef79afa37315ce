"""What an image decoder is: a module from a condition vector to pixels, with its own training loss.

    @IMAGE_DECODERS.register("my_decoder")
    class MyDecoder(ImageDecoder):
        loss_terms = ("mse",)
        def __init__(self, cond_dim: int, size: int, channels: int = 3, ...) -> None: ...
        def losses(self, cond, images, features, embedding) -> dict[str, Tensor]: ...
        def generate(self, cond, generator=None, **options) -> Tensor: ...
        def validation_error(self, cond, images) -> Tensor: ...

Images are ``(B, C, size, size)`` with pixel values scaled to [-1, 1] (the head maps
the tower's normalised space there and back); conditions are unit vectors ``(B, cond_dim)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from avkit.registry import Registry


class ImageDecoder(nn.Module):
    """Condition ``(B, D)`` -> image ``(B, C, H, W)``.

    Subclasses set ``loss_terms`` and implement :meth:`losses`, :meth:`generate` and
    :meth:`validation_error`.
    """

    loss_terms: tuple[str, ...] = ()

    def losses(self, cond: Tensor, images: Tensor, features: Callable[[Tensor], Tensor], embedding: Tensor) -> dict[str, Tensor]:
        """Named loss terms of one batch. ``features``: images in [-1, 1] -> the frozen tower's pooled vectors ``(B, D')``;
        ``embedding``: those vectors of ``images`` themselves, as the tower already gave them."""
        raise NotImplementedError

    def generate(self, cond: Tensor, generator: torch.Generator | None = None, **options: Any) -> Tensor:
        """Images ``(B, C, H, W)`` for conditions ``(B, D)``; ``options``: the decoder's sampling settings."""
        raise NotImplementedError

    def validation_error(self, cond: Tensor, images: Tensor) -> Tensor:
        """A deterministic per-item error ``(B,)`` (lower is better) that picks the best checkpoint."""
        raise NotImplementedError


#: Every registered image decoder, by name.
IMAGE_DECODERS: Registry[ImageDecoder] = Registry("image decoder")

"""Image decoders, registered by name: ``deconv``, ``diffusion`` (``IMAGE_DECODERS.names()``).

A decoder renders an embedding back to pixels; the ``image_decoder`` head trains one
on a frozen image tower's embeddings (avkit.models.heads.image_decoder).
"""

from avkit.models.decoders import deconv, diffusion  # noqa: F401  (registers the built-ins)
from avkit.models.decoders.base import IMAGE_DECODERS, ImageDecoder

__all__ = ["IMAGE_DECODERS", "ImageDecoder"]

"""Modalities, registered by name: ``get_modality("audio")``, ``list_modalities()``.

Importing this package registers the built-in ``audio`` and ``image`` modalities.
"""

from avkit.modalities import audio, image  # noqa: F401  (registers the built-ins)
from avkit.modalities.audio import AudioAugment, AudioSettings
from avkit.modalities.base import (
    MODALITIES,
    Modality,
    Pipeline,
    SimplePipeline,
    get_modality,
    list_modalities,
    register_modality,
)
from avkit.modalities.image import ImageAugment, ImageSettings

__all__ = ["MODALITIES", "AudioAugment", "AudioSettings", "ImageAugment", "ImageSettings", "Modality", "Pipeline",
           "SimplePipeline", "get_modality", "list_modalities", "register_modality"]  # fmt: skip

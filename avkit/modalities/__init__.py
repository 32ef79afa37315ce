"""Modalities, registered by name: ``get_modality("audio")``, ``list_modalities()``.

Importing this package registers the built-in ``audio`` and ``image`` modalities.
"""

from avkit.modalities import audio, image  # noqa: F401  (registers the built-ins)
from avkit.modalities.base import (
    MODALITIES,
    Modality,
    get_modality,
    list_modalities,
    register_modality,
)

__all__ = ["MODALITIES", "Modality", "get_modality", "list_modalities", "register_modality"]

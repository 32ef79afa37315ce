"""A modality is one registered object: loader, preprocessor, encoders, metadata.

Core code (datasets, training, embedding, indexing, the CLI) looks modalities
up by name here and never names one itself. Adding a modality is one
:func:`register_modality` call; see docs/extending.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from avkit.errors import ConfigError, MediaError
from avkit.registry import Registry


@dataclass(frozen=True)
class Modality:
    """Everything the toolkit needs to know to use one kind of data.

    Attributes:
        name: the manifest field holding this modality's paths (``"audio"``).
        load: ``path -> raw data``; raises :class:`~avkit.errors.MediaError`
            naming the file when it cannot be used.
        preprocess: ``raw -> tensor`` of one fixed shape per item (no batch dim),
            so items stack into a batch.
        encoders: names in the encoder registry that take this tensor; the first
            is the default.
        metadata: facts such as ``sample_rate`` or ``image_size``.
        describe: what a file of this modality is, for error messages.
        render: ``path -> array`` to draw in galleries (``(H, W)`` shown with a
            colour map, or ``(H, W, 3)`` RGB in [0, 1]); None draws the file name.
    """

    name: str
    load: Callable[[Path], Any]
    preprocess: Callable[[Any], Tensor]
    encoders: tuple[str, ...]
    metadata: Mapping[str, Any] = field(default_factory=dict)
    describe: str = "a file"
    render: Callable[[Path], np.ndarray] | None = None

    def load_tensor(self, path: str | Path) -> Tensor:
        """``path -> preprocessed tensor``; bad files raise MediaError naming ``path``."""
        path = Path(path)
        raw = self.load(path)
        try:
            return self.preprocess(raw)
        except (ValueError, RuntimeError) as exc:
            raise MediaError(path, f"cannot be preprocessed as {self.name} ({exc}); expected {self.describe}") from None


#: Every registered modality, by name.
MODALITIES: Registry[Modality] = Registry("modality")


def register_modality(modality: Modality, *, replace: bool = False) -> Modality:
    """Register ``modality`` under ``modality.name``; a second owner of a name is refused.

    Returns the modality, so a module can write ``DEPTH = register_modality(Modality(...))``.
    """
    if not modality.encoders:
        raise ConfigError(f"modality {modality.name!r} must name at least one encoder")
    if replace:
        MODALITIES.unregister(modality.name)
    MODALITIES.register(modality.name)(lambda: modality)
    return modality


def get_modality(name: str) -> Modality:
    """The registered modality ``name``; unknown names list the known ones."""
    return MODALITIES.create(name)


def list_modalities(pattern: str = "*") -> list[str]:
    """Names of registered modalities matching a shell-style pattern."""
    return MODALITIES.names(pattern)

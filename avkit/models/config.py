"""The model config: the architecture, and nothing about how it is trained.

Towers (a modality's preprocessing settings + an encoder), heads, the embedding
dimension and the class names. It is saved in every checkpoint, and it is all
``avkit embed``, ``avkit query`` and every later tool need to rebuild the model
(``avkit.models.load_model``). Optimisation, data, augmentation and output
settings live in the run config (``avkit.train.RunConfig``).

    [towers.audio]                       # a tower per name; its modality defaults to the name
    encoder = { name = "logmel_cnn", width = 16 }
    preprocess = { seconds = 1.0 }       # the modality's settings (avkit.modalities.AudioSettings)

    [towers.image]
    encoder = { name = "image_resnet", width = 16, stages = 3 }
    preprocess = { size = 32 }

    [heads.contrastive]                  # a head per name; its kind defaults to the name
    towers = ["audio", "image"]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TowerConfig:
    """One tower.

    Attributes:
        modality: the registered modality (manifest field) it reads; default: the tower's name.
        encoder: ``{"name": registered encoder, ...constructor arguments}``; without
            a name, the modality's first encoder.
        preprocess: the modality's preprocessing settings (for example
            ``AudioSettings``: ``sample_rate``, ``seconds``, the front-end; ``ImageSettings``: ``size``).
    """

    modality: str = ""
    encoder: dict[str, Any] = field(default_factory=dict)
    preprocess: dict[str, Any] = field(default_factory=dict)


@dataclass
class InitConfig:
    """Weights copied from another run before training (a frozen teacher, a pretrained tower).

    Attributes:
        checkpoint: a run directory (its best checkpoint) or a checkpoint file.
        parts: this model's module -> the source model's module, for example
            ``{"towers.image" = "towers.image", "heads.distill.teacher_classifier" = "heads.classify.classifier"}``.
            A copied tower must have the same config as the source's.
        freeze: keep the copied parts fixed (no gradient, BatchNorm statistics frozen).
    """

    checkpoint: str = ""
    parts: dict[str, str] = field(default_factory=dict)
    freeze: bool = True


@dataclass
class ModelConfig:
    """The architecture.

    Attributes:
        towers: tower name -> :class:`TowerConfig`.
        heads: head name -> ``{"kind": registered head (default: the name), ...arguments}``.
        embed_dim: the shared embedding space's dimension (for heads that project into it).
        labels: class names in index order; filled from the training manifest when empty.
        init: named weight copies from other runs, applied when a model is first created
            (a model loaded from its own checkpoint already holds them).
    """

    towers: dict[str, TowerConfig] = field(default_factory=dict)
    heads: dict[str, dict[str, Any]] = field(default_factory=dict)
    embed_dim: int = 128
    labels: list[str] = field(default_factory=list)
    init: dict[str, InitConfig] = field(default_factory=dict)

    def modalities(self) -> list[str]:
        """The manifest fields the towers read, sorted."""
        return sorted({t.modality or name for name, t in self.towers.items()})

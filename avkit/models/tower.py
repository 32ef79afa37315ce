"""A tower: a modality's preprocessing settings + an encoder from the registry.

    raw input ─[front-end, on the device]─▶ encoder input ─[batch augment, training]─▶ encoder ─▶ EncoderOutput
    (B, T) waveform ─▶ LogMelSpectrogram ─▶ (B, n_mels, frames) ─▶ SpecAugment ─▶ logmel_cnn ─▶ pooled, map

The front-end is whatever turns the modality pipeline's output into what the
encoder declares it takes (``encoder.feature_info.input``); for images there is
none. Inputs read from a feature cache skip it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from avkit.config import to_dict
from avkit.errors import ConfigError
from avkit.modalities import Pipeline, get_modality
from avkit.models.config import TowerConfig
from avkit.models.encoders import ENCODERS, EncoderOutput, FeatureInfo


class Tower(nn.Module):
    """One modality's path into the model.

    Attributes:
        name: the tower's name in the model; modality: the manifest field it reads.
        pipeline: the evaluation pipeline (file -> input tensor), from the tower's settings.
        frontend: the device-side front-end module, or None.
        encoder: the registered encoder.
    """

    def __init__(self, name: str, cfg: TowerConfig) -> None:
        super().__init__()
        self.name, self.cfg = name, cfg
        self.modality = cfg.modality or name
        mod = get_modality(self.modality)
        spec = dict(cfg.encoder)
        encoder = spec.pop("name", mod.encoders[0])
        ENCODERS.get(encoder)  # an unregistered name: ConfigError listing the registered ones
        if encoder not in mod.encoders:
            raise ConfigError(f"tower {name!r}: encoder {encoder!r} does not take {self.modality!r} input; "
                              f"{self.modality} offers {list(mod.encoders)}")  # fmt: skip
        self.encoder = ENCODERS.create(encoder, **spec)
        self.pipeline = self._bind(mod.make_pipeline(cfg.preprocess))
        try:
            self.frontend = self.pipeline.frontend(self.pipeline.encoder_input)
        except ConfigError as exc:
            raise ConfigError(f"tower {name!r}: {exc}") from None

    @property
    def feature_info(self) -> FeatureInfo | None:
        """What the encoder takes and outputs (None for an encoder that does not declare it)."""
        return getattr(self.encoder, "feature_info", None)

    def settings(self) -> dict[str, Any]:
        """The preprocessing settings in force, defaults included."""
        mod = get_modality(self.modality)
        return to_dict(mod.parse_settings(self.cfg.preprocess)) if mod.settings is not None else {}

    def _bind(self, pipeline: Pipeline) -> Pipeline:
        """``pipeline``, told what this tower's encoder takes."""
        info = self.feature_info
        pipeline.encoder_input = info.input if info is not None else None
        return pipeline

    def training_pipeline(self, augment: Mapping[str, Any] | None) -> Pipeline:
        """The pipeline for training, with the run's augmentation settings for this tower.

        Raises:
            ConfigError: settings the modality does not know, or augmentation this tower's encoder
                cannot take (SpecAugment for a raw-waveform encoder), naming ``augment.TOWER``.
        """
        try:
            pipeline = self._bind(get_modality(self.modality).make_pipeline(self.cfg.preprocess, augment))
            pipeline.batch_augment()
        except ConfigError as exc:
            raise ConfigError(f"augment.{self.name}: {exc}") from None
        return pipeline

    def forward(
        self, x: Tensor, lengths: Tensor | None = None, precomputed: bool = False, augment: nn.Module | None = None
    ) -> EncoderOutput:
        """``x (B, ...)`` as the pipeline gives it (or its front-end output if ``precomputed``) -> EncoderOutput.

        ``lengths (B,)``: valid lengths of a padded batch. ``augment``: a training-only module applied
        to the encoder's input (SpecAugment).
        """
        if self.frontend is not None and not precomputed:
            x = self.frontend(x)
            if lengths is not None:
                lengths = lengths.new_tensor([self.frontend.num_frames(int(n)) for n in lengths])
        if augment is not None:
            x = augment(x)
        return self.encoder(x) if lengths is None else self.encoder(x, lengths)

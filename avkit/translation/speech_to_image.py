"""Speech -> image: the voice encoder's predicted image embedding, rendered by an image decoder.

    audio (B, T) ─▶ audio tower ─▶ regress_embedding ─▶ ŷ (B, D) ─▶ image_decoder (deconv | diffusion) ─▶ (B, 3, H, W)

The model holds a ``regress_embedding`` head from an audio tower to an image tower,
and one or more ``image_decoder`` heads on that image tower (copied from their runs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from avkit.data.batch import Batch
from avkit.errors import ConfigError
from avkit.models import AVModel
from avkit.models.heads.image_decoder import ImageDecoderHead
from avkit.models.heads.regress_embedding import RegressEmbeddingHead


@dataclass(frozen=True)
class SpeechToImageHeads:
    """The heads that translate: the voice regressor and the image decoders, by head name."""

    voice: RegressEmbeddingHead
    decoders: dict[str, ImageDecoderHead]

    def decoder(self, name: str | None) -> ImageDecoderHead:
        """The decoder head ``name`` (by head name or decoder kind; default: the only one)."""
        if name is None:
            if len(self.decoders) != 1:
                raise ConfigError(f"this model has image decoders {sorted(self.decoders)}; choose one with --decoder")
            return next(iter(self.decoders.values()))
        found = [h for n, h in self.decoders.items() if name in (n, h.decoder_name)]
        if len(found) != 1:
            raise ConfigError(f"no single image decoder {name!r}; this model has {sorted(self.decoders)} "
                              f"({', '.join(f'{n}: {h.decoder_name}' for n, h in self.decoders.items())})")  # fmt: skip
        return found[0]


def speech_to_image_heads(model: AVModel) -> SpeechToImageHeads:
    """Find the voice regressor (audio -> image embedding) and the decoders of its image tower.

    Raises:
        ConfigError: the model has no such pair of heads (say what it has instead).
    """
    voices = [h for h in model.heads.values() if isinstance(h, RegressEmbeddingHead)
              and model.towers[h.student].modality == "audio"]  # fmt: skip
    if len(voices) != 1:
        raise ConfigError(f"speech -> image needs one regress_embedding head from an audio tower; this model's heads "
                          f"are {[f'{n} ({type(h).__name__})' for n, h in model.heads.items()]}")  # fmt: skip
    voice = voices[0]
    decoders = {n: h for n, h in model.heads.items() if isinstance(h, ImageDecoderHead) and h.tower == voice.teacher}
    if not decoders:
        raise ConfigError(f"the model has no image_decoder head on tower {voice.teacher!r} to render the "
                          "voice's prediction; copy one from an image-decoder run with an init")  # fmt: skip
    return SpeechToImageHeads(voice, decoders)


@torch.no_grad()
def speech_to_image(model: AVModel, batch: Batch, decoder: str | None = None,
                    generator: torch.Generator | None = None, **options: Any) -> Tensor:  # fmt: skip
    """Images ``(B, 3, H, W)`` in [0, 1] for the batch's audio. ``options``: the decoder's sampling settings."""
    heads = speech_to_image_heads(model)
    head = heads.decoder(decoder)
    was_training = model.training
    model.eval()
    try:
        predicted = heads.voice.predict(model.tower_output(heads.voice.student, batch))
        return head.generate(predicted, generator, **options).cpu()
    finally:
        model.train(was_training)


def speech_to_image_files(model: AVModel, audio: Sequence[str | Path], decoder: str | None = None,
                          seed: int = 0, **options: Any) -> Tensor:  # fmt: skip
    """Images ``(N, 3, H, W)`` in [0, 1] for audio files, through the audio tower's evaluation pipeline.

    Raises:
        MediaError: a file that does not decode as audio, naming it.
    """
    heads = speech_to_image_heads(model)
    pipe = model.pipelines()[heads.voice.student]
    x, lengths = pipe.collate([pipe.load_tensor(p) for p in audio])
    batch = Batch.of(heads.voice.student, x, lengths, [str(p) for p in audio])
    return speech_to_image(model, batch, decoder, torch.Generator().manual_seed(seed), **options)

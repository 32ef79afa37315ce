"""Image -> speech through discrete units: Show-Attend-Tell decodes units, a unit vocoder speaks them.

    image (B, 3, H, W) ─▶ image tower ─▶ map ─▶ caption head (beam search) ─▶ units ─▶ unit_vocoder ─▶ waveform

The model holds a ``caption`` head on an image tower and a ``unit_vocoder`` head
(copied, frozen, from a vocoder run trained on the same units).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from avkit.audio.io import save_audio
from avkit.data.batch import Batch
from avkit.errors import ConfigError
from avkit.models import AVModel
from avkit.models.heads.caption import CaptionHead
from avkit.models.heads.unit_vocoder import UnitVocoderHead


@dataclass
class Spoken:
    """One image's speech: its ``units``, the ``attention (len(units), h, w)`` of each, the ``waveform (T,)``."""

    units: list[int]
    attention: Tensor
    waveform: Tensor
    sample_rate: int


def save_speech(path: str | Path, spoken: Spoken, peak: float = 0.9) -> None:
    """Write ``spoken``'s waveform to ``path``; Griffin-Lim may overshoot, so a peak above ``peak`` is scaled down to it."""
    wav = spoken.waveform
    top = float(wav.abs().max()) if len(wav) else 0.0
    save_audio(path, wav * (peak / top) if top > peak else wav, spoken.sample_rate)


def image_to_speech_heads(model: AVModel) -> tuple[CaptionHead, UnitVocoderHead]:
    """The model's caption head on an image tower, and its unit vocoder.

    Raises:
        ConfigError: the model lacks either (say what it has).
    """
    captions = [h for h in model.heads.values() if isinstance(h, CaptionHead)]
    vocoders = [h for h in model.heads.values() if isinstance(h, UnitVocoderHead)]
    if len(captions) != 1 or len(vocoders) != 1:
        raise ConfigError(f"image -> speech needs one caption head and one unit_vocoder head; this model's heads are "
                          f"{[f'{n} ({type(h).__name__})' for n, h in model.heads.items()]}")  # fmt: skip
    caption, vocoder = captions[0], vocoders[0]
    if caption.decoder.vocab != vocoder.vocoder.vocab:
        raise ConfigError(f"the caption head emits {caption.decoder.vocab} units, the vocoder speaks {vocoder.vocoder.vocab}")
    return caption, vocoder


@torch.no_grad()
def image_to_speech(model: AVModel, batch: Batch, **decoding: float) -> list[Spoken]:
    """Speech for the batch's images. ``decoding``: ``beam`` (1: greedy), ``max_length``, ``length_penalty``."""
    caption, vocoder = image_to_speech_heads(model)
    was_training = model.training
    model.eval()
    try:
        output = model.tower_output(caption.towers[0], batch)
        h, w = output.feature_map.shape[-2:]
        return [Spoken(d.tokens, d.attention.view(-1, h, w), vocoder.speak(d.tokens), vocoder.sample_rate)
                for d in caption.decode(output, **decoding)]  # fmt: skip
    finally:
        model.train(was_training)


def image_to_speech_files(model: AVModel, images: Sequence[str | Path], **decoding: float) -> list[Spoken]:
    """Speech for image files, through the image tower's evaluation pipeline.

    Raises:
        MediaError: a file that does not decode as an image, naming it.
    """
    caption, _ = image_to_speech_heads(model)
    tower = caption.towers[0]
    pipe = model.pipelines()[tower]
    x, _ = pipe.collate([pipe.load_tensor(p) for p in images])
    return image_to_speech(model, Batch.of(tower, x, ids=[str(p) for p in images]), **decoding)

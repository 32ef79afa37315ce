"""The ``audio`` modality: a mono waveform at 16 kHz, cropped or padded to 1 s."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from avkit.audio.io import AUDIO_EXPECTED, load_audio
from avkit.audio.transforms import LogMelSpectrogram
from avkit.modalities.base import Modality, register_modality

SAMPLE_RATE = 16000
SECONDS = 1.0


def fix_length(wav: Tensor, length: int) -> Tensor:
    """Centre-crop or zero-pad (at the end) a ``(T,)`` waveform to ``(length,)``."""
    if wav.dim() != 1:
        raise ValueError(f"expected a mono (T,) waveform, got shape {tuple(wav.shape)}")
    if wav.shape[0] >= length:
        start = (wav.shape[0] - length) // 2
        return wav[start : start + length]
    return F.pad(wav, (0, length - wav.shape[0]))


def _preprocess(wav: Tensor) -> Tensor:
    return fix_length(wav, round(SAMPLE_RATE * SECONDS)).to(torch.float32)


def _render(path: Path) -> np.ndarray:
    """The clip's log-mel spectrogram ``(n_mels, frames)`` in dB, low frequencies first."""
    return LogMelSpectrogram(SAMPLE_RATE, top_db=80.0)(load_audio(path, SAMPLE_RATE)).numpy()


AUDIO = register_modality(
    Modality(
        name="audio",
        load=lambda path: load_audio(path, SAMPLE_RATE),
        preprocess=_preprocess,
        encoders=("logmel_cnn", "soundnet"),
        metadata={"sample_rate": SAMPLE_RATE, "seconds": SECONDS, "shape": "(T,)"},
        describe=AUDIO_EXPECTED,
        render=_render,
    )
)

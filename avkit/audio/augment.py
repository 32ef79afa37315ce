"""Audio augmentation and the crop/pad rule, on one item at a time (``(..., T)`` on the last axis).

Every random choice takes a ``numpy.random.Generator``, so a data pipeline can
seed each item from ``(seed, epoch, index)`` and replay it exactly on resume,
whatever the number of DataLoader workers. Spectrogram masking (SpecAugment)
works on batches on the model's device; it is torchaudio's.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio.functional as AF
import torchaudio.transforms as AT
from torch import Tensor, nn


def crop_or_pad(x: Tensor, length: int, rng: np.random.Generator | None = None, pad_value: float = 0.0) -> Tensor:
    """Cut or pad the last axis of ``x`` to ``length``: the one rule for waveforms and cached features.

    Longer: the centre ``length`` cells (``rng`` None, evaluation) or a random
    window (``rng`` given, training). Shorter: padded at the end with ``pad_value``.
    """
    n = x.shape[-1]
    if n > length:
        start = (n - length) // 2 if rng is None else int(rng.integers(0, n - length, endpoint=True))
        return x[..., start : start + length]
    if n < length:
        return F.pad(x, (0, length - n), value=pad_value)
    return x


def random_shift(x: Tensor, max_shift: int, rng: np.random.Generator, pad_value: float = 0.0) -> Tensor:
    """Shift the content of the last axis by a uniform offset in ``[-max_shift, max_shift]``, filling with ``pad_value``."""
    if max_shift <= 0:
        return x
    offset = int(rng.integers(-max_shift, max_shift, endpoint=True))
    if offset == 0:
        return x
    shifted = torch.full_like(x, pad_value)
    if offset > 0:
        shifted[..., offset:] = x[..., :-offset]
    else:
        shifted[..., :offset] = x[..., -offset:]
    return shifted


def colored_noise(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with power spectrum ~ 1/f**exponent (0 white, 1 pink, 2 brown), unit RMS."""
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.arange(spec.shape[0], dtype=np.float64)
    freqs[0] = 1.0
    noise = np.fft.irfft(spec / freqs ** (exponent / 2.0), n=n)
    return (noise / (np.sqrt(np.mean(noise**2)) + 1e-12)).astype(np.float32)


def add_noise(wav: Tensor, snr_db: float, rng: np.random.Generator, exponent: float = 0.0) -> Tensor:
    """Add coloured noise (``exponent``: 0 white, 1 pink, 2 brown) at ``snr_db`` to a ``(T,)`` waveform.

    The SNR is of the whole clip's energy (``torchaudio.functional.add_noise``).
    A silent clip is returned unchanged.
    """
    if not bool(wav.abs().max() > 0):
        return wav
    noise = torch.from_numpy(colored_noise(wav.shape[-1], exponent, rng)).to(wav.dtype)
    return AF.add_noise(wav[None], noise[None], torch.tensor([snr_db], dtype=wav.dtype))[0]


def change_speed(wav: Tensor, sample_rate: int, factor: float) -> Tensor:
    """Play ``(T,)`` ``factor`` times faster (tempo and pitch together, as Kaldi's speed perturbation)."""
    if factor == 1.0:
        return wav
    return AF.speed(wav, sample_rate, factor)[0]


class SpecAugment(nn.Module):
    """Time and frequency masking of a batch of spectrograms (Park et al. 2019), torchaudio's.

    Each item gets its own masks, drawn from torch's RNG (saved in checkpoints,
    so a resumed run draws the same masks). Masked cells take the batch mean.

    Shapes: ``(B, n_mels, frames)`` -> same.
    """

    def __init__(self, time_masks: int = 0, time_mask_frames: int = 0, freq_masks: int = 0, freq_mask_bins: int = 0) -> None:
        super().__init__()
        self.masking = AT.SpecAugment(n_time_masks=time_masks, time_mask_param=time_mask_frames,
                                      n_freq_masks=freq_masks, freq_mask_param=freq_mask_bins, iid_masks=True)  # fmt: skip

    def forward(self, spec: Tensor) -> Tensor:
        return self.masking(spec.unsqueeze(1)).squeeze(1)

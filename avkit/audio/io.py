"""Audio file I/O with soundfile: any WAV/FLAC/OGG to mono float32 at a target rate.

Rules (documented in docs/data.md):

- Integer PCM of any width (8, 16, 24, 32 bit) and float files are decoded to
  float32 in [-1, 1] by libsndfile.
- Several channels are mixed down to mono by their mean (``mixdown="mean"``),
  or the first channel is kept (``"first"``), or they are refused (``"error"``).
- Any sample rate is resampled to ``sample_rate`` with
  ``torchaudio.functional.resample`` (band-limited sinc interpolation).
- Empty, undecodable, zero-length and non-finite (NaN/Inf) audio raise
  :class:`avkit.errors.MediaError` naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from avkit.errors import MediaError
from avkit.fileio import atomic_open, require_file

Mixdown = Literal["mean", "first", "error"]

#: File suffixes that :func:`save_audio` can write, with their libsndfile format and default subtype.
WRITE_FORMATS: dict[str, tuple[str, str]] = {
    ".wav": ("WAV", "PCM_16"),
    ".flac": ("FLAC", "PCM_16"),
    ".ogg": ("OGG", "VORBIS"),
}


AUDIO_EXPECTED = "a WAV, FLAC or OGG file"


def read_audio(path: str | Path, mixdown: Mixdown = "mean") -> tuple[np.ndarray, int]:
    """Decode an audio file to a mono float32 array at its own sample rate.

    Returns:
        ``(samples, sample_rate)`` with samples of shape ``(T,)``.
    """
    path = Path(path)
    require_file(path, AUDIO_EXPECTED)
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise MediaError(
            path, f"cannot be decoded as audio ({exc}); expected {AUDIO_EXPECTED}"
        ) from None
    if data.shape[0] == 0:
        raise MediaError(path, "contains no samples (zero-length audio)")
    if data.shape[1] > 1:
        if mixdown == "error":
            raise MediaError(path, f"has {data.shape[1]} channels; expected mono")
        data = data.mean(axis=1) if mixdown == "mean" else data[:, 0]
    else:
        data = data[:, 0]
    bad = ~np.isfinite(data)
    if bad.any():
        first = int(np.argmax(bad))
        raise MediaError(
            path, f"contains {int(bad.sum())} non-finite samples (NaN or Inf), the first at sample {first}"
        )
    return np.ascontiguousarray(data, dtype=np.float32), int(sr)


def load_audio(path: str | Path, sample_rate: int = 16000, mixdown: Mixdown = "mean") -> torch.Tensor:
    """Load an audio file as a mono float32 tensor of shape ``(T,)`` at ``sample_rate``.

    Args:
        path: WAV, FLAC or OGG file (anything libsndfile decodes).
        sample_rate: target rate in Hz; the file is resampled if it differs.
        mixdown: how to turn several channels into one (see module docstring).

    Raises:
        MediaError: the file is missing, empty, undecodable, zero-length or non-finite.
    """
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    data, sr = read_audio(path, mixdown=mixdown)
    wav = torch.from_numpy(data)
    if sr != sample_rate:
        wav = AF.resample(wav, orig_freq=sr, new_freq=sample_rate)
    return wav


def save_audio(
    path: str | Path, wav: torch.Tensor | np.ndarray, sample_rate: int, subtype: str | None = None
) -> None:
    """Write a mono ``(T,)`` or multi-channel ``(C, T)`` signal atomically.

    The format follows the suffix (``.wav``, ``.flac``, ``.ogg``); ``subtype``
    overrides the default (16-bit PCM, or Vorbis for OGG). Samples outside
    [-1, 1] are clipped for integer subtypes.
    """
    path = Path(path)
    fmt = WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise MediaError(path, f"unsupported suffix {path.suffix!r}; expected one of {sorted(WRITE_FORMATS)}")
    data = wav.detach().cpu().numpy() if isinstance(wav, torch.Tensor) else np.asarray(wav)
    data = np.asarray(data, dtype=np.float32)
    if data.ndim == 2:
        data = data.T  # soundfile wants (T, C)
    elif data.ndim != 1:
        raise ValueError(f"expected a (T,) or (C, T) signal, got shape {tuple(data.shape)}")
    if not np.isfinite(data).all():
        raise MediaError(path, "refusing to write non-finite samples (NaN or Inf)")
    subtype = subtype or fmt[1]
    if subtype.startswith("PCM"):
        data = np.clip(data, -1.0, 1.0)
    with atomic_open(path) as handle:
        sf.write(handle, data, sample_rate, format=fmt[0], subtype=subtype)


def audio_duration(path: str | Path) -> float:
    """Duration in seconds, read from the header without decoding samples."""
    path = Path(path)
    require_file(path, AUDIO_EXPECTED)
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise MediaError(path, f"cannot be decoded as audio ({exc})") from None
    return info.frames / info.samplerate

"""Audio file I/O with soundfile: any WAV/FLAC/OGG to mono float32 at a target rate.

Rules (documented in docs/data.md):

- Integer PCM of any width (8, 16, 24, 32 bit) and float files are decoded to
  float32 in [-1, 1] by libsndfile.
- Several channels are mixed down to mono by their mean (``mixdown="mean"``),
  or the first channel is kept (``"first"``), or they are refused (``"error"``).
- Any sample rate is resampled to ``sample_rate`` with
  ``torchaudio.functional.resample`` (band-limited sinc interpolation).
- Empty, undecodable, zero-length and non-finite (NaN/Inf) audio raise
  :class:`avkit.errors.MediaError` naming the file, what was expected and
  what the file appears to be.
- A truncated file, whose header promises more frames than it holds, is read
  as far as it goes with a warning naming both counts; ``strict=True`` refuses
  it (MediaError).
"""

from __future__ import annotations

import io
import logging
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from avkit.errors import MediaError
from avkit.fileio import atomic_open, require_file, undecodable_error

log = logging.getLogger(__name__)

Mixdown = Literal["mean", "first", "error"]

#: File suffixes that :func:`save_audio` can write, with their libsndfile format and default subtype.
WRITE_FORMATS: dict[str, tuple[str, str]] = {
    ".wav": ("WAV", "PCM_16"),
    ".flac": ("FLAC", "PCM_16"),
    ".ogg": ("OGG", "VORBIS"),
}


AUDIO_EXPECTED = "a WAV, FLAC or OGG file"
#: libsndfile's log line for a data chunk longer than the file: ``data : 32000 (should be 15978)``.
_SHORT_DATA = re.compile(r"^data\s*:\s*(\d+) \(should be (\d+)\)", re.MULTILINE)
_BLOCK_ALIGN = re.compile(r"Block Align\s*:\s*(\d+)")
_UNKNOWN_LENGTH = (0, 0xFFFFFFFF)  # what streaming writers put in the header when they cannot know the length


def undecodable(path: Path, exc: Exception) -> MediaError:
    """The error for a file libsndfile cannot decode: what was expected, what the file is, what libsndfile said."""
    said = re.sub(r"^Error opening .*?: ", "", str(exc).strip()) or type(exc).__name__
    return undecodable_error(path, "audio", AUDIO_EXPECTED, ("a WAV", "a FLAC", "an Ogg"), "libsndfile", said)


def promised_frames(extra_info: str, frames: int) -> int | None:
    """Frames a WAV header promises when its data chunk runs past the end of the file, else None."""
    short = _SHORT_DATA.search(extra_info)
    if short is None or int(short.group(1)) in _UNKNOWN_LENGTH or frames == 0:
        return None
    align = _BLOCK_ALIGN.search(extra_info)
    per_frame = int(align.group(1)) if align else int(short.group(2)) / frames
    return round(int(short.group(1)) / per_frame) if per_frame else None


def _check_truncation(path: Path, promised: int | None, frames: int, sr: int, strict: bool) -> None:
    """Warn (or, ``strict``, refuse) when the header promises more frames than the file holds."""
    if promised is None or promised <= frames:
        return
    found = (f"is truncated: its header promises {promised:,} frames ({promised / sr:.2f} s) but the file "
             f"holds {frames:,} ({frames / sr:.2f} s)")  # fmt: skip
    if strict:
        raise MediaError(path, found + "; refused in strict mode")
    log.warning("%s: %s; using the %s frames it holds", path, found, f"{frames:,}")


def read_audio(path: str | Path, mixdown: Mixdown = "mean", strict: bool = False) -> tuple[np.ndarray, int]:
    """Decode an audio file to a mono float32 array at its own sample rate.

    Args:
        strict: refuse a truncated file instead of reading what it holds with a warning.

    Returns:
        ``(samples, sample_rate)`` with samples of shape ``(T,)``.
    """
    path = Path(path)
    require_file(path, AUDIO_EXPECTED)
    try:
        with sf.SoundFile(str(path)) as handle:
            data, sr = handle.read(dtype="float32", always_2d=True), handle.samplerate
            promised = promised_frames(handle.extra_info, handle.frames)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise undecodable(path, exc) from None
    _check_truncation(path, promised, data.shape[0], sr, strict)
    if data.shape[0] == 0:
        raise MediaError(path, "contains no samples (zero-length audio)")
    return _finite_mono(path, data, mixdown), int(sr)


def _finite_mono(path: Path, data: np.ndarray, mixdown: Mixdown, offset: int = 0) -> np.ndarray:
    """``(T, C)`` samples -> mono ``(T,)`` float32 by ``mixdown``; MediaError for several channels under
    ``"error"``, or for NaN/Inf samples (counted, the first named by its index in the file: ``offset`` + row)."""
    if data.shape[1] > 1 and mixdown == "error":
        raise MediaError(path, f"has {data.shape[1]} channels; expected mono")
    data = data.mean(axis=1) if data.shape[1] > 1 and mixdown == "mean" else data[:, 0]
    bad = ~np.isfinite(data)
    if bad.any():
        first = offset + int(np.argmax(bad))
        raise MediaError(path, f"contains {int(bad.sum())} non-finite samples (NaN or Inf), the first at sample {first}")
    return np.ascontiguousarray(data, dtype=np.float32)


def load_audio(
    path: str | Path, sample_rate: int = 16000, mixdown: Mixdown = "mean", strict: bool = False
) -> torch.Tensor:
    """Load an audio file as a mono float32 tensor of shape ``(T,)`` at ``sample_rate``.

    Args:
        path: WAV, FLAC or OGG file (anything libsndfile decodes).
        sample_rate: target rate in Hz; the file is resampled if it differs.
        mixdown: how to turn several channels into one (see module docstring).
        strict: refuse a truncated file (otherwise: a warning, and the frames it holds).

    Raises:
        MediaError: the file is missing, empty, undecodable, zero-length or non-finite (or truncated, if strict).
    """
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    data, sr = read_audio(path, mixdown=mixdown, strict=strict)
    return _at_rate(torch.from_numpy(data), sr, sample_rate)


def _at_rate(wav: torch.Tensor, sr: int, sample_rate: int) -> torch.Tensor:
    return wav if sr == sample_rate else AF.resample(wav, orig_freq=sr, new_freq=sample_rate)


def audio_from_bytes(data: bytes, sample_rate: int = 16000, mixdown: Mixdown = "mean") -> torch.Tensor | None:
    """:func:`load_audio` of an encoded file held in memory (a tar member), or None when it is not
    plainly good (undecodable, empty, truncated, non-finite): load it from a file then, whose
    error or warning names it."""
    try:
        with sf.SoundFile(io.BytesIO(data)) as handle:
            if promised_frames(handle.extra_info, handle.frames) is not None:
                return None
            samples, sr = handle.read(dtype="float32", always_2d=True), int(handle.samplerate)
        mono = _finite_mono(Path("-"), samples, mixdown) if samples.shape[0] else None
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, MediaError):
        return None
    return None if mono is None else _at_rate(torch.from_numpy(mono), sr, sample_rate)


class AudioBlocks:
    """A long audio file as consecutive mono float32 blocks ``(T_i,)`` at ``sample_rate``, read on demand.

    Concatenated, the blocks equal :func:`load_audio` of the file (resampling is done per block
    with enough context on both sides that the joins do not show). Memory stays at one block,
    whatever the file's length. Iterable more than once.

        blocks = AudioBlocks("hour.wav", 16000)
        blocks.num_samples              # at 16 kHz, known before reading
        for block in blocks: ...

    Raises:
        MediaError: as :func:`load_audio`, when opened (header) or while reading (data).
    """

    def __init__(self, path: str | Path, sample_rate: int = 16000, block_seconds: float = 30.0,
                 mixdown: Mixdown = "mean", strict: bool = False) -> None:  # fmt: skip
        self.path, self.sample_rate, self.mixdown = Path(path), sample_rate, mixdown
        require_file(self.path, AUDIO_EXPECTED)
        try:
            with sf.SoundFile(str(self.path)) as handle:
                self.file_rate, self.frames, self.channels = handle.samplerate, handle.frames, handle.channels
                promised = promised_frames(handle.extra_info, handle.frames)
        except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
            raise undecodable(self.path, exc) from None
        if self.frames == 0:
            raise MediaError(self.path, "contains no samples (zero-length audio)")
        if self.channels > 1 and mixdown == "error":  # at once, not at the first block
            raise MediaError(self.path, f"has {self.channels} channels; expected mono")
        _check_truncation(self.path, promised, self.frames, self.file_rate, strict)
        g = math.gcd(self.file_rate, sample_rate)
        self._orig, self._new = self.file_rate // g, sample_rate // g
        self._block = max(1, round(block_seconds * self.file_rate / self._orig)) * self._orig  # whole resampling periods
        width = math.ceil(6 * self._orig / (0.99 * min(self._orig, self._new)))  # torchaudio's sinc half-width
        self._context = (width // self._orig + 2) * self._orig
        self.num_samples = -(-self.frames * self._new // self._orig)

    def _read(self, handle: sf.SoundFile, start: int, stop: int) -> np.ndarray:
        handle.seek(start)
        return _finite_mono(self.path, handle.read(stop - start, dtype="float32", always_2d=True), self.mixdown, start)

    def __iter__(self) -> Iterator[torch.Tensor]:
        try:
            with sf.SoundFile(str(self.path)) as handle:
                for start in range(0, self.frames, self._block):
                    stop = min(self.frames, start + self._block)
                    if self._orig == self._new:
                        yield torch.from_numpy(self._read(handle, start, stop))
                        continue
                    left, right = min(start, self._context), min(self.frames - stop, self._context)
                    wav = AF.resample(torch.from_numpy(self._read(handle, start - left, stop + right)), self._orig, self._new)
                    first = left // self._orig * self._new
                    yield wav[first : first - (-(stop - start) * self._new // self._orig)]
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise undecodable(self.path, exc) from None


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
        raise undecodable(path, exc) from None
    return info.frames / info.samplerate

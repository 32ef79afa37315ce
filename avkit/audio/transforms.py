"""Batched audio front-end: waveform -> power spectrum -> spectrogram -> log-mel.

Each transform is a small ``nn.Module`` with explicit parameters, buffers that
follow ``.to(device)``, and documented shapes. The chain is literal:

    Spectrogram      = frame the signal (window A, hop B) + PowerSpectrum of each frame
    LogMelSpectrogram = Spectrogram + MelScale + AmplitudeToDB

Conventions (all explicit parameters; see docs/architecture.md):

- **Window**: Hamming by default, *periodic* (the DFT-even window used by
  ``torch.hamming_window``, librosa and ``scipy.signal.get_window``); pass
  ``periodic=False`` for the symmetric window of ``numpy.hamming``. A window
  shorter than ``n_fft`` is centred in the frame with zeros either side, as in
  ``torch.stft`` and librosa.
- **Centring**: with ``center=True`` the signal is padded by ``n_fft // 2`` on
  both sides so frame ``t`` is centred on sample ``t * hop``; ``pad_mode`` is
  ``"reflect"`` (torch/torchaudio) by default, ``"constant"`` (zeros) matches
  current librosa and ``scipy.signal.stft(boundary="zeros")``.
- **Short input**: a signal shorter than ``n_fft`` samples is zero-padded on the
  right to ``n_fft`` samples first, so every input yields at least one frame.
- **Scaling**: ``"none"`` gives raw ``|X|^p``; ``"spectrum"`` divides X by
  ``sum(window)`` (scipy's ``scaling="spectrum"``); ``"energy"`` divides X by
  ``sqrt(sum(window**2))`` (torchaudio's ``normalized="window"``).
- **Frames**: ``1 + (T' - n_fft) // hop`` with ``T' = T + 2 * (n_fft // 2)``
  when centred (``1 + T // hop`` for even ``n_fft``), ``T' = T`` otherwise.

Speed on CPU (benchmarks/frontend.py, docs/benchmarks.md): the frame-then-
``rfft`` route is used rather than ``torch.stft`` because it was measured
faster, and on CPU a large batch is processed ``cpu_chunk`` rows at a time so
the intermediates (frames, complex spectra) stay small and in cache instead of
being freshly mapped and page-faulted on every call (3x faster at 256 clips).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from typing import Literal

import torch
import torch.nn.functional as F
import torchaudio.functional as AF
from torch import Tensor, nn

WindowKind = Literal["hamming", "hann", "rectangular"]
Scaling = Literal["none", "spectrum", "energy"]
PadMode = Literal["reflect", "constant", "replicate", "circular"]


def make_window(kind: WindowKind, length: int, periodic: bool = True) -> Tensor:
    """Return a float32 window of ``length`` samples.

    Args:
        kind: ``"hamming"`` (0.54 - 0.46 cos), ``"hann"`` or ``"rectangular"``.
        periodic: DFT-even window (as for spectral analysis) if True, symmetric if False.
    """
    if length < 1:
        raise ValueError(f"window length must be >= 1, got {length}")
    if kind == "hamming":
        return torch.hamming_window(length, periodic=periodic, dtype=torch.float32)
    if kind == "hann":
        return torch.hann_window(length, periodic=periodic, dtype=torch.float32)
    if kind == "rectangular":
        return torch.ones(length, dtype=torch.float32)
    raise ValueError(f"unknown window {kind!r}; expected 'hamming', 'hann' or 'rectangular'")


#: Rows processed at once on CPU; see the module docstring.
DEFAULT_CPU_CHUNK = 32


def _chunked(fn: Callable[[Tensor], Tensor], flat: Tensor, chunk: int | None) -> Tensor:
    """Apply ``fn`` to ``(N, T)`` in row chunks on CPU (all at once on other devices)."""
    if chunk is None or flat.device.type != "cpu" or flat.shape[0] <= chunk:
        return fn(flat)
    return torch.cat([fn(part) for part in flat.split(chunk)])


def _as_batch(x: Tensor) -> tuple[Tensor, tuple[int, ...]]:
    """Flatten leading dims: ``(..., T) -> (N, T)``; return the leading shape to restore."""
    if x.dim() == 0:
        raise ValueError("expected a waveform of shape (..., T), got a scalar")
    if not x.is_floating_point():
        raise TypeError(f"expected a floating-point waveform, got dtype {x.dtype}")
    lead = tuple(x.shape[:-1])
    return x.reshape(-1, x.shape[-1]), lead


class PowerSpectrum(nn.Module):
    """Power (or magnitude) spectrum of one windowed frame.

    Shapes:
        input ``(..., L)`` with ``L == win_length`` (zero-padded, centred, to
        ``n_fft``) or ``L == n_fft`` (the window covers the centred
        ``win_length`` samples, the rest weigh zero) -> output ``(..., F)`` with
        ``F = n_fft // 2 + 1`` bins at frequencies ``k * sample_rate / n_fft``.

    Args:
        win_length: window length A in samples.
        n_fft: FFT size, ``>= win_length`` (default: ``win_length``).
        window: window shape.
        periodic: periodic (True) or symmetric (False) window.
        power: 2.0 for power, 1.0 for magnitude.
        scaling: ``"none"``, ``"spectrum"`` or ``"energy"`` (see module docstring).
    """

    def __init__(
        self,
        win_length: int,
        n_fft: int | None = None,
        window: WindowKind = "hamming",
        periodic: bool = True,
        power: float = 2.0,
        scaling: Scaling = "none",
    ) -> None:
        super().__init__()
        n_fft = win_length if n_fft is None else n_fft
        if n_fft < win_length:
            raise ValueError(f"n_fft ({n_fft}) must be >= win_length ({win_length})")
        if power <= 0:
            raise ValueError(f"power must be positive, got {power}")
        if scaling not in ("none", "spectrum", "energy"):
            raise ValueError(f"unknown scaling {scaling!r}; expected 'none', 'spectrum' or 'energy'")
        self.win_length, self.n_fft, self.power, self.scaling = win_length, n_fft, power, scaling
        self.window_kind, self.periodic = window, periodic
        win = make_window(window, win_length, periodic)
        left = (n_fft - win_length) // 2
        self.register_buffer("window", F.pad(win, (left, n_fft - win_length - left)), persistent=False)
        if scaling == "spectrum":
            scale = 1.0 / float(win.sum())
        elif scaling == "energy":
            scale = 1.0 / math.sqrt(float((win**2).sum()))
        else:
            scale = 1.0
        self.scale = scale**power

    @property
    def n_freqs(self) -> int:
        return self.n_fft // 2 + 1

    def forward(self, frames: Tensor) -> Tensor:
        """``(..., L) -> (..., n_fft // 2 + 1)``."""
        length = frames.shape[-1]
        if length == self.win_length and length != self.n_fft:
            left = (self.n_fft - self.win_length) // 2
            frames = F.pad(frames, (left, self.n_fft - self.win_length - left))
        elif length != self.n_fft:
            raise ValueError(
                f"PowerSpectrum expects frames of win_length={self.win_length} or "
                f"n_fft={self.n_fft} samples, got {length}"
            )
        spec = torch.fft.rfft(frames * self.window.to(frames.dtype))
        power = spec.real.square() + spec.imag.square()
        if self.power != 2.0:
            power = power.pow(self.power / 2.0)
        if self.scale != 1.0:
            power = power * self.scale
        return power


class Spectrogram(nn.Module):
    """Short-time power spectrogram: frames of ``win_length`` samples every ``hop_length``.

    Shapes:
        ``(..., T) -> (..., F, frames)`` with ``F = n_fft // 2 + 1``.

    Args:
        n_fft: FFT size (default: the next power of two ``>= win_length``).
        win_length: window length A in samples.
        hop_length: hop B in samples.
        window, periodic, power, scaling: as :class:`PowerSpectrum`.
        center: pad ``n_fft // 2`` on both sides so frames are centred.
        pad_mode: padding used when ``center`` is True.
        cpu_chunk: rows computed at once on CPU (None: the whole batch).
    """

    def __init__(
        self,
        win_length: int = 400,
        hop_length: int = 160,
        n_fft: int | None = None,
        window: WindowKind = "hamming",
        periodic: bool = True,
        center: bool = True,
        pad_mode: PadMode = "reflect",
        power: float = 2.0,
        scaling: Scaling = "none",
        cpu_chunk: int | None = DEFAULT_CPU_CHUNK,
    ) -> None:
        super().__init__()
        if hop_length < 1:
            raise ValueError(f"hop_length must be >= 1, got {hop_length}")
        n_fft = n_fft if n_fft is not None else 1 << max(0, (win_length - 1).bit_length())
        self.power_spectrum = PowerSpectrum(win_length, n_fft, window, periodic, power, scaling)
        self.n_fft, self.win_length, self.hop_length = n_fft, win_length, hop_length
        self.center, self.pad_mode, self.cpu_chunk = center, pad_mode, cpu_chunk

    @property
    def n_freqs(self) -> int:
        return self.n_fft // 2 + 1

    def num_frames(self, num_samples: int) -> int:
        """Number of frames produced for a signal of ``num_samples`` samples."""
        t = max(num_samples, self.n_fft)
        if self.center:
            t += 2 * (self.n_fft // 2)
        return 1 + (t - self.n_fft) // self.hop_length

    def frames(self, x: Tensor) -> Tensor:
        """Cut ``(N, T)`` into overlapping frames ``(N, frames, n_fft)`` (a strided view)."""
        if x.shape[-1] < self.n_fft:
            x = F.pad(x, (0, self.n_fft - x.shape[-1]))
        if self.center:
            half = self.n_fft // 2
            x = F.pad(x.unsqueeze(1), (half, half), mode=self.pad_mode).squeeze(1)
        return x.unfold(-1, self.n_fft, self.hop_length)

    def forward(self, x: Tensor) -> Tensor:
        """``(..., T) -> (..., F, frames)``."""
        flat, lead = _as_batch(x)
        spec = _chunked(self._spectrogram, flat, self.cpu_chunk)
        return spec.reshape(*lead, *spec.shape[-2:])

    def _spectrogram(self, flat: Tensor) -> Tensor:
        """``(N, T) -> (N, F, frames)``."""
        return self.power_spectrum(self.frames(flat)).transpose(-1, -2)

    def stream(self, blocks: Iterable[Tensor]) -> Iterator[Tensor]:
        """The spectrogram of a long mono signal given as consecutive blocks ``(T_i,)``, piece by piece.

        Yields ``(F, n_i)`` pieces whose concatenation along the last axis equals
        ``self(torch.cat(blocks))``. Memory: one block plus ``n_fft`` samples, so a file of
        any length can be analysed (``avkit.audio.io.iter_audio_blocks``).
        """
        half = self.n_fft // 2 if self.center else 0
        need = 2 * (self.n_fft + half + 1)  # before the first piece: enough for the left padding and one frame
        buf, start = torch.zeros(0), None  # start: where the next frame begins in buf (None: not started)
        for block in blocks:
            buf = torch.cat([buf, block.reshape(-1).float()])
            if start is None:
                if buf.shape[-1] < need:
                    continue
                if half:
                    buf = F.pad(buf[None, None], (half, 0), mode=self.pad_mode)[0, 0]
                start = 0
            n = (buf.shape[-1] - start - self.n_fft) // self.hop_length + 1
            if n > 0:
                stop = start + (n - 1) * self.hop_length + self.n_fft
                yield self.power_spectrum(buf[start:stop].unfold(-1, self.n_fft, self.hop_length)).T
                start += n * self.hop_length
            keep = min(start, buf.shape[-1] - (half + 1))  # the tail the right padding reflects stays
            buf, start = buf[max(0, keep):], start - max(0, keep)
        if start is None:  # shorter than `need`: all at once
            if buf.shape[-1]:
                yield self(buf)
            return
        if half:
            buf = F.pad(buf[None, None], (0, half), mode=self.pad_mode)[0, 0]
        n = (buf.shape[-1] - start - self.n_fft) // self.hop_length + 1
        if n > 0:
            yield self.power_spectrum(buf[start:].unfold(-1, self.n_fft, self.hop_length)[:n]).T


class MelScale(nn.Module):
    """Project a linear-frequency spectrogram onto ``n_mels`` mel bands.

    Shapes:
        ``(..., F, frames) -> (..., n_mels, frames)``.

    Args:
        mel_scale, norm: ``"slaney"``/``"slaney"`` matches librosa's defaults;
            ``"htk"``/``None`` matches torchaudio's.
    """

    def __init__(
        self,
        n_mels: int,
        sample_rate: int,
        n_freqs: int,
        f_min: float = 0.0,
        f_max: float | None = None,
        mel_scale: Literal["slaney", "htk"] = "slaney",
        norm: Literal["slaney"] | None = "slaney",
    ) -> None:
        super().__init__()
        f_max = sample_rate / 2 if f_max is None else f_max
        if not 0 <= f_min < f_max <= sample_rate / 2:
            raise ValueError(f"need 0 <= f_min < f_max <= sample_rate/2, got f_min={f_min}, f_max={f_max}")
        fb = AF.melscale_fbanks(n_freqs, f_min, f_max, n_mels, sample_rate, norm=norm, mel_scale=mel_scale)
        self.register_buffer("fb_t", fb.T.contiguous(), persistent=False)  # (n_mels, F)

    def forward(self, spec: Tensor) -> Tensor:
        """``(..., F, frames) -> (..., n_mels, frames)``."""
        return torch.matmul(self.fb_t.to(spec.dtype), spec)


class AmplitudeToDB(nn.Module):
    """Power to decibels: ``10 * log10(max(x, amin) / ref)``, optionally floored at ``max - top_db``.

    Shapes: ``(..., F, frames)`` unchanged. ``top_db`` is applied per item
    (over the last two dims), as in librosa's ``power_to_db``.
    Use ``multiplier=20`` for magnitude input.
    """

    def __init__(
        self, amin: float = 1e-10, ref: float = 1.0, top_db: float | None = None, multiplier: float = 10.0
    ) -> None:
        super().__init__()
        if amin <= 0:
            raise ValueError(f"amin must be positive, got {amin}")
        self.amin, self.ref, self.top_db, self.multiplier = amin, ref, top_db, multiplier

    def forward(self, x: Tensor) -> Tensor:
        db = torch.log10(torch.clamp(x, min=self.amin)).mul_(self.multiplier)
        if self.ref != 1.0:
            db = db - self.multiplier * math.log10(max(self.amin, self.ref))
        if self.top_db is not None:
            peak = db.amax(dim=(-2, -1), keepdim=True)
            db = torch.maximum(db, peak - self.top_db)
        return db

    def silence(self, peak: float) -> float:
        """What :meth:`forward` gives a zero input (silence, zero padding) in an item whose peak is ``peak`` dB."""
        db = self.multiplier * (math.log10(self.amin) - (math.log10(max(self.amin, self.ref)) if self.ref != 1.0 else 0.0))
        return db if self.top_db is None else max(db, peak - self.top_db)


class LogMelSpectrogram(nn.Module):
    """Hamming-windowed power spectrogram -> mel filterbank -> dB.

    Shapes:
        ``(..., T) -> (..., n_mels, frames)``; encoders add the channel dim,
        ``(B, 1, n_mels, frames)``.

    Defaults: 16 kHz, 25 ms Hamming window (400), 10 ms hop (160), n_fft 512,
    64 Slaney mel bands from 0 to 8 kHz, dB with ``amin=1e-10`` and no ``top_db``.
    On CPU the batch is computed ``cpu_chunk`` rows at a time (None: all at once).
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 512,
        win_length: int = 400,
        hop_length: int = 160,
        n_mels: int = 64,
        f_min: float = 0.0,
        f_max: float | None = None,
        window: WindowKind = "hamming",
        periodic: bool = True,
        center: bool = True,
        pad_mode: PadMode = "reflect",
        mel_scale: Literal["slaney", "htk"] = "slaney",
        norm: Literal["slaney"] | None = "slaney",
        amin: float = 1e-10,
        top_db: float | None = None,
        cpu_chunk: int | None = DEFAULT_CPU_CHUNK,
    ) -> None:
        super().__init__()
        self.sample_rate, self.cpu_chunk = sample_rate, cpu_chunk
        self.spectrogram = Spectrogram(
            win_length, hop_length, n_fft, window, periodic, center, pad_mode, power=2.0, cpu_chunk=None
        )
        self.mel = MelScale(n_mels, sample_rate, self.spectrogram.n_freqs, f_min, f_max, mel_scale, norm)
        self.to_db = AmplitudeToDB(amin=amin, top_db=top_db)

    @property
    def n_mels(self) -> int:
        return self.mel.fb_t.shape[0]

    def num_frames(self, num_samples: int) -> int:
        return self.spectrogram.num_frames(num_samples)

    def forward(self, x: Tensor) -> Tensor:
        """``(..., T) -> (..., n_mels, frames)``."""
        flat, lead = _as_batch(x)
        out = _chunked(lambda part: self.to_db(self.mel(self.spectrogram(part))), flat, self.cpu_chunk)
        return out.reshape(*lead, *out.shape[-2:])

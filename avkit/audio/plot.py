"""Plots of sound: the waveform, the power spectrum of one window, and the spectrogram.

The views are computed block by block (:func:`audio_overview`), and only at the
resolution they are drawn: a waveform longer than the plot is drawn as the
min-max envelope of the samples under each column, and a spectrogram with more
frames than columns as the mean power of the frames under each column. So an
hour of audio costs what one block costs, not what the whole file would.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from avkit.audio.io import AudioBlocks
from avkit.audio.transforms import PowerSpectrum, Spectrogram
from avkit.plotting import plt, save_figure

__all__ = ["AudioOverview", "audio_overview", "loudest_window", "plot_three_views", "save_figure"]

#: Columns the waveform and spectrogram are computed at: about a 15-inch figure's pixels.
COLUMNS = 1500


def loudest_window(wav: Tensor, win_length: int) -> int:
    """Start sample of the ``win_length`` window with the most energy (hop: win_length // 4) of ``wav (T,)``."""
    return _loudest([wav.reshape(-1)], win_length)[0]


def _loudest(blocks: Iterable[Tensor], win_length: int) -> tuple[int, Tensor | None]:
    """The loudest window of a signal given as consecutive blocks: its start and samples (0 and None when the
    signal is shorter than a window). Windows start at multiples of the hop, carried across blocks; the
    first of equally loud windows wins."""
    hop = max(1, win_length // 4)
    best, start, window, buf, offset = -1.0, 0, None, torch.zeros(0), 0  # offset: sample index of buf[0]
    for block in blocks:
        buf = torch.cat([buf, block])
        first = -(-offset // hop) * hop - offset
        if buf.shape[0] - first >= win_length:
            energy = buf[first:].square().unfold(0, win_length, hop).sum(-1)
            k = int(energy.argmax())
            if float(energy[k]) > best:
                best, start = float(energy[k]), offset + first + k * hop
                window = buf[first + k * hop : first + k * hop + win_length].clone()
            drop = first + energy.shape[0] * hop
            buf, offset = buf[drop:], offset + drop
    return start, window


@dataclass
class AudioOverview:
    """What :func:`plot_three_views` draws.

    Attributes:
        envelope: ``(C, 2)`` min and max of the ``samples_per_column`` samples under each column
            (with one sample per column, the waveform itself).
        window_start, window: the loudest ``win_length`` window (:func:`loudest_window`'s rule) and its samples.
        spectrogram: ``(F, C')`` mean power of the ``frames_per_column`` frames under each column.
    """

    sample_rate: int
    num_samples: int
    samples_per_column: int
    envelope: np.ndarray
    window_start: int
    window: Tensor
    spectrogram: Tensor
    frames_per_column: int


def _pool(pieces: Iterable[Tensor], size: int, reduce: str) -> Iterable[Tensor]:
    """Consecutive groups of ``size`` along the last axis of a stream of pieces, reduced (the last may be short)."""
    carry: Tensor | None = None
    for piece in pieces:
        carry = piece if carry is None else torch.cat([carry, piece], dim=-1)
        whole = carry.shape[-1] // size * size
        if whole:
            yield _reduce(carry[..., :whole].unflatten(-1, (-1, size)), reduce)
            carry = carry[..., whole:]
    if carry is not None and carry.shape[-1]:
        yield _reduce(carry.unsqueeze(-2), reduce)


def _reduce(groups: Tensor, reduce: str) -> Tensor:
    if reduce == "mean":
        return groups.mean(-1)
    return torch.stack([groups.amin(-1), groups.amax(-1)], dim=-1)


def audio_overview(
    blocks: Iterable[Tensor], num_samples: int, sample_rate: int, win_length: int = 400, hop_length: int = 160,
    n_fft: int = 512, columns: int = COLUMNS,
) -> AudioOverview:  # fmt: skip
    """One pass over consecutive mono blocks ``(T_i,)``: the envelope, the loudest window and the spectrogram.

    ``blocks`` is iterated three times (an :class:`~avkit.audio.io.AudioBlocks` or a list).
    """
    spc = max(1, math.ceil(num_samples / columns))
    envelope = torch.cat(list(_pool(blocks, spc, "minmax")), dim=0).numpy()
    start, window = _loudest(blocks, win_length)
    if window is None:  # shorter than one window: it starts at 0, zero-padded
        whole = torch.cat(list(blocks))
        window = torch.nn.functional.pad(whole, (0, max(0, win_length - whole.shape[0])))[:win_length]
    spectrogram = Spectrogram(win_length, hop_length, n_fft, window="hamming")
    fpc = max(1, math.ceil(spectrogram.num_frames(num_samples) / columns))
    spec = torch.cat(list(_pool(spectrogram.stream(blocks), fpc, "mean")), dim=-1)
    return AudioOverview(sample_rate, num_samples, spc, envelope, start, window, spec, fpc)


def plot_three_views(
    audio: Tensor | AudioBlocks,
    sample_rate: int | None = None,
    win_length: int = 400,
    hop_length: int = 160,
    n_fft: int = 512,
    title: str | None = None,
) -> plt.Figure:
    """Waveform, power spectrum of the loudest window, and Hamming spectrogram, side by side.

    Args:
        audio: a mono waveform ``(T,)`` at ``sample_rate``, or a file read block by block
            (``AudioBlocks(path, sample_rate)``; ``sample_rate`` is then its own).
    """
    if isinstance(audio, AudioBlocks):
        blocks, num_samples, sample_rate = audio, audio.num_samples, audio.sample_rate
    else:
        wav = audio.detach().cpu().float().reshape(-1)
        blocks, num_samples = [wav], wav.shape[0]
    if sample_rate is None:
        raise ValueError("sample_rate is needed with a waveform")
    view = audio_overview(blocks, num_samples, sample_rate, win_length, hop_length, n_fft)
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    seconds = num_samples / sample_rate

    ax = axes[0]
    if view.samples_per_column == 1:
        ax.plot(np.arange(num_samples) / sample_rate, view.envelope[:, 0], lw=0.6, color="tab:blue")
    else:
        t = np.arange(len(view.envelope)) * view.samples_per_column / sample_rate
        ax.fill_between(t, view.envelope[:, 0], view.envelope[:, 1], lw=0.4, color="tab:blue",
                        label=f"min-max per {1000 * view.samples_per_column / sample_rate:.0f} ms")  # fmt: skip
    ax.axvspan(view.window_start / sample_rate, (view.window_start + win_length) / sample_rate, color="tab:orange",
               alpha=0.3, label=f"window ({1000 * win_length / sample_rate:.0f} ms)")  # fmt: skip
    ax.set(xlabel="time (s)", ylabel="amplitude", title="waveform", xlim=(0, seconds))
    ax.legend(loc="upper right", fontsize=8)

    ax = axes[1]
    power = PowerSpectrum(win_length, n_fft, window="hamming", scaling="spectrum")(view.window)
    freqs = np.arange(power.shape[-1]) * sample_rate / n_fft
    ax.plot(freqs, 10 * np.log10(np.maximum(power.numpy(), 1e-12)), lw=0.8, color="tab:orange")
    ax.set(xlabel="frequency (Hz)", ylabel="power (dB)",
           title=f"power spectrum of one Hamming window\nat {view.window_start / sample_rate:.2f} s")  # fmt: skip

    ax = axes[2]
    db = 10 * np.log10(np.maximum(view.spectrogram.numpy(), 1e-10))
    im = ax.imshow(db, origin="lower", aspect="auto", extent=(0.0, seconds, 0.0, sample_rate / 2), cmap="magma",
                   vmin=db.max() - 80, vmax=db.max())  # fmt: skip
    pooled = f"\nmean of {view.frames_per_column} frames per column" if view.frames_per_column > 1 else ""
    ax.set(xlabel="time (s)", ylabel="frequency (Hz)",
           title=f"spectrogram (window A={win_length}, hop B={hop_length}{pooled})")  # fmt: skip
    fig.colorbar(im, ax=ax, label="power (dB)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig

"""Plots of sound: the waveform, the power spectrum of one window, and the spectrogram."""

from __future__ import annotations

import numpy as np
import torch

from avkit.audio.transforms import PowerSpectrum, Spectrogram
from avkit.plotting import plt, save_figure

__all__ = ["loudest_window", "plot_three_views", "save_figure"]


def loudest_window(wav: torch.Tensor, win_length: int) -> int:
    """Start sample of the ``win_length`` window with the most energy (hop: win_length // 4)."""
    if wav.shape[-1] <= win_length:
        return 0
    energy = wav.square().unfold(-1, win_length, max(1, win_length // 4)).sum(-1)
    return int(energy.argmax()) * max(1, win_length // 4)


def plot_three_views(
    wav: torch.Tensor,
    sample_rate: int,
    win_length: int = 400,
    hop_length: int = 160,
    n_fft: int = 512,
    title: str | None = None,
) -> plt.Figure:
    """Waveform, power spectrum of the loudest window, and Hamming spectrogram, side by side.

    Args:
        wav: mono waveform ``(T,)``.
    """
    wav = wav.detach().cpu().float().reshape(-1)
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    t = np.arange(wav.shape[0]) / sample_rate
    start = loudest_window(wav, win_length)

    ax = axes[0]
    ax.plot(t, wav.numpy(), lw=0.6, color="tab:blue")
    ax.axvspan(start / sample_rate, (start + win_length) / sample_rate, color="tab:orange", alpha=0.3,
               label=f"window ({1000 * win_length / sample_rate:.0f} ms)")  # fmt: skip
    ax.set(xlabel="time (s)", ylabel="amplitude", title="waveform")
    ax.legend(loc="upper right", fontsize=8)

    ax = axes[1]
    segment = torch.nn.functional.pad(wav[start : start + win_length], (0, max(0, win_length - (wav.shape[0] - start))))
    power = PowerSpectrum(win_length, n_fft, window="hamming", scaling="spectrum")(segment)
    freqs = np.arange(power.shape[-1]) * sample_rate / n_fft
    ax.plot(freqs, 10 * np.log10(np.maximum(power.numpy(), 1e-12)), lw=0.8, color="tab:orange")
    ax.set(xlabel="frequency (Hz)", ylabel="power (dB)", title=f"power spectrum of one Hamming window at {start / sample_rate:.2f} s")

    ax = axes[2]
    spec = Spectrogram(win_length, hop_length, n_fft, window="hamming")(wav)
    db = 10 * np.log10(np.maximum(spec.numpy(), 1e-10))
    extent = (0.0, wav.shape[0] / sample_rate, 0.0, sample_rate / 2)
    im = ax.imshow(db, origin="lower", aspect="auto", extent=extent, cmap="magma", vmin=db.max() - 80, vmax=db.max())
    ax.set(xlabel="time (s)", ylabel="frequency (Hz)",
           title=f"spectrogram (window A={win_length}, hop B={hop_length})")  # fmt: skip
    fig.colorbar(im, ax=ax, label="power (dB)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig

"""``unit_vocoder``: speech units -> speech (each unit's duration and frames, then Griffin-Lim).

    batch.sequences["units"], ["unit_durations"] ─▶ UnitVocoder ─▶ log-magnitude frames (B, T, bins)
    audio tower's input (waveform, not encoded) ─▶ |STFT| (or its mel) ─▶ log ─▶ the frames' target
    speak(units): predicted durations ─▶ frames ─▶ exp ─▶ (InverseMelScale) ─▶ GriffinLim ─▶ waveform

Trained on real speech with the unit sequences and durations ``avkit units encode``
writes. The STFT has the audio tower's window, hop and FFT size, so unit durations,
counted in the front-end's frames at that hop, count these frames too.

    [towers.audio]
    preprocess = { seconds = 1.0 }
    [heads.vocoder]
    kind = "unit_vocoder"
    vocab = 50
    frames = "linear"        # or "mel": fewer bins to predict, but mel inversion loses detail
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torchaudio
from torch import Tensor

from avkit.data.batch import Batch
from avkit.errors import ConfigError
from avkit.models.encoders import EncoderOutput
from avkit.models.heads.base import Head, HeadContext, check_tokens, register_head
from avkit.models.unit_vocoder import UnitVocoder

FLOOR = 1e-5  # magnitude floor before the log


@register_head("unit_vocoder")
class UnitVocoderHead(Head):
    """Loss terms ``frames`` (L1 of log-magnitudes, with the true durations) and ``duration`` (MSE of
    log(1 + frames)). Metrics: ``frame_l1``, ``duration_mse``; ``score`` = −frame_l1.

    Args:
        tower: the audio tower whose waveforms are the targets (read, not encoded).
        units, durations: the manifest fields of unit sequences and frames per unit.
        vocab: the number of units. frames: ``linear`` (|STFT|) or ``mel`` (the tower's n_mels).
        hidden, layers: model size. griffin_lim_iterations: phase reconstruction at synthesis.
    """

    def __init__(self, context: HeadContext, tower: str = "audio", units: str = "units",
                 durations: str = "unit_durations", vocab: int = 50, frames: str = "linear", hidden: int = 192,
                 layers: int = 3, griffin_lim_iterations: int = 32) -> None:  # fmt: skip
        super().__init__()
        context.require(tower)
        if context.towers[tower].modality != "audio":
            raise ConfigError(f"unit_vocoder: tower {tower!r} must read audio")
        if frames not in ("linear", "mel"):
            raise ConfigError(f"unit_vocoder: frames is 'linear' or 'mel', not {frames!r}")
        s = context.towers[tower].settings
        self.input_towers, self.targets, self.loss_terms = (tower,), (units, durations), ("frames", "duration")
        self.units_field, self.durations_field, self.frames = units, durations, frames
        self.sample_rate = int(s["sample_rate"])
        stft = dict(n_fft=int(s["n_fft"]), win_length=int(s["win_length"]), hop_length=int(s["hop_length"]), power=1.0)
        n_stft = stft["n_fft"] // 2 + 1
        self.spectrogram = torchaudio.transforms.Spectrogram(**stft)
        self.griffin_lim = torchaudio.transforms.GriffinLim(n_iter=griffin_lim_iterations, **stft)
        if frames == "mel":
            self.mel = torchaudio.transforms.MelScale(int(s["n_mels"]), self.sample_rate, n_stft=n_stft)
            self.inverse_mel = torchaudio.transforms.InverseMelScale(n_stft, int(s["n_mels"]), self.sample_rate)
        self.vocoder = UnitVocoder(vocab, int(s["n_mels"]) if frames == "mel" else n_stft, hidden, layers)

    @property
    def tower(self) -> str:
        return self.input_towers[0]

    def target_frames(self, wav: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor]:
        """Waveforms ``(B, T)`` -> ``(log-magnitude frames (B, frames, bins), valid frames (B,))``."""
        mag = self.spectrogram(wav)
        if self.frames == "mel":
            mag = self.mel(mag)
        hop = self.spectrogram.hop_length
        valid = (lengths // hop + 1) if lengths is not None else torch.full((len(wav),), mag.shape[-1], device=wav.device)
        return mag.clamp_min(FLOOR).log().transpose(1, 2), valid

    def _losses(self, batch: Batch) -> tuple[Tensor, Tensor]:
        units, durations = batch.sequences[self.units_field], batch.sequences[self.durations_field]
        if units.shape != durations.shape:
            raise ConfigError(f"unit_vocoder: {self.units_field!r} and {self.durations_field!r} differ in length")
        check_tokens(units, self.vocoder.vocab, "unit_vocoder", self.units_field)
        if self.tower in batch.precomputed:
            raise ConfigError(f"unit_vocoder: tower {self.tower!r} reads a feature cache, but the vocoder's targets are "
                              "computed from waveforms; drop data.feature_cache for it")  # fmt: skip
        target, valid = self.target_frames(batch.inputs[self.tower], batch.lengths.get(self.tower))
        total = durations.clamp_min(0).sum(1)
        off = (total - valid).abs() > 2
        if bool(off.any()):
            i = int(off.nonzero()[0])
            raise ConfigError(f"unit_vocoder: item {batch.ids[i]!r}: its unit durations add up to {int(total[i])} frames, "
                              f"but its clip has {int(valid[i])} at hop {self.spectrogram.hop_length}; encode the units with "
                              "this tower's front-end settings, of whole clips (seconds = none for longer clips)")  # fmt: skip
        return self.vocoder.losses(units, durations, target, valid)

    def forward(self, outputs: Mapping[str, EncoderOutput], batch: Batch) -> dict[str, Tensor]:
        frames, duration = self._losses(batch)
        return {"frames": frames, "duration": duration}

    def magnitude(self, log_frames: Tensor) -> Tensor:
        """Log-magnitude frames ``(T, bins)`` -> a linear magnitude spectrogram ``(n_fft/2 + 1, T)``."""
        mag = log_frames.exp().T
        return self.inverse_mel(mag).clamp_min(0) if self.frames == "mel" else mag

    @torch.no_grad()
    def speak(self, units: list[int], phase_seed: int | None = None) -> Tensor:
        """A unit sequence -> a waveform ``(T,)`` at the tower's sample rate. Griffin-Lim starts from random
        phases: ``phase_seed`` draws them from that seed (the global generators left as they were), so the same
        units always give the same waveform; None draws them from the global generator."""
        if not units:
            return torch.zeros(0)
        frames = self.vocoder.synthesize(units)
        hop, n_fft = self.griffin_lim.hop_length, self.griffin_lim.n_fft
        short = n_fft // 2 // hop + 2 - len(frames)  # Griffin-Lim's reflect padding needs over half a window of signal
        if short > 0:  # a sequence shorter than that ends in silence
            frames = torch.cat([frames, frames.new_full((short, frames.shape[1]), math.log(FLOOR))])
        cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []  # manual_seed reseeds these too
        with torch.random.fork_rng(devices=cuda, enabled=phase_seed is not None):
            if phase_seed is not None:
                torch.manual_seed(phase_seed)
            return self.griffin_lim(self.magnitude(frames)).cpu()

    def evaluator(self) -> VocoderEvaluator:
        return VocoderEvaluator(self)


class VocoderEvaluator:
    """Frame L1 (true durations) and duration MSE, averaged over batches."""

    def __init__(self, head: UnitVocoderHead) -> None:
        self.head = head
        self.l1, self.mse, self.batches = 0.0, 0.0, 0

    def update(self, outputs: Mapping[str, EncoderOutput], batch: Batch) -> None:
        l1, mse = self.head._losses(batch)
        self.l1, self.mse, self.batches = self.l1 + float(l1), self.mse + float(mse), self.batches + 1

    def compute(self) -> dict[str, float]:
        n = max(self.batches, 1)
        return {"frame_l1": self.l1 / n, "duration_mse": self.mse / n, "score": -self.l1 / n}

"""Units -> spectrogram frames: each unit's duration, then its frames (a small FastSpeech-like model).

    units (B, U) ─▶ embedding ─▶ conv ×L ─▶ h (B, U, H) ─┬▶ linear ─▶ log(1 + duration)   (B, U)
                                                        └▶ repeat each h by its duration (true ones in training)
                                                            + the frame's position within its unit
                                                            ─▶ conv ×L ─▶ linear ─▶ log-magnitude frames (B, T, bins)

The frames are a linear-magnitude or a mel spectrogram (the head's choice); a
phase reconstruction (Griffin-Lim) turns them into a waveform.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

MAX_POSITION = 64  # frames within a unit that get their own position embedding; later ones share the last


def _convs(hidden: int, layers: int, kernel: int, dropout: float) -> nn.ModuleList:
    return nn.ModuleList(
        nn.Sequential(nn.Conv1d(hidden, hidden, kernel, padding=kernel // 2), nn.ReLU(), nn.Dropout(dropout))
        for _ in range(layers)
    )


def _run(convs: nn.ModuleList, norms: nn.ModuleList, x: Tensor, mask: Tensor) -> Tensor:
    """Residual conv blocks over ``x (B, T, H)``; padding (``mask (B, T)`` False) is zeroed between blocks."""
    for conv, norm in zip(convs, norms, strict=True):
        x = norm(x + conv((x * mask[..., None]).transpose(1, 2)).transpose(1, 2))
    return x * mask[..., None]


class UnitVocoder(nn.Module):
    """Args: vocab: unit count. bins: spectrogram bins. hidden, layers, kernel, dropout: sizes."""

    def __init__(self, vocab: int, bins: int, hidden: int = 192, layers: int = 3, kernel: int = 5,
                 dropout: float = 0.1) -> None:  # fmt: skip
        super().__init__()
        self.vocab = vocab
        self.embed = nn.Embedding(vocab, hidden)
        self.position = nn.Embedding(MAX_POSITION, hidden)
        self.encoder, self.decoder = _convs(hidden, layers, kernel, dropout), _convs(hidden, layers, kernel, dropout)
        self.encoder_norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(layers))
        self.decoder_norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(layers))
        self.duration = nn.Linear(hidden, 1)
        self.out = nn.Linear(hidden, bins)

    def encode(self, units: Tensor) -> tuple[Tensor, Tensor]:
        """``units (B, U)`` padded with -1 -> ``(hidden (B, U, H), predicted log(1 + duration) (B, U))``."""
        mask = units >= 0
        h = _run(self.encoder, self.encoder_norms, self.embed(units.clamp_min(0)), mask)
        return h, self.duration(h).squeeze(-1) * mask

    def expand(self, h: Tensor, durations: Tensor) -> tuple[Tensor, Tensor]:
        """Repeat each unit's ``h (B, U, H)`` ``durations (B, U)`` times -> ``(frames (B, T, H), mask (B, T))``."""
        durations = durations.clamp_min(0).long()
        total = durations.sum(1)
        frames = h.new_zeros(len(h), int(total.max()), h.shape[-1])
        for i in range(len(h)):
            reps = durations[i]
            seq = torch.repeat_interleave(h[i], reps, dim=0)
            within = torch.cat([torch.arange(int(n), device=h.device) for n in reps]).clamp_max(MAX_POSITION - 1)
            frames[i, : len(seq)] = seq + self.position(within)
        mask = torch.arange(frames.shape[1], device=h.device)[None] < total[:, None]
        return frames, mask

    def forward(self, units: Tensor, durations: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(log-magnitude frames (B, T, bins), frame mask (B, T), predicted log(1 + duration) (B, U))``."""
        h, log_duration = self.encode(units)
        frames, mask = self.expand(h, durations)
        return self.out(_run(self.decoder, self.decoder_norms, frames, mask)), mask, log_duration

    def losses(self, units: Tensor, durations: Tensor, target: Tensor, target_frames: Tensor) -> tuple[Tensor, Tensor]:
        """``(frame L1, duration MSE)``; ``target (B, T', bins)`` log-magnitudes with ``target_frames (B,)`` valid."""
        frames, mask, log_duration = self(units, durations)
        t = min(frames.shape[1], target.shape[1])
        valid = mask[:, :t] & (torch.arange(t, device=target.device)[None] < target_frames[:, None])
        l1 = ((frames[:, :t] - target[:, :t]).abs().mean(-1) * valid).sum() / valid.sum().clamp_min(1)
        unit_mask = units >= 0
        wanted = torch.log1p(durations.clamp_min(0).float())
        mse = (((log_duration - wanted) ** 2) * unit_mask).sum() / unit_mask.sum().clamp_min(1)
        return l1, mse

    @torch.no_grad()
    def synthesize(self, units: list[int]) -> Tensor:
        """One unit sequence -> log-magnitude frames ``(T, bins)``, with predicted durations (at least one frame each)."""
        x = torch.tensor([units], dtype=torch.long, device=self.out.weight.device)
        h, log_duration = self.encode(x)
        durations = torch.expm1(log_duration).round().clamp_min(1).long()
        frames, mask = self.expand(h, durations)
        return self.out(_run(self.decoder, self.decoder_norms, frames, mask))[0]


__all__ = ["UnitVocoder"]

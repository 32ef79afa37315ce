"""Pairwise matching losses over L2-normalised embeddings, row ``i`` of each side a pair.

Losses are modules of their own (as in open_clip's ``ClipLoss``), separate from
the models; a loss may own parameters (InfoNCE's temperature).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avkit.registry import Registry

#: Pairwise losses, by name: ``PAIR_LOSSES.create("infonce", init_temperature=0.07)``.
PAIR_LOSSES: Registry[nn.Module] = Registry("pair loss")


@PAIR_LOSSES.register("infonce")
class InfoNCELoss(nn.Module):
    """Symmetric InfoNCE with a learnable, clamped temperature, as in CLIP.

    ``loss = (CE(s * A Bᵀ, I) + CE(s * B Aᵀ, I)) / 2`` with ``s = exp(logit_scale)``,
    ``logit_scale`` initialised at ``ln(1 / init_temperature)`` and clamped to
    ``[0, ln(max_scale)]`` (temperature between ``1 / max_scale`` and 1).

    Shapes: ``a (B, D)``, ``b (B, D)`` -> scalar.
    """

    def __init__(self, init_temperature: float = 0.07, max_scale: float = 100.0, learnable: bool = True) -> None:
        super().__init__()
        if not 0 < init_temperature <= 1:
            raise ValueError(f"init_temperature must be in (0, 1], got {init_temperature}")
        self.max_log_scale = math.log(max_scale)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / init_temperature)), requires_grad=learnable)

    @property
    def temperature(self) -> float:
        return float(1 / self.logit_scale.detach().clamp(0, self.max_log_scale).exp())

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        scale = self.logit_scale.clamp(0, self.max_log_scale).exp()
        logits = scale * a @ b.T
        target = torch.arange(a.shape[0], device=a.device)
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


@PAIR_LOSSES.register("triplet")
class TripletMarginLoss(nn.Module):
    """Bidirectional hinge ``max(0, margin - s(a, b⁺) + s(a, b⁻))`` on cosine similarity.

    ``hardest=True`` uses each anchor's hardest in-batch negative (VSE++);
    otherwise the hinge is averaged over all negatives.

    Shapes: ``a (B, D)``, ``b (B, D)`` -> scalar.
    """

    def __init__(self, margin: float = 0.2, hardest: bool = True) -> None:
        super().__init__()
        self.margin, self.hardest = margin, hardest

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        sim = a @ b.T
        pos = sim.diagonal()
        off = ~torch.eye(sim.shape[0], dtype=torch.bool, device=sim.device)
        cost_a = (self.margin - pos[:, None] + sim).clamp(min=0) * off  # anchor a_i, negatives b_j
        cost_b = (self.margin - pos[None, :] + sim).clamp(min=0) * off  # anchor b_j, negatives a_i
        if self.hardest:
            return (cost_a.amax(dim=1).mean() + cost_b.amax(dim=0).mean()) / 2
        n_neg = max(1, sim.shape[0] - 1)
        return (cost_a.sum(dim=1).mean() + cost_b.sum(dim=0).mean()) / (2 * n_neg)

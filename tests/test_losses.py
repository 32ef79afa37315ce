"""Losses: each one's defining property, and its edge cases."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from avkit.losses import DistillationKLLoss, InfoNCELoss, SemanticRegularizer, TripletMarginLoss


def _pairs(n: int = 8, d: int = 16, noise: float = 0.05) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    a = F.normalize(torch.randn(n, d, generator=g), dim=-1)
    return a, F.normalize(a + noise * torch.randn(n, d, generator=g), dim=-1)


def test_infonce_prefers_matched_pairs_and_is_symmetric():
    a, b = _pairs()
    loss = InfoNCELoss()
    assert loss(a, b) < loss(a, b.roll(1, 0))
    assert torch.allclose(loss(a, b), loss(b, a))
    # equals the CLIP formula written out
    logits = a @ b.T / 0.07
    ref = (F.cross_entropy(logits, torch.arange(8)) + F.cross_entropy(logits.T, torch.arange(8))) / 2
    assert torch.allclose(loss(a, b), ref, atol=1e-5)


def test_infonce_temperature_is_learnable_and_clamped():
    loss = InfoNCELoss(init_temperature=0.07, max_scale=100)
    assert loss.logit_scale.requires_grad and loss.temperature == pytest.approx(0.07)
    with torch.no_grad():
        loss.logit_scale.fill_(10.0)  # scale e^10 would be far past the cap
    assert loss.temperature == pytest.approx(0.01)
    a, b = _pairs()
    loss(a, b).backward()
    assert loss.logit_scale.grad is not None
    with pytest.raises(ValueError, match="init_temperature"):
        InfoNCELoss(init_temperature=0)


def test_triplet_is_zero_once_the_margin_holds_and_positive_otherwise():
    eye = torch.eye(4)
    assert float(TripletMarginLoss(margin=0.5)(eye, eye)) == 0.0  # positives 1, negatives 0
    assert float(TripletMarginLoss(margin=0.5)(eye, eye.roll(1, 0))) > 0
    a, b = _pairs()
    assert TripletMarginLoss(hardest=True)(a, b) >= TripletMarginLoss(hardest=False)(a, b)


def test_semantic_regulariser_ignores_unlabelled_items():
    a, b = _pairs()
    reg = SemanticRegularizer(16, 3)  # its weight is the run config's (loss_weights.contrastive.semantic)
    labels = torch.tensor([0, 1, 2, 0, -1, -1, 1, 2])
    full = reg([a, b], labels)
    expected = (F.cross_entropy(reg.classifier(a[labels >= 0]), labels[labels >= 0])
                      + F.cross_entropy(reg.classifier(b[labels >= 0]), labels[labels >= 0])) / 2  # fmt: skip
    assert torch.allclose(full, expected, atol=1e-6)
    assert float(reg([a, b], torch.full((8,), -1))) == 0.0


def test_distillation_kl_is_zero_on_agreement_and_scales_with_t_squared():
    t = torch.randn(5, 10)
    for temp in (1.0, 4.0):
        assert float(DistillationKLLoss(temp)(t.clone(), t)) == pytest.approx(0.0, abs=1e-6)
    s = torch.randn(5, 10)
    manual = (F.softmax(t / 2, -1) * (F.log_softmax(t / 2, -1) - F.log_softmax(s / 2, -1))).sum(-1).mean() * 4
    assert float(DistillationKLLoss(2.0)(s, t)) == pytest.approx(float(manual), rel=1e-5)
    s.requires_grad_(True)
    t.requires_grad_(True)
    DistillationKLLoss(2.0)(s, t).backward()
    assert t.grad is None and s.grad is not None  # the teacher gets no gradient
    assert not math.isnan(float(s.grad.abs().sum()))

"""Retrieval metrics against hand-computed rankings."""

from __future__ import annotations

import pytest
import torch

from avkit.evaluation import retrieval_metrics


def test_class_level_metrics_by_hand():
    # one query along x; gallery at decreasing similarity: labels [1, 0, 1, 0]
    q = torch.tensor([[1.0, 0.0]])
    g = torch.tensor([[0.9, 0.1], [0.8, 0.3], [0.5, 0.5], [0.0, 1.0]])
    m = retrieval_metrics(q, g, torch.tensor([0]), torch.tensor([1, 0, 1, 0]), ks=(1, 2))
    # relevant items are at ranks 2 and 4: AP = (1/2 + 2/4) / 2
    assert m["R@1"] == 0.0 and m["R@2"] == 1.0
    assert m["mAP"] == pytest.approx(0.5)
    assert m["median_rank"] == 2.0


def test_pair_level_when_labels_are_missing():
    g = torch.eye(3)
    q = torch.tensor([[1.0, 0, 0], [1.0, 0.1, 0], [0, 0, 1.0]])  # query 1 finds item 0 first
    m = retrieval_metrics(q, g, ks=(1, 2))
    assert m["R@1"] == pytest.approx(2 / 3) and m["R@2"] == 1.0
    assert m["mAP"] == pytest.approx((1 + 0.5 + 1) / 3)
    with pytest.raises(ValueError, match="as many queries as gallery"):
        retrieval_metrics(q[:2], g)


def test_random_embeddings_score_near_chance():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(10).repeat(40)
    m = retrieval_metrics(torch.randn(400, 32, generator=g), torch.randn(400, 32, generator=g), labels, labels)
    assert 0.05 < m["R@1"] < 0.2 and 0.07 < m["mAP"] < 0.15

"""Retrieval metrics: Recall@K, mean average precision and median rank.

Relevance is class-level when both sides have labels (a result is relevant if
its label equals the query's) and pair-level otherwise (query ``i`` matches
gallery item ``i`` only).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def relevance(n_queries: int, n_gallery: int, query_labels: Tensor | None, gallery_labels: Tensor | None) -> Tensor:
    """``(Q, G)`` bool: which gallery items are relevant to which query."""
    if query_labels is not None and gallery_labels is not None:
        return query_labels[:, None] == gallery_labels[None, :]
    if n_queries != n_gallery:
        raise ValueError(f"pair-level relevance needs as many queries as gallery items, got {n_queries} and {n_gallery}")
    return torch.eye(n_queries, dtype=torch.bool)


def retrieval_metrics(
    queries: Tensor,
    gallery: Tensor,
    query_labels: Tensor | None = None,
    gallery_labels: Tensor | None = None,
    ks: Sequence[int] = (1, 5, 10),
    chunk: int = 1024,
) -> dict[str, float]:
    """Rank the whole gallery for each query by cosine similarity and score the ranking.

    Args:
        queries: ``(Q, D)`` embeddings; gallery: ``(G, D)`` (normalised here).
        query_labels, gallery_labels: ``(Q,)`` and ``(G,)`` class indices, or None
            for pair-level relevance.

    Returns:
        ``R@k`` for each k (fraction of queries with a relevant item in the top k),
        ``mAP``, ``median_rank`` (1-based rank of the first relevant item), and
        ``queries`` (how many had at least one relevant item; others are left out).
    """
    q = torch.nn.functional.normalize(queries.float(), dim=-1)
    g = torch.nn.functional.normalize(gallery.float(), dim=-1)
    rel_all = relevance(len(q), len(g), query_labels, gallery_labels)
    hits = {k: 0.0 for k in ks}
    ap_sum, first_ranks = 0.0, []
    positions = torch.arange(1, len(g) + 1, dtype=torch.float32)
    for start in range(0, len(q), chunk):
        sims = q[start : start + chunk] @ g.T
        order = sims.argsort(dim=1, descending=True, stable=True)
        rel = rel_all[start : start + chunk].gather(1, order)
        has = rel.any(dim=1)
        rel = rel[has].float()
        if rel.numel() == 0:
            continue
        cum = rel.cumsum(dim=1)
        ap_sum += float(((cum / positions) * rel).sum(dim=1).div(rel.sum(dim=1)).sum())
        first = rel.argmax(dim=1) + 1
        first_ranks.append(first)
        for k in ks:
            hits[k] += float((first <= k).sum())
    n = sum(len(f) for f in first_ranks)
    if n == 0:
        raise ValueError("no query has a relevant item in the gallery")
    ranks = torch.cat(first_ranks).float()
    out = {f"R@{k}": hits[k] / n for k in ks}
    out["mAP"] = ap_sum / n
    out["median_rank"] = float(ranks.median())
    out["queries"] = float(n)
    return out

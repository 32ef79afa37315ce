"""Operating points: the fastest search parameters of an index that reach a target recall.

    index = build_index([emb], "IVF1024,Flat")
    point = tune_search(index, emb.vectors.numpy(), target_recall=0.95)   # sets index.search_params
    point.params, point.recall, point.ms_per_query

Every parameter combination faiss's ``ParameterSpace`` knows for the index
(``nprobe``, ``efSearch``, ``quantizer_efSearch``, ``k_factor_rf``, ...) is a
candidate; for an IVF index that can probe by margin
(:mod:`avkit.retrieval.margin`: no transform before it, exact re-ranking if
any), each also with ``probe_margin`` at the margins within which the
sample's median query finds 2, 4, 8... lists, from an eighth of ``nprobe``
to half of it (a narrower margin is tried with a smaller ``nprobe``).
Each is measured on a sample of the indexed vectors held out from their own
results (leave-one-out): each sample vector queries the index, its
own entry is ignored, and recall@k is the share of its k true nearest
neighbours (exact search over every other vector) that the search returns.
Speed is measured one query at a time (the fastest of 3 passes over 100 of
the sample queries), since that is what a query service sees.
``faiss.OperatingPoints`` keeps the Pareto front of (recall, time). A
combination that is at least as large in every parameter (no margin counting
as the largest) as one that already reached the target is skipped: it can
only be slower.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

import faiss
import numpy as np

from avkit.retrieval.index import RetrievalError, RetrievalIndex
from avkit.retrieval.margin import PROBE_MARGIN, MarginSearch

log = logging.getLogger(__name__)
#: margins are tried for fewer lists than this (faiss's ``ParameterSpace`` tries nprobe up to 4096)
MARGIN_LISTS = 4096


@dataclass(frozen=True)
class OperatingPoint:
    """A measured setting: its parameters, recall@k on the sample, and search time per query (one at a time)."""

    params: dict[str, float]
    recall: float
    ms_per_query: float
    target_recall: float
    k: int
    sample: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _parse(name: str) -> dict[str, int]:
    """``"nprobe=16,quantizer_efSearch=64"`` -> ``{"nprobe": 16, "quantizer_efSearch": 64}``."""
    return {key: int(float(value)) for key, value in (part.split("=") for part in name.split(",") if part)}


def margins(index: RetrievalIndex, queries: np.ndarray) -> dict[float, int]:
    """Candidate ``probe_margin`` values for prepared ``queries (Q, D)``, each with the number of lists
    (2, 4, 8... below nlist, and below ``MARGIN_LISTS``) that the median query finds within it; empty for an
    index that cannot probe by margin."""
    try:
        ivf = MarginSearch.of(index.index).ivf
    except ValueError:
        return {}
    reach = min(ivf.nlist, MARGIN_LISTS)
    scores, _ = ivf.quantizer.search(queries, reach)
    gaps = np.abs(scores - scores[:, :1])  # how far each list's centroid scores from the query's best
    out: dict[float, int] = {}
    for lists in (1 << e for e in range(1, (reach - 1).bit_length())):
        margin = float(f"{np.median(gaps[:, lists - 1]):.3g}")  # 3 digits: a setting people can read and type
        if margin > 0:
            out.setdefault(margin, lists)
    return out


def _inner(index: faiss.Index) -> faiss.Index:
    """The index whose parameters faiss enumerates (through an id map)."""
    return faiss.downcast_index(index.index) if isinstance(index, (faiss.IndexIDMap, faiss.IndexIDMap2)) else index


def measure(index: RetrievalIndex, queries: np.ndarray, own_ids: np.ndarray, truth: np.ndarray, k: int,
            timed: int = 100, passes: int = 3) -> tuple[float, float]:  # fmt: skip
    """Recall@k against ``truth (Q, k)`` ignoring each query's own id (one batch), and seconds per query one
    at a time (the fastest of ``passes`` over ``timed`` queries)."""
    _, found = index.faiss_search(queries, k + 1)
    hits = [len(set(row[row != own][:k].tolist()) & set(true.tolist())) for row, own, true in zip(found, own_ids, truth)]
    best = float("inf")
    for _ in range(passes):
        start = time.perf_counter()
        for i in range(min(timed, len(queries))):
            index.faiss_search(queries[i : i + 1], k + 1)
        best = min(best, (time.perf_counter() - start) / min(timed, len(queries)))
    return float(np.mean(hits)) / k, best


def exact_neighbours(vectors: np.ndarray, rows: np.ndarray, k: int, prepare: Any, metric: str,
                     chunk: int = 200_000) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The prepared query vectors ``vectors[rows]`` and their ``k`` nearest rows other than themselves,
    by exact search over ``vectors`` in chunks (one chunk prepared at a time: bounded extra memory)."""
    queries = prepare(np.ascontiguousarray(vectors[rows], dtype=np.float32))
    metric_type = faiss.METRIC_INNER_PRODUCT if metric == "cosine" else faiss.METRIC_L2
    best_d = np.full((len(rows), k + 1), -np.inf if metric == "cosine" else np.inf, dtype=np.float32)
    best_i = np.full((len(rows), k + 1), -1, dtype=np.int64)
    for start in range(0, len(vectors), chunk):
        part = prepare(np.ascontiguousarray(vectors[start : start + chunk], dtype=np.float32))
        d, i = faiss.knn(queries, part, min(k + 1, len(part)), metric=metric_type)
        d_all, i_all = np.concatenate([best_d, d], axis=1), np.concatenate([best_i, i + start], axis=1)
        order = np.argsort(-d_all if metric == "cosine" else d_all, axis=1, kind="stable")[:, : k + 1]
        best_d, best_i = np.take_along_axis(d_all, order, 1), np.take_along_axis(i_all, order, 1)
    truth = np.stack([row[row != own][:k] for row, own in zip(best_i, rows)])
    return queries, truth


def tune_search(
    index: RetrievalIndex, vectors: np.ndarray, target_recall: float, k: int = 10, sample: int = 1000, seed: int = 0
) -> OperatingPoint:
    """Set ``index.search_params`` to the fastest combination reaching ``target_recall``; return it.

    Args:
        vectors: ``(N, D)`` the indexed vectors, row ``i`` stored under faiss id ``i`` (as
            :func:`~avkit.retrieval.build_index` stores them).

    Raises:
        RetrievalError: a target outside (0, 1], too few vectors, or no combination reaching the target.
    """
    if not 0 < target_recall <= 1:
        raise RetrievalError(f"target recall must be in (0, 1], got {target_recall}")
    if index.index.ntotal != len(vectors) or len(vectors) <= k:
        raise RetrievalError(f"tuning needs the index's own {index.index.ntotal} vectors (more than k={k}), "
                             f"got {len(vectors)}")  # fmt: skip
    rng = np.random.default_rng(seed)
    own = np.sort(rng.choice(len(vectors), size=min(sample, len(vectors)), replace=False))
    queries, truth = exact_neighbours(vectors, own, k, index._prepare, index.metric)
    space = faiss.ParameterSpace()
    space.initialize(_inner(index.index))
    margin_lists = margins(index, queries)
    original, chosen = dict(index.search_params), None
    index.search_params = {}  # faiss_search sets none of faiss's: each combination is set on the faiss index below
    try:
        measure(index, queries[:50], own[:50], truth[:50], k, timed=10, passes=1)  # warm-up: the first search pays page faults
        points = faiss.OperatingPoints()
        reached: list[tuple[int, float]] = []  # (combination, margin) pairs; no margin is inf
        best: OperatingPoint | None = None
        for combination in range(space.n_combinations()):
            params: dict[str, float] = _parse(space.combination_name(combination))
            nprobe = params.get("nprobe", 0)
            tried = [m for m, lists in margin_lists.items() if nprobe / 8 <= lists < nprobe]  # 3 at most
            for margin in [*tried, float("inf")]:
                if any(space.combination_ge(combination, c) and margin >= m for c, m in reached):
                    continue  # more work than a setting that already reached the target
                space.set_index_parameters(index.index, combination)
                index.search_params = {PROBE_MARGIN: margin} if margin < float("inf") else {}
                recall, seconds = measure(index, queries, own, truth, k)
                setting = params | index.search_params
                name = ",".join(f"{key}={value:g}" for key, value in setting.items())
                points.add(recall, seconds, name)
                log.info("  %-40s recall@%d %.3f  %.3f ms/query", name or "(no parameters)", k, recall, 1000 * seconds)
                if recall >= target_recall:
                    reached.append((combination, margin))
                    if best is None or seconds < best.ms_per_query / 1000:
                        best = OperatingPoint(setting, recall, 1000 * seconds, target_recall, k, len(own))
        if best is None:
            top = max(range(points.all_pts.size()), key=lambda i: points.all_pts.at(i).perf, default=None)
            reachable = f"; the best it reached is {points.all_pts.at(top).perf:.3f}" if top is not None else ""
            raise RetrievalError(f"no search setting of {index.factory!r} reaches recall@{k} {target_recall}{reachable}. "
                                 "Use a less compressed index (more lists, Flat storage) or a lower target")  # fmt: skip
        chosen = best
    finally:  # the chosen setting, or (no setting reached the target, or an error) the parameters as they were
        index.replace_search_params(chosen.params if chosen is not None else original)
    index.operating_point = chosen.as_dict()
    log.info("chose %s: recall@%d %.3f at %.3f ms/query (target %.2f)", chosen.params or "(defaults)", k,
             chosen.recall, chosen.ms_per_query, target_recall)  # fmt: skip
    return chosen

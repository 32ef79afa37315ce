"""Probing by margin: an IVF query scans only the lists whose centroids score nearly as well as its best one.

    index.set_search_params({"nprobe": 256, "probe_margin": 0.3})   # at most 256 lists, within 0.3 of the best

Fixed ``nprobe`` spends as many lists on every query. With ``probe_margin``
m, a query probes the lists whose centroid score is within m of its best
list's (cosine: similarity >= best - m; l2: squared distance <= best + m),
at most ``nprobe`` of them: SPANN's query-aware pruning (Chen et al. 2021).
A query near one centre scans few lists; one between centres scans more.
On the benchmark's isotropic data it holds as many true neighbours in a
third fewer codes (docs/benchmarks.md). faiss has no such parameter, so the
search runs here: the coarse search, the mask, ``search_preassigned`` on the
kept lists, then, for an exactly re-ranked index (``...,RFlat``), the
re-ranking of ``k * k_factor_rf`` candidates against the stored vectors.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import faiss
import numpy as np

#: the search parameter's name (avkit's own; ``faiss.ParameterSpace`` does not know it)
PROBE_MARGIN = "probe_margin"


@dataclass(frozen=True)
class MarginSearch:
    """The parts of an index that a search by margin drives: its IVF, the exact re-ranking over it (if
    any), and the id map around them (if any)."""

    ivf: faiss.IndexIVF
    quantizer: faiss.Index  # the IVF's, as its own class
    refine: faiss.IndexRefineFlat | None
    stored: faiss.IndexFlat | None  # the re-ranking's exact vectors
    id_map: faiss.IndexIDMap | None
    inner_product: bool

    @classmethod
    def of(cls, index: faiss.Index) -> MarginSearch:
        """The parts of ``index``: an IVF, optionally under ``RFlat`` and an id map.

        Raises:
            ValueError: any other structure (not IVF; a transform before it; a re-ranking that is not flat).
        """
        top = faiss.downcast_index(index)
        id_map = top if isinstance(top, (faiss.IndexIDMap, faiss.IndexIDMap2)) else None
        inner = faiss.downcast_index(id_map.index) if id_map is not None else top
        refine = inner if isinstance(inner, faiss.IndexRefine) else None
        base = faiss.downcast_index(refine.base_index) if refine is not None else inner
        if not isinstance(base, faiss.IndexIVF):
            raise ValueError("it applies to IVF indexes (probed lists), optionally re-ranked exactly (RFlat), "
                             "without a transform (PCA, OPQ) before them")  # fmt: skip
        stored = faiss.downcast_index(refine.refine_index) if refine is not None else None
        if refine is not None and not isinstance(stored, faiss.IndexFlat):
            raise ValueError("its re-ranking must be exact (RFlat)")
        return cls(base, faiss.downcast_index(base.quantizer), refine, stored, id_map,
                   base.metric_type == faiss.METRIC_INNER_PRODUCT)  # fmt: skip

    def search(self, queries: np.ndarray, k: int, margin: float,
               scan_context: contextlib.AbstractContextManager[None]) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """Scores and ids ``(Q, k)`` (ids -1 past the end) of queries ``(Q, D)``: the lists within ``margin``
        of each query's best, at most ``nprobe``, scanned inside ``scan_context`` (how threads share them)."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if len(queries) == 0:
            return np.empty((0, k), dtype=np.float32), np.empty((0, k), dtype=np.int64)
        nprobe, nlist = self.ivf.nprobe, self.ivf.nlist
        coarse_scores, lists = self._lists(queries, margin, min(nprobe, nlist))
        wanted = k if self.refine is None else max(k, int(k * self.refine.k_factor))
        scores = np.empty((len(queries), wanted), dtype=np.float32)
        ids = np.empty((len(queries), wanted), dtype=np.int64)
        if nprobe > nlist:  # faiss scans at most nlist lists, and reads the assignment with that row stride
            self.ivf.nprobe = nlist
        try:
            with scan_context:  # faiss's own call: its Python wrapper costs a few µs a query in checks
                self.ivf.search_preassigned_c(len(queries), faiss.swig_ptr(queries), wanted, faiss.swig_ptr(lists),
                                              faiss.swig_ptr(coarse_scores), faiss.swig_ptr(scores),
                                              faiss.swig_ptr(ids), False)  # fmt: skip
        finally:
            if nprobe > nlist:
                self.ivf.nprobe = nprobe
        if self.refine is not None:
            scores, ids = self._rerank(queries, ids, k)
        if self.id_map is not None:
            stored = faiss.rev_swig_ptr(self.id_map.id_map.data(), self.id_map.ntotal)  # a view, not a copy
            ids = stored[ids] if ids.min() >= 0 else np.where(ids >= 0, stored[np.maximum(ids, 0)], -1)
        return scores, ids

    def _lists(self, queries: np.ndarray, margin: float, probes: int) -> tuple[np.ndarray, np.ndarray]:
        """Each query's centroid scores and lists ``(Q, probes)``: those within ``margin`` of its best, at most
        ``probes``; -1 for the rest (their scores stay finite: faiss's fast-scan PQ reads them all)."""
        quantizer = self.quantizer
        if len(queries) > 1 or not isinstance(quantizer, faiss.IndexFlat):  # a batch: faiss's search, by BLAS
            coarse_scores, lists = quantizer.search(queries, probes)
            signed = coarse_scores if self.inner_product else -coarse_scores  # higher is nearer
            lists[signed < signed[:, :1] - margin] = -1
            return coarse_scores, lists
        # one query: every centroid's score in one SIMD pass, then numpy; faster than faiss's search for the
        # nearest `probes`, which keeps them in a heap (33-38 µs against 57-59 on 1,024 lists: docs/benchmarks.md)
        scores = np.empty(quantizer.ntotal, dtype=np.float32)
        all_centroids = faiss.fvec_inner_products_ny if self.inner_product else faiss.fvec_L2sqr_ny
        all_centroids(faiss.swig_ptr(scores), faiss.swig_ptr(queries), quantizer.get_xb(), quantizer.d, len(scores))
        signed = scores if self.inner_product else -scores  # higher is nearer
        kept = np.flatnonzero(signed >= signed.max() - margin)
        if len(kept) > probes:
            kept = kept[np.argpartition(-signed[kept], probes - 1)[:probes]]
        if self.ivf.max_codes:  # a scan that may stop early must see the best lists first
            kept = kept[np.argsort(-signed[kept], kind="stable")]
        lists = np.full((1, probes), -1, dtype=np.int64)
        coarse_scores = np.zeros((1, probes), dtype=np.float32)
        lists[0, : len(kept)], coarse_scores[0, : len(kept)] = kept, scores[kept]
        return coarse_scores, lists

    def _rerank(self, queries: np.ndarray, candidates: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best of each query's ``candidates`` (ids -1 last), scored exactly on the stored vectors."""
        flat = self.stored
        scores = np.empty((len(queries), k), dtype=np.float32)
        ids = np.empty((len(queries), k), dtype=np.int64)
        exact = faiss.knn_inner_products_by_idx if self.inner_product else faiss.knn_L2sqr_by_idx
        candidates = np.ascontiguousarray(candidates)
        exact(faiss.swig_ptr(queries), flat.get_xb(), faiss.swig_ptr(candidates), flat.d, len(queries), flat.ntotal,
              candidates.shape[1], k, faiss.swig_ptr(scores), faiss.swig_ptr(ids), candidates.shape[1])  # fmt: skip
        # the row stride is given: faiss 1.15 takes it as ``ny`` (the database size) when left out
        return scores, ids

"""Retrieval at scale: exact Flat vs HNSW and IVF variants, side by side in one run.

    python benchmarks/retrieval.py [--n 1000000] [--dim 128] [--queries 1000]

Data: ``--n`` clustered synthetic embeddings (``--clusters`` Gaussian centres,
unit-normalised, as trained embeddings are), and ``--queries`` held-out
queries from the same distribution. Every index is built through
``avkit.retrieval.RetrievalIndex`` (cosine = inner product on normalised
vectors; ids through IDMap2 or IVF's own). The table reports build time
(train + add), index size, queries per second at batch 1 and batch 1000, and
recall@10 against the exact (Flat) results; QPS ratios are to Flat in the same
run.
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time

import faiss
import numpy as np

from avkit.retrieval import RetrievalIndex


def clustered(n: int, dim: int, clusters: int, spread: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):  # in chunks: bounded memory at 1M+
        stop = min(n, start + 100_000)
        pick = rng.integers(0, clusters, size=stop - start)
        out[start:stop] = centres[pick] + spread * rng.standard_normal((stop - start, dim)).astype(np.float32)
    faiss.normalize_L2(out)
    return out


def variants(n: int) -> list[tuple[str, list[dict[str, int]]]]:
    """Each index is built once, then searched with each parameter set."""
    k = 1 << round(math.log2(math.sqrt(n)))  # ~sqrt(N) lists, a power of two (1024 at 1M): trains in seconds
    return [
        ("Flat", [{}]),
        ("HNSW32", [{"efSearch": 64}, {"efSearch": 128}, {"efSearch": 256}]),
        (f"IVF{k},Flat", [{"nprobe": 16}, {"nprobe": 32}, {"nprobe": 64}]),
        (f"IVF{k},PQ32", [{"nprobe": 64}]),
    ]


def search_ids(index: RetrievalIndex, q: np.ndarray, k: int) -> np.ndarray:
    for name, value in index.search_params.items():
        faiss.ParameterSpace().set_index_parameter(index.index, name, value)
    return index.index.search(q, k)[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1_000_000, help="database vectors (default 1,000,000)")
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--queries", type=int, default=1000, help="queries for batch-1000 QPS and recall")
    p.add_argument("--single", type=int, default=200, help="queries timed one at a time (batch-1 QPS)")
    p.add_argument("--clusters", type=int, default=1000)
    p.add_argument("--spread", type=float, default=0.5, help="per-dimension noise around each centre (centres are N(0, 1))")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    data = clustered(args.n + args.queries, args.dim, args.clusters, args.spread, args.seed)
    xb, xq = data[: args.n], np.ascontiguousarray(data[args.n :])  # queries: held out, same clusters
    keys = [str(i) for i in range(args.n)]
    print(f"retrieval benchmark: {args.n:,} x {args.dim}-d clustered vectors ({args.clusters} clusters, "
          f"spread {args.spread}), "
          f"{args.queries} queries, k=10\\", flush=True)  # fmt: skip
    print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads, {platform.machine()}, "
          f"python {platform.python_version()}", flush=True)  # fmt: skip
    print()
    rows, truth, flat_qps = [], None, None
    for factory, param_sets in variants(args.n):
        t0 = time.perf_counter()
        index = RetrievalIndex(args.dim, factory)
        index.add(keys, xb)
        build = time.perf_counter() - t0
        size = faiss.serialize_index(index.index).nbytes
        print(f"  built {factory} in {build:.1f} s", file=sys.stderr, flush=True)
        for params in param_sets:
            index.search_params = params
            search_ids(index, xq[:10], 10)  # warm-up
            t0 = time.perf_counter()
            for i in range(args.single):
                search_ids(index, xq[i : i + 1], 10)
            qps1 = args.single / (time.perf_counter() - t0)
            t0 = time.perf_counter()
            ids = search_ids(index, xq, 10)
            qps_batch = len(xq) / (time.perf_counter() - t0)
            if truth is None:
                truth, flat_qps = ids, (qps1, qps_batch)
            recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, truth)]))
            label = factory + "".join(f" {k}={v}" for k, v in params.items())
            rows.append((label, build, size / 2**20, qps1, qps1 / flat_qps[0], qps_batch, qps_batch / flat_qps[1], recall))
        del index
    print("| index | build s | size MiB | QPS batch 1 | x Flat | QPS batch 1000 | x Flat | recall@10 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, build, mib, q1, r1, qb, rb, rec in rows:
        print(f"| {label} | {build:.1f} | {mib:,.0f} | {q1:,.0f} | {r1:.1f} | {qb:,.0f} | {rb:.1f} | {rec:.3f} |")
    met = [r[0] for r in rows[1:] if r[7] >= 0.95 and min(r[4], r[6]) >= 10]
    print()
    print(f"**Target: an approximate index with recall@10 >= 0.95 at >= 10x Flat's QPS (batch 1 and 1000): "
          f"{'met by ' + ', '.join(met) if met else 'not met'}.**")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

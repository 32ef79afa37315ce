"""What checksums cost: loading 1M-vector artifacts with and without verification, side by side in one run.

    python benchmarks/checksums.py [--n 1000000] [--dim 128] [--repeats 3]

Files: an embeddings file of ``--n`` vectors (with ids, labels and paths in
its header) and a ``Flat`` retrieval index of the same vectors (faiss file +
SQLite metadata). Each is saved once, then loaded ``--repeats`` times with
verification and, alternating with those, with verification switched off
(the checksum functions replaced by no-ops in this process only). The table
gives the median load time (min–max) of each, and the ratio verified /
unverified. Save times include computing the checksums. The page cache is warm
for every load: this is the cost of verification itself, not of the disk.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import faiss
import numpy as np
import torch

import avkit.artifacts as artifacts
import avkit.retrieval.index as index_module
from avkit.retrieval import Embeddings, RetrievalIndex, load_embeddings, save_embeddings


@contextmanager
def unverified():
    """Loading without checksum verification, as before checksums existed."""
    with mock.patch.object(artifacts, "verify_checksums", lambda *a, **k: None), \
         mock.patch.object(index_module, "_read_checked", lambda file, expected, what: file.read_bytes()):  # fmt: skip
        yield


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def fmt(times: list[float]) -> str:
    return f"{statistics.median(times):.2f} ({min(times):.2f}–{max(times):.2f})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1_000_000, help="vectors (default 1,000,000)")
    p.add_argument("--dim", type=int, default=128, help="vector dimension (default 128)")
    p.add_argument("--repeats", type=int, default=3, help="loads of each kind (default 3)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((args.n, args.dim), dtype=np.float32)
    faiss.normalize_L2(vectors)
    ids = [f"clip-{i:07d}" for i in range(args.n)]
    emb = Embeddings(torch.from_numpy(vectors), ids, [str(i % 300) for i in range(args.n)],
                     [f"/data/audio/{i}.wav" for i in ids], "audio", "0123456789abcdef")  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        emb_file, index_dir = Path(tmp) / "emb.safetensors", Path(tmp) / "index"
        save_s = timed(lambda: save_embeddings(emb_file, emb))
        idx = RetrievalIndex(args.dim, "Flat", fingerprint=emb.fingerprint, modality="audio")
        idx.add(ids, vectors, emb.metadata())
        index_save_s = timed(lambda: idx.save(index_dir))  # noqa: B023 - called at once
        idx = None  # free it before the loads
        sizes = {"emb": emb_file.stat().st_size, "index": sum(f.stat().st_size for f in index_dir.iterdir())}
        for name, load, size, save in (("embeddings file", lambda: load_embeddings(emb_file), sizes["emb"], save_s),
                                       ("Flat index (faiss + SQLite)", lambda: RetrievalIndex.load(index_dir),
                                        sizes["index"], index_save_s)):  # fmt: skip
            load()  # warm the page cache
            on, off = [], []
            for _ in range(args.repeats):
                on.append(timed(load))
                with unverified():
                    off.append(timed(load))
            rows.append((name, size, save, on, off))
    print(f"# checksums at {args.n:,} vectors of dim {args.dim}; {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} thread, {args.repeats} loads each (median, min–max)\n")
    print("| file | size | save, s | load verified, s | load unverified, s | added, s | verified / unverified |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, size, save, on, off in rows:
        ratios = [a / b for a, b in zip(on, off)]
        print(f"| {name} | {size / 1e6:,.0f} MB | {save:.2f} | {fmt(on)} | {fmt(off)} | "
              f"{fmt([a - b for a, b in zip(on, off)])} | "
              f"{statistics.median(ratios):.2f}× ({min(ratios):.2f}–{max(ratios):.2f}) |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

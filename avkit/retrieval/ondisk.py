"""IVF indexes larger than RAM: trained on a sample, filled file by file, inverted lists merged on disk.

    index = build_ondisk_index(["emb.rank0-of-2.safetensors", "emb.rank1-of-2.safetensors"],
                               "runs/big-index", "IVF4096,Flat", train_size=200_000)
    index.save("runs/big-index")                 # writes info.json, the small faiss file and SQLite

The recipe of faiss's ``demos/demo_ondisk_ivf.py`` and ``contrib.ondisk.merge_ondisk``:

1. train the IVF quantizer (and codes) on a random sample of ``train_size`` vectors, an
   equal share from each file (each file is read once for this, then let go);
2. for each embeddings file: a copy of the trained, empty index gets that file's vectors
   (ids follow on from the previous file), and is written to a temporary block file;
3. the blocks' inverted lists are merged into one ``OnDiskInvertedLists`` data file, which
   searches memory-map: only the lists a query probes are read.

Memory is one embeddings file plus the sample, whatever the total; each file is read twice
(for the sample, then to fill its block). The ids and metadata still go to SQLite (in memory
while building; about 100 bytes per item). The index is read-only once built: adding means
building again. faiss's ``merge_ondisk`` leaves the block files mapped, so their disk space
(deleted at the end of the build) returns only when the building process exits.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import faiss
import numpy as np
from faiss.contrib.ondisk import merge_ondisk

from avkit.errors import ArtifactError
from avkit.progress import progress
from avkit.retrieval.embeddings import load_embeddings
from avkit.retrieval.index import RetrievalError, RetrievalIndex
from avkit.retrieval.search import check_joins

log = logging.getLogger(__name__)

#: The data file a build merges into, in the index folder, before the save names it ``ivfdata-<gen>.ivfdata``.
BUILDING = ".building-{pid}.ivfdata"


def build_ondisk_index(
    files: Sequence[str | Path],
    out: str | Path,
    factory: str = "IVF1024,Flat",
    train_size: int = 100_000,
    search_params: dict[str, float] | None = None,
    seed: int = 0,
    show_progress: bool = False,
) -> RetrievalIndex:
    """Build an on-disk IVF index over embeddings ``files`` in the folder ``out``; see the module docstring.

    The caller saves it into ``out`` (and holds ``out``'s folder lock throughout).

    Raises:
        RetrievalError: a factory without IVF lists of its own (none, refined, behind an id map, or
            fast-scan codes), or too few vectors to train.
        ArtifactError: files from different models or modalities, or a repeated id.
    """
    if not files:
        raise RetrievalError("an on-disk index needs at least one embeddings file")
    out = Path(out)
    first = load_embeddings(files[0])
    index = RetrievalIndex(first.dim, factory, fingerprint=first.fingerprint, modality=first.modality,
                           search_params=search_params)  # fmt: skip
    ivf = faiss.try_extract_index_ivf(index.index)
    ivf = faiss.downcast_index(ivf) if ivf is not None else None  # the IVF's own class, for the checks below
    if ivf is None or isinstance(faiss.downcast_index(index.index), (faiss.IndexIDMap, faiss.IndexIDMap2)) \
            or isinstance(ivf, faiss.IndexIVFPQR):  # fmt: skip
        raise RetrievalError(f"factory {factory!r}: on-disk lists need an IVF index with native ids, such as "
                             "IVF4096,Flat or IVF4096,PQ32 (no refinement, no id map)")  # fmt: skip
    if isinstance(ivf, faiss.IndexIVFFastScan):  # faiss merges plain lists only
        raise RetrievalError(f"factory {factory!r}: fast-scan codes are stored in packed blocks, which faiss's "
                             "on-disk lists cannot hold; use IVF4096,PQ32 (8-bit PQ) or IVF4096,Flat")  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(".building-*.ivfdata"):  # a killed build's; the caller holds the folder lock
        stale.unlink(missing_ok=True)
    index.train(_training_sample(files, train_size, seed))
    trained = faiss.serialize_index(index.index)  # the empty trained index every block starts from
    blocks = out / f".blocks-{os.getpid()}"
    blocks.mkdir(exist_ok=True)
    try:
        names, start, seen = [], 0, set()
        del first  # one embeddings file in memory at a time; the index holds its modality, model and dim
        for path in progress(files, "filling blocks", enabled=show_progress, unit="file"):
            emb = load_embeddings(path)
            check_joins(index, emb)
            repeated = seen.intersection(emb.ids)
            if repeated:
                raise ArtifactError(Path(path), f"id {sorted(repeated)[0]!r} is also in an earlier file; ids must be unique")
            seen.update(emb.ids)
            block = faiss.deserialize_index(trained)
            ids = np.arange(start, start + len(emb.ids), dtype=np.int64)
            block.add_with_ids(index._prepare(np.ascontiguousarray(emb.vectors.numpy(), dtype=np.float32)), ids)
            names.append(str(blocks / f"block-{len(names)}.index"))
            faiss.write_index(block, names[-1])
            index._record_items(ids, emb.ids, emb.metadata())
            start += len(emb.ids)
            del block, emb
        index.db.commit()
        merged = faiss.deserialize_index(trained)
        data = out / BUILDING.format(pid=os.getpid())
        merge_ondisk(merged, names, str(data))
    finally:
        shutil.rmtree(blocks, ignore_errors=True)
    index.index, index.data_file = merged, data
    index.set_search_params(index.search_params)
    log.info("on-disk index: %d vectors in %d lists, %.1f MB of lists in %s", merged.ntotal, faiss.extract_index_ivf(merged).nlist,
             data.stat().st_size / 1e6, data)  # fmt: skip
    return index


def _training_sample(files: Sequence[str | Path], size: int, seed: int) -> np.ndarray:
    """Up to ``size`` vectors drawn at random, an equal share from each of ``files`` (each read once)."""
    rng = np.random.default_rng(seed)
    parts = []
    for path in files:
        vectors = load_embeddings(path).vectors.numpy()
        take = min(len(vectors), -(-size // len(files)))
        parts.append(vectors[np.sort(rng.choice(len(vectors), size=take, replace=False))])
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)

"""Building indexes and querying them: the library functions behind ``avkit index`` and ``avkit query``.

    index = build_index([load_embeddings("images.safetensors")], factory="HNSW32")
    index.save("runs/image-index")
    index = open_index("runs/image-index", model)            # refuses an index of another model
    hits = search_files(model, index, "audio", ["q.wav"], k=5)[0]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from avkit.errors import ArtifactError
from avkit.retrieval.embeddings import Embedder, Embeddings, embed_files
from avkit.retrieval.index import Hit, RetrievalIndex


def check_joins(first: Embeddings | RetrievalIndex, emb: Embeddings) -> None:
    """Refuse ``emb`` (ArtifactError naming its file) unless its modality, model and dimension are ``first``'s
    (the first embeddings of an index being built, or the index itself)."""
    for what, a, b in (("modality", first.modality, emb.modality), ("model", first.fingerprint, emb.fingerprint),
                       ("dimension", first.dim, emb.dim)):  # fmt: skip
        if a != b:
            raise ArtifactError(Path(emb.file or "embeddings"), f"embeddings of {what} {b!r} cannot join "
                                f"embeddings of {what} {a!r} in one index")  # fmt: skip


def build_index(
    embeddings: Sequence[Embeddings], factory: str = "Flat", search_params: dict[str, float] | None = None
) -> RetrievalIndex:
    """A new index holding every row of ``embeddings`` (one modality, one model); ids must be unique."""
    if not embeddings:
        raise ValueError("build_index needs at least one embeddings set")
    first = embeddings[0]
    for emb in embeddings[1:]:
        check_joins(first, emb)
    index = RetrievalIndex(first.dim, factory, fingerprint=first.fingerprint, modality=first.modality,
                           search_params=search_params)  # fmt: skip
    if len(embeddings) > 1 and not index.index.is_trained:  # on all the files, not on the first one's share
        index.train(np.concatenate([e.vectors.numpy() for e in embeddings]))
    for emb in embeddings:
        index.add(emb.ids, emb.vectors.numpy(), emb.metadata())
    return index


def add_embeddings(index: RetrievalIndex, emb: Embeddings, replace: bool = False) -> int:
    """Add ``emb`` to ``index`` (same model and modality); returns how many items it holds now."""
    source = Path(emb.file or "embeddings")
    if emb.modality != index.modality:
        raise ArtifactError(source, f"holds {emb.modality} embeddings, but the index holds {index.modality}")
    if emb.fingerprint != index.fingerprint:
        raise ArtifactError(source, f"holds embeddings from model {emb.fingerprint}, but the index was built with "
                            f"model {index.fingerprint}; embed with the index's checkpoint")  # fmt: skip
    index.add(emb.ids, emb.vectors.numpy(), emb.metadata(), replace=replace)
    return len(index)


def open_index(path: str | Path, embedder: Embedder) -> RetrievalIndex:
    """Load an index, refusing one built with another model than ``embedder``."""
    return RetrievalIndex.load(path, expect_fingerprint=embedder.fingerprint)


def search_files(
    embedder: Embedder, index: RetrievalIndex, modality: str, paths: Sequence[str | Path], k: int = 5
) -> list[list[Hit]]:
    """The ``k`` nearest indexed items to each file, best first (one list per file)."""
    if embedder.fingerprint != index.fingerprint:
        raise ArtifactError(Path(str(paths[0]) if paths else "query"), f"the query model {embedder.fingerprint} is not "
                            f"the model {index.fingerprint} that built the index")  # fmt: skip
    return index.search(embed_files(embedder, modality, paths).numpy(), k)

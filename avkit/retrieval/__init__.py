"""Retrieval: a persistent faiss index with ids and metadata, embeddings files, and the
functions that build and query indexes. It depends on models only through :class:`Embedder`."""

from avkit.retrieval.embeddings import (
           Embedder,
           Embeddings,
           embed_files,
           embed_manifest,
           load_embeddings,
           save_embeddings,
)
from avkit.retrieval.index import Hit, RetrievalError, RetrievalIndex
from avkit.retrieval.search import add_embeddings, build_index, open_index, search_files

__all__ = ["Embedder", "Embeddings", "Hit", "RetrievalError", "RetrievalIndex", "add_embeddings", "build_index",
           "embed_files", "embed_manifest", "load_embeddings", "open_index", "save_embeddings", "search_files"]  # fmt: skip

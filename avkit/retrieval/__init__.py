"""Retrieval: a persistent faiss index with ids and metadata, embeddings files, and metrics."""

from avkit.retrieval.index import Hit, RetrievalError, RetrievalIndex
from avkit.retrieval.metrics import retrieval_metrics

__all__ = ["Hit", "RetrievalError", "RetrievalIndex", "retrieval_metrics"]

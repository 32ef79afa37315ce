"""Evaluation: metrics on tensors and arrays (retrieval, classification), and linear probes.

Nothing here knows about models or training; heads' evaluators and experiments call it.
"""

from avkit.evaluation.retrieval import relevance, retrieval_metrics

__all__ = ["relevance", "retrieval_metrics"]

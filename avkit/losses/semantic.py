"""Semantic regularisation: one classifier shared by both sides of the embedding.

After Salvador et al. 2017 (joint embeddings of recipes and images): a linear
classifier over the shared space, applied to both modalities' embeddings, pulls
items of one class together across modalities.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class SemanticRegularizer(nn.Module):
    """``mean_m CE(W e_m, y)`` over the embeddings ``e_m`` of every modality (weigh it in the run config).

    Items without a label (``y = -1``) are ignored.

    Shapes: each embedding ``(B, D)``, ``labels (B,)`` -> scalar.
    """

    def __init__(self, embed_dim: int, num_classes: int) -> None:
        super().__init__()
        self.classifier = nn.Linear(embed_dim, num_classes)

    def forward(self, embeddings: list[Tensor], labels: Tensor) -> Tensor:
        if not bool((labels >= 0).any()):
            return embeddings[0].new_zeros(())
        losses = [F.cross_entropy(self.classifier(e), labels, ignore_index=-1) for e in embeddings]
        return torch.stack(losses).mean()

"""Losses, separate from models: pairwise matching, semantic regularisation, distillation."""

from avkit.losses.contrastive import PAIR_LOSSES, InfoNCELoss, TripletMarginLoss
from avkit.losses.distillation import DistillationKLLoss
from avkit.losses.semantic import SemanticRegularizer

__all__ = ["PAIR_LOSSES", "DistillationKLLoss", "InfoNCELoss", "SemanticRegularizer", "TripletMarginLoss"]

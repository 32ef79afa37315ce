"""Losses, separate from models: pairwise matching, semantic regularisation, distillation, regression."""

from avkit.losses.contrastive import PAIR_LOSSES, InfoNCELoss, TripletMarginLoss
from avkit.losses.distillation import DistillationKLLoss
from avkit.losses.regression import normalized_l1
from avkit.losses.semantic import SemanticRegularizer

__all__ = ["PAIR_LOSSES", "DistillationKLLoss", "InfoNCELoss", "SemanticRegularizer", "TripletMarginLoss", "normalized_l1"]

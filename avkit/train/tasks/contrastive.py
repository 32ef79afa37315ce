"""Contrastive matching of two modalities in one shared space (CLIP-style), optionally
with semantic regularisation (a classifier shared by both sides)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from avkit.data.dataset import ManifestDataset
from avkit.errors import ConfigError
from avkit.losses import PAIR_LOSSES, SemanticRegularizer
from avkit.models.encoders import EncoderOutput
from avkit.models.tower import Tower, build_encoder
from avkit.retrieval.metrics import retrieval_metrics
from avkit.train.config import TrainConfig
from avkit.train.tasks.base import TASKS, Task, embed_tensor


@TASKS.register("contrastive")
class ContrastiveTask(Task):
    """Two towers into ``embed_dim``; InfoNCE or triplet loss on the paired rows.

    Validation ranks the other side's items for every query, both ways;
    ``score`` is the mean of the two mAPs.
    """

    def __init__(self, cfg: TrainConfig, label_names: list[str], extra: dict[str, Any] | None = None) -> None:
        super().__init__(cfg, label_names, extra)
        if len(cfg.modalities) != 2 or cfg.modalities[0] == cfg.modalities[1]:
            raise ConfigError(f"modalities: the contrastive task needs two different modalities, got {cfg.modalities}")
        self.modalities = tuple(cfg.modalities)
        self.towers = nn.ModuleDict({
            m: Tower(build_encoder(m, cfg.encoders.get(m)), cfg.head, cfg.embed_dim) for m in self.modalities
        })  # fmt: skip
        loss_kwargs = {"infonce": {"init_temperature": cfg.loss.temperature}, "triplet": {"margin": cfg.loss.margin}}
        self.pair_loss = PAIR_LOSSES.create(cfg.loss.kind, **loss_kwargs.get(cfg.loss.kind, {}))
        self.semantic = (
            SemanticRegularizer(cfg.embed_dim, len(label_names), cfg.loss.semantic_weight)
            if cfg.loss.semantic_weight > 0 and label_names else None
        )  # fmt: skip

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        a, b = (self.towers[m](batch[m]) for m in self.modalities)
        match = self.pair_loss(a, b)
        logs = {"match_loss": float(match.detach())}
        loss = match
        if self.semantic is not None:
            sem = self.semantic([a, b], batch["label"])
            loss = loss + sem
            logs["semantic_loss"] = float(sem.detach())
        if hasattr(self.pair_loss, "temperature"):
            logs["temperature"] = self.pair_loss.temperature
        return loss, logs

    def features(self, modality: str, x: Tensor) -> EncoderOutput:
        return self.towers[modality].features(x)

    def embed(self, modality: str, x: Tensor) -> Tensor:
        return self.towers[modality](x)

    def evaluate(self, ds: ManifestDataset) -> dict[str, float]:
        return cross_modal_metrics(self, ds)


def cross_modal_metrics(task: Task, ds: ManifestDataset, prefix: str = "") -> dict[str, float]:
    """Retrieval metrics both ways between ``task.modalities`` on ``ds``; ``score`` = mean mAP.

    Relevance is class-level when every item has a label, pair-level otherwise.
    """
    first, second = task.modalities[:2]
    emb = {m: embed_tensor(task, m, ds.tensors[m]) for m in (first, second)}
    labels = ds.labels if ds.has_labels else None
    out: dict[str, float] = {}
    for q, g in ((first, second), (second, first)):
        for key, value in retrieval_metrics(emb[q], emb[g], labels, labels).items():
            if key != "queries":
                out[f"{prefix}{q}_to_{g}/{key}"] = value
    out[f"{prefix}score"] = float(torch.tensor([out[f"{prefix}{first}_to_{second}/mAP"],
                                                out[f"{prefix}{second}_to_{first}/mAP"]]).mean())  # fmt: skip
    return out

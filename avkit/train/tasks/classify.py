"""Supervised classification of one modality (for example, the distillation teacher)."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from avkit.data.dataset import ManifestDataset
from avkit.errors import ConfigError
from avkit.models.encoders import EncoderOutput
from avkit.models.tower import build_encoder
from avkit.train.config import TrainConfig
from avkit.train.tasks.base import TASKS, Task, apply_in_batches


@TASKS.register("classify")
class ClassifyTask(Task):
    """Encoder -> linear classifier over the manifest's labels, cross-entropy loss.

    ``score`` is validation accuracy.
    """

    def __init__(self, cfg: TrainConfig, label_names: list[str], extra: dict[str, Any] | None = None) -> None:
        super().__init__(cfg, label_names, extra)
        if len(cfg.modalities) != 1:
            raise ConfigError(f"modalities: the classify task takes one modality, got {cfg.modalities}")
        if len(label_names) < 2:
            raise ConfigError(f"{cfg.manifest}: the classify task needs labels of at least 2 classes, found {label_names}")
        self.modalities = (cfg.modalities[0],)
        self.encoder = build_encoder(self.modalities[0], cfg.encoders.get(self.modalities[0]))
        self.classifier = nn.Linear(self.encoder.out_dim, len(label_names))

    def logits(self, x: Tensor) -> Tensor:
        """``(B, ...) -> (B, num_classes)``."""
        return self.classifier(self.encoder(x).pooled)

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        labels = batch["label"]
        if bool((labels < 0).any()):
            raise ConfigError("the classify task needs a label on every training item")
        logits = self.logits(batch[self.modalities[0]])
        loss = F.cross_entropy(logits, labels)
        return loss, {"accuracy": float((logits.argmax(-1) == labels).float().mean())}

    def features(self, modality: str, x: Tensor) -> EncoderOutput:
        return self.encoder(x)

    def evaluate(self, ds: ManifestDataset) -> dict[str, float]:
        was_training = self.training
        self.eval()
        pred = apply_in_batches(self.logits, ds.tensors[self.modalities[0]], self.classifier.weight.device).argmax(-1)
        self.train(was_training)
        acc = float((pred == ds.labels).float().mean())
        return {"accuracy": acc, "score": acc}

"""``classify``: supervised classification of one tower's items (for example, a distillation teacher)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch.nn.functional as F
from torch import Tensor, nn

from avkit.data.batch import Batch
from avkit.errors import ConfigError
from avkit.models.encoders import EncoderOutput
from avkit.models.heads.base import Head, HeadContext, register_head


@register_head("classify")
class ClassifyHead(Head):
    """A linear classifier over a tower's pooled vector, trained by cross-entropy.

    Loss term: ``ce``. Metrics: ``accuracy`` (= ``score``). Embeds its tower (the
    normalised pooled vector).

    Args:
        tower: the tower to classify (default: the model's first).
    """

    def __init__(self, context: HeadContext, tower: str = "") -> None:
        super().__init__()
        tower = tower or next(iter(context.towers))
        if len(context.labels) < 2:
            raise ConfigError(f"classification needs labels of at least 2 classes, found {list(context.labels)}")
        self.towers, self.targets, self.loss_terms = (tower,), ("label",), ("ce",)
        self.classifier = nn.Linear(context.pooled_dim(tower), len(context.labels))

    def logits(self, output: EncoderOutput) -> Tensor:
        """``(B, num_classes)``."""
        return self.classifier(output.pooled)

    def forward(self, outputs: Mapping[str, EncoderOutput], batch: Batch) -> dict[str, Tensor]:
        return {"ce": F.cross_entropy(self.logits(outputs[self.towers[0]]), batch.labels)}

    def embeds(self, tower: str) -> bool:
        return tower == self.towers[0]

    def embed(self, tower: str, output: EncoderOutput) -> Tensor:
        return F.normalize(output.pooled, dim=-1)

    def evaluator(self) -> AccuracyEvaluator:
        return AccuracyEvaluator(lambda outputs: self.logits(outputs[self.towers[0]]))


class AccuracyEvaluator:
    """``accuracy`` (= ``score``) of argmax predictions against the labelled items' labels."""

    def __init__(self, logits: Callable[[Mapping[str, EncoderOutput]], Tensor]) -> None:
        self.logits = logits
        self.correct, self.count = 0, 0

    def update(self, outputs: Mapping[str, EncoderOutput], batch: Batch) -> None:
        labelled = batch.labels >= 0
        pred = self.logits(outputs).argmax(-1)
        self.correct += int((pred == batch.labels)[labelled].sum())
        self.count += int(labelled.sum())

    def compute(self) -> dict[str, float]:
        acc = self.correct / self.count if self.count else float("nan")
        return {"accuracy": acc, "score": acc}


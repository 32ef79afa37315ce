"""``regress_embedding``: one tower predicts another's frozen embedding (Speech2Face's voice encoder).

    student tower (audio) ─▶ pooled ─▶ MLP ─▶ ŷ (B, D)      teacher tower (image, frozen) ─▶ y (B, D)
    l1: ‖ŷ/|ŷ| − y/|y|‖₁                                    (Oh et al. 2019, between normalised features)
    kl: T² · KL(softmax(c(y)/T) ‖ softmax(c(ŷ)/T))           c: the teacher's frozen classifier

The teacher tower and its classifier are copied, frozen, from a ``classify`` run:

    [init.classifier]
    checkpoint = "runs/classifier"
    parts = { "towers.image" = "towers.image", "heads.voice.teacher_classifier" = "heads.classify.classifier" }

The prediction lives in the teacher's embedding space, so an image decoder trained on
that space renders it (avkit.translation), and retrieval across the two towers works.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avkit.data.batch import Batch
from avkit.errors import ConfigError
from avkit.losses import DistillationKLLoss, normalized_l1
from avkit.models.encoders import EncoderOutput
from avkit.models.heads.base import Head, HeadContext, register_head


@register_head("regress_embedding")
class RegressEmbeddingHead(Head):
    """Loss terms ``l1`` and ``kl``. Metrics: ``cosine`` (= ``score``) of prediction and target;
    ``class_agreement`` of the frozen classifier on both; with labels, ``accuracy`` of the
    classifier on the prediction. Embeds both towers in the teacher's space.

    Args:
        student, teacher: tower names; the teacher must be frozen by an ``init``.
        hidden: the MLP's hidden size. temperature: T of the distillation term.
    """

    def __init__(self, context: HeadContext, student: str = "audio", teacher: str = "image", hidden: int = 256,
                 temperature: float = 2.0) -> None:  # fmt: skip
        super().__init__()
        if student == teacher:
            raise ConfigError(f"regress_embedding: student and teacher must be different towers, both are {student!r}")
        context.require(student, teacher)
        if len(context.labels) < 2:
            raise ConfigError(f"regress_embedding: the KL term needs the teacher classifier's classes (2 or more), got "
                              f"{list(context.labels)}")  # fmt: skip
        dim = context.pooled_dim(teacher)
        self.towers, self.frozen_towers, self.loss_terms = (student, teacher), (teacher,), ("l1", "kl")
        self.frozen_parts = ("teacher_classifier",)
        self.regressor = nn.Sequential(nn.Linear(context.pooled_dim(student), hidden), nn.ReLU(inplace=True),
                                       nn.Linear(hidden, dim))  # fmt: skip
        self.teacher_classifier = nn.Linear(dim, len(context.labels)).requires_grad_(False)
        self.kl = DistillationKLLoss(temperature)

    @property
    def student(self) -> str:
        return self.towers[0]

    @property
    def teacher(self) -> str:
        return self.towers[1]

    def predict(self, student: EncoderOutput) -> Tensor:
        """The student's prediction ``(B, D)`` of the teacher's embedding (unnormalised, as the tower's pooled vector)."""
        return self.regressor(student.pooled)

    def forward(self, outputs: Mapping[str, EncoderOutput], batch: Batch) -> dict[str, Tensor]:
        predicted, target = self.predict(outputs[self.student]), outputs[self.teacher].pooled
        return {"l1": normalized_l1(predicted, target),
                "kl": self.kl(self.teacher_classifier(predicted), self.teacher_classifier(target))}  # fmt: skip

    def embeds(self, tower: str) -> bool:
        return tower in self.towers

    def embed(self, tower: str, output: EncoderOutput) -> Tensor:
        return F.normalize(self.predict(output) if tower == self.student else output.pooled, dim=-1)

    def evaluator(self) -> RegressionEvaluator:
        return RegressionEvaluator(self)


class RegressionEvaluator:
    """Cosine of prediction and target; the frozen classifier's agreement on both, and accuracy where labelled."""

    def __init__(self, head: RegressEmbeddingHead) -> None:
        self.head = head
        self.cosines: list[Tensor] = []
        self.predicted: list[Tensor] = []
        self.target: list[Tensor] = []
        self.labels: list[Tensor] = []

    def update(self, outputs: Mapping[str, EncoderOutput], batch: Batch) -> None:
        predicted, target = self.head.predict(outputs[self.head.student]), outputs[self.head.teacher].pooled
        self.cosines.append(F.cosine_similarity(predicted, target, dim=-1).cpu())
        classify = self.head.teacher_classifier
        self.predicted.append(classify(predicted).argmax(-1).cpu())
        self.target.append(classify(target).argmax(-1).cpu())
        self.labels.append(batch.labels.cpu())

    def compute(self) -> dict[str, float]:
        cosine = float(torch.cat(self.cosines).mean())
        predicted, target, labels = (torch.cat(x) for x in (self.predicted, self.target, self.labels))
        out = {"cosine": cosine, "class_agreement": float((predicted == target).float().mean())}
        labelled = labels >= 0
        if bool(labelled.any()):
            out["accuracy"] = float((predicted == labels)[labelled].float().mean())
        out["score"] = cosine
        return out

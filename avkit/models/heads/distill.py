"""``distill``: teacher -> student across modalities, after SoundNet (Aytar et al. 2016).

A frozen teacher tower and classifier (copied from a trained ``classify`` run by
the model config's ``init``) give a class distribution for each pair; the
student tower, on the other modality, learns to match it through KL divergence.
No label of the student's modality is used to train.

    [towers.audio]                    # the student
    encoder = { name = "soundnet", width_mult = 0.5 }
    [towers.image]                    # the teacher's tower: same config as in its run
    encoder = { name = "image_resnet", width = 16, stages = 3 }
    [heads.distill]
    student = "audio"
    teacher = "image"
    [init.teacher]
    checkpoint = "runs/teacher"
    parts = { "towers.image" = "towers.image", "heads.distill.teacher_classifier" = "heads.classify.classifier" }
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avkit.data.batch import Batch
from avkit.errors import ConfigError
from avkit.losses import DistillationKLLoss
from avkit.models.encoders import EncoderOutput
from avkit.models.heads.base import Head, HeadContext, register_head


@register_head("distill")
class DistillHead(Head):
    """Student classifier over the teacher's classes, trained by ``T² · KL(teacher ‖ student)``.

    Loss term: ``kl``. Metrics: ``teacher_agreement`` (= ``score``: the student's top-1
    agreement with the teacher), and with labels ``student_accuracy``,
    ``teacher_accuracy`` (reported only). Embeds the student tower.

    Args:
        student, teacher: tower names; the teacher tower must be frozen by an ``init``.
        temperature: softmax temperature T.
    """

    def __init__(self, context: HeadContext, student: str = "", teacher: str = "", temperature: float = 2.0) -> None:
        super().__init__()
        if not student or not teacher or student == teacher:
            raise ConfigError(f"distillation needs a student and a teacher tower, different, got {student!r} and {teacher!r}")
        self.towers, self.frozen_towers, self.loss_terms = (student, teacher), (teacher,), ("kl",)
        self.frozen_parts = ("teacher_classifier",)
        classes = len(context.labels)
        self.classifier = nn.Linear(context.pooled_dim(student), classes)
        self.teacher_classifier = nn.Linear(context.pooled_dim(teacher), classes).requires_grad_(False)
        self.kl = DistillationKLLoss(temperature)

    def logits(self, outputs: Mapping[str, EncoderOutput]) -> tuple[Tensor, Tensor]:
        """``(student (B, C), teacher (B, C))`` logits; the teacher's without gradient."""
        with torch.no_grad():
            teacher = self.teacher_classifier(outputs[self.towers[1]].pooled)
        return self.classifier(outputs[self.towers[0]].pooled), teacher

    def forward(self, outputs: Mapping[str, EncoderOutput], batch: Batch) -> dict[str, Tensor]:
        return {"kl": self.kl(*self.logits(outputs))}

    def embeds(self, tower: str) -> bool:
        return tower == self.towers[0]

    def embed(self, tower: str, output: EncoderOutput) -> Tensor:
        return F.normalize(output.pooled, dim=-1)

    def evaluator(self) -> AgreementEvaluator:
        return AgreementEvaluator(self)


class AgreementEvaluator:
    """The student's agreement with the teacher; each one's accuracy where items are labelled."""

    def __init__(self, head: DistillHead) -> None:
        self.head = head
        self.student: list[Tensor] = []
        self.teacher: list[Tensor] = []
        self.labels: list[Tensor] = []

    def update(self, outputs: Mapping[str, EncoderOutput], batch: Batch) -> None:
        student, teacher = self.head.logits(outputs)
        self.student.append(student.argmax(-1).cpu())
        self.teacher.append(teacher.argmax(-1).cpu())
        self.labels.append(batch.labels.cpu())

    def compute(self) -> dict[str, float]:
        student, teacher, labels = (torch.cat(x) for x in (self.student, self.teacher, self.labels))
        out = {"teacher_agreement": float((student == teacher).float().mean())}
        if bool((labels >= 0).all()):  # labels only to report, never to train
            out["student_accuracy"] = float((student == labels).float().mean())
            out["teacher_accuracy"] = float((teacher == labels).float().mean())
        out["score"] = out["teacher_agreement"]
        return out

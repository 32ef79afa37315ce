"""Teacher -> student distillation across modalities, after SoundNet (Aytar et al. 2016).

A frozen ``classify`` model on one modality (the teacher) gives a class
distribution for each pair; the student, on the other modality, learns to
match it through KL divergence. No label of the student's modality is used.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from avkit.config import from_dict, to_dict
from avkit.data.dataset import ManifestDataset
from avkit.errors import ConfigError
from avkit.losses import DistillationKLLoss
from avkit.models.encoders import EncoderOutput
from avkit.models.tower import build_encoder
from avkit.train.checkpoint import load_checkpoint, resolve_checkpoint
from avkit.train.config import TrainConfig
from avkit.train.tasks.base import TASKS, Task, apply_in_batches
from avkit.train.tasks.classify import ClassifyTask


@TASKS.register("distill")
class DistillTask(Task):
    """Student encoder + linear head over the teacher's classes, trained by KL.

    ``modalities = [student, teacher]``; ``distill.teacher`` names the teacher's run.
    ``score`` is the student's top-1 agreement with the teacher on validation.
    """

    def __init__(self, cfg: TrainConfig, label_names: list[str], extra: dict[str, Any] | None = None) -> None:
        super().__init__(cfg, label_names, extra)
        if len(cfg.modalities) != 2 or cfg.modalities[0] == cfg.modalities[1]:
            raise ConfigError(f"modalities: distill needs [student, teacher] modalities, got {cfg.modalities}")
        self.modalities = (cfg.modalities[0], cfg.modalities[1])
        if extra and "teacher" in extra:  # rebuilding from our own checkpoint: weights come with it
            teacher_cfg = from_dict(TrainConfig, extra["teacher"]["config"])
            self.teacher = ClassifyTask(teacher_cfg, extra["teacher"]["label_names"])
        else:
            self.teacher = self._load_teacher(cfg)
        if self.teacher.modalities[0] != self.modalities[1]:
            raise ConfigError(f"distill.teacher classifies {self.teacher.modalities[0]!r}, "
                              f"but modalities[1] is {self.modalities[1]!r}")  # fmt: skip
        self.teacher.requires_grad_(False)
        self.student = build_encoder(self.modalities[0], cfg.encoders.get(self.modalities[0]))
        self.head = nn.Linear(self.student.out_dim, len(self.teacher.label_names))
        self.kl = DistillationKLLoss(cfg.distill.temperature)

    @staticmethod
    def _load_teacher(cfg: TrainConfig) -> ClassifyTask:
        if not cfg.distill.teacher:
            raise ConfigError("distill.teacher: set it to the run directory of a trained classify run")
        ckpt = load_checkpoint(resolve_checkpoint(cfg.distill.teacher))
        if ckpt.state.get("task") != "classify":
            raise ConfigError(f"distill.teacher {cfg.distill.teacher}: expected a classify run, got {ckpt.state.get('task')!r}")
        teacher = ClassifyTask(from_dict(TrainConfig, ckpt.state["config"]), ckpt.state["label_names"])
        teacher.load_state_dict(ckpt.model_state())
        return teacher

    def train(self, mode: bool = True) -> DistillTask:
        super().train(mode)
        self.teacher.eval()  # frozen: BatchNorm statistics stay the teacher's
        return self

    def student_logits(self, x: Tensor) -> Tensor:
        """``(B, ...) -> (B, teacher classes)``."""
        return self.head(self.student(x).pooled)

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        with torch.no_grad():
            teacher_logits = self.teacher.logits(batch[self.modalities[1]])
        student_logits = self.student_logits(batch[self.modalities[0]])
        loss = self.kl(student_logits, teacher_logits)
        agree = (student_logits.argmax(-1) == teacher_logits.argmax(-1)).float().mean()
        return loss, {"teacher_agreement": float(agree)}

    def features(self, modality: str, x: Tensor) -> EncoderOutput:
        if modality != self.modalities[0]:
            raise ConfigError(f"this distilled model embeds {self.modalities[0]!r} only, not {modality!r}")
        return self.student(x)

    def embedding_modalities(self) -> tuple[str, ...]:
        return (self.modalities[0],)

    def evaluate(self, ds: ManifestDataset) -> dict[str, float]:
        was_training = self.training
        self.eval()
        device = self.head.weight.device
        student = apply_in_batches(self.student_logits, ds.tensors[self.modalities[0]], device).argmax(-1)
        teacher = apply_in_batches(self.teacher.logits, ds.tensors[self.modalities[1]], device).argmax(-1)
        self.train(was_training)
        out = {"teacher_agreement": float((student == teacher).float().mean())}
        if ds.has_labels and ds.label_names == self.teacher.label_names:  # labels only to report, never to train
            out["student_accuracy"] = float((student == ds.labels).float().mean())
            out["teacher_accuracy"] = float((teacher == ds.labels).float().mean())
        out["score"] = out["teacher_agreement"]
        return out

    def extra_state(self) -> dict[str, Any]:
        return {"teacher": {"config": to_dict(self.teacher.cfg), "label_names": self.teacher.label_names}}

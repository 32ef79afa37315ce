"""A new head in one file: regress a number the manifest gives (audio -> its SNR in dB, say).

Load this file and ``regress`` is a head kind like ``contrastive``: name it in a
model config, and ``avkit train``, checkpoints, ``load_model``, resume and DDP
work with it. No avkit file is edited.

    avkit --plugin docs/examples/regression_head.py train my-config.toml

    [model.heads.regress]          # in the model config
    tower = "audio"
    field = "snr_db"               # a numeric key of every manifest line (AV-digits has it)
    mean = 17.5                    # standardise the target (the SNRs lie in 5-30 dB)
    std = 7.2
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avkit.data.batch import Batch
from avkit.models import EncoderOutput, Head, HeadContext, register_head


@register_head("regress")
class RegressionHead(Head):
    """A linear read-out of a tower's pooled vector, trained by smooth L1 on a standardised manifest field.

    Loss term: ``l1``. Metrics: ``mae`` (in the field's units), ``r2``, ``score`` (= ``r2``).
    """

    def __init__(self, context: HeadContext, tower: str = "audio", field: str = "snr_db",
                 mean: float = 0.0, std: float = 1.0) -> None:  # fmt: skip
        super().__init__()
        self.towers = (tower,)  # what it reads
        self.targets = (field,)  # every training item must have it: checked before training starts
        self.loss_terms = ("l1",)  # what forward returns; the run config can weigh it
        self.field, self.mean, self.std = field, mean, std
        self.readout = nn.Linear(context.pooled_dim(tower), 1)

    def predict(self, outputs: Mapping[str, EncoderOutput]) -> Tensor:
        """``(B,)`` predictions in the field's units."""
        return self.readout(outputs[self.towers[0]].pooled).squeeze(-1) * self.std + self.mean

    def forward(self, outputs: Mapping[str, EncoderOutput], batch: Batch) -> dict[str, Tensor]:
        target = (batch.fields[self.field] - self.mean) / self.std
        return {"l1": F.smooth_l1_loss((self.predict(outputs) - self.mean) / self.std, target)}

    def evaluator(self) -> RegressionEvaluator:
        return RegressionEvaluator(self)


class RegressionEvaluator:
    """Mean absolute error and R² over a dataset."""

    def __init__(self, head: RegressionHead) -> None:
        self.head = head
        self.pred: list[Tensor] = []
        self.true: list[Tensor] = []

    def update(self, outputs: Mapping[str, EncoderOutput], batch: Batch) -> None:
        self.pred.append(self.head.predict(outputs).float().cpu())
        self.true.append(batch.fields[self.head.field].cpu())

    def compute(self) -> dict[str, float]:
        pred, true = torch.cat(self.pred), torch.cat(self.true)
        r2 = 1 - float(((pred - true) ** 2).sum() / ((true - true.mean()) ** 2).sum().clamp(min=1e-12))
        return {"mae": float((pred - true).abs().mean()), "r2": r2, "score": r2}

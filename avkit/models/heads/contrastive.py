"""``contrastive``: two towers into one shared space (CLIP-style), with optional semantic regularisation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from avkit.data.batch import Batch
from avkit.errors import ConfigError
from avkit.evaluation import retrieval_metrics
from avkit.losses import PAIR_LOSSES, SemanticRegularizer
from avkit.models.encoders import EncoderOutput
from avkit.models.heads.base import Head, HeadContext, register_head
from avkit.models.projections import PROJECTIONS


@register_head("contrastive")
class ContrastiveHead(Head):
    """A projection per tower into ``embed_dim`` (unit norm); InfoNCE or triplet on the paired rows.

    Loss terms: ``infonce`` or ``triplet``; ``semantic`` (a classifier shared by both
    sides, Salvador et al. 2017) when ``semantic`` is on. Validation ranks the other
    side's items for every query, both ways; ``score`` is the mean of the two mAPs.

    Args:
        towers: the two towers to match (default: the model's first two); the first is
            the query side in reports.
        projection: ``linear`` or ``mlp`` (``avkit.models.projections``).
        loss: ``infonce`` (learnable clamped temperature) or ``triplet`` (VSE++ hardest negative).
        temperature: InfoNCE's initial temperature. margin: the triplet margin.
        semantic: add the shared-classifier term (needs a label on every training item).
    """

    def __init__(
        self,
        context: HeadContext,
        towers: Sequence[str] | None = None,
        projection: str = "linear",
        loss: str = "infonce",
        temperature: float = 0.07,
        margin: float = 0.2,
        semantic: bool = False,
    ) -> None:
        super().__init__()
        towers = tuple(towers) if towers is not None else tuple(context.towers)[:2]
        if len(towers) != 2 or towers[0] == towers[1]:
            raise ConfigError(f"contrastive matching needs two different towers, got {list(towers)}")
        self.towers = towers
        self.projections = nn.ModuleDict({
            t: PROJECTIONS.create(projection, in_dim=context.pooled_dim(t), embed_dim=context.embed_dim) for t in towers
        })  # fmt: skip
        kwargs = {"infonce": {"init_temperature": temperature}, "triplet": {"margin": margin}}.get(loss, {})
        self.pair_loss = PAIR_LOSSES.create(loss, **kwargs)
        self.loss_name = loss
        self.semantic = SemanticRegularizer(context.embed_dim, len(context.labels)) if semantic else None
        if semantic and len(context.labels) < 2:
            raise ConfigError("semantic regularisation needs labels of at least 2 classes")
        self.targets = ("label",) if semantic else ()
        self.loss_terms = (loss, "semantic") if semantic else (loss,)

    def embeds(self, tower: str) -> bool:
        return tower in self.towers

    def embed(self, tower: str, output: EncoderOutput) -> Tensor:
        return self.projections[tower](output.pooled)

    def forward(self, outputs: Mapping[str, EncoderOutput], batch: Batch) -> dict[str, Tensor]:
        a, b = (self.embed(t, outputs[t]) for t in self.towers)
        terms = {self.loss_name: self.pair_loss(a, b)}
        if self.semantic is not None:
            terms["semantic"] = self.semantic([a, b], batch.labels)
        return terms

    def logs(self) -> dict[str, float]:
        return {"temperature": self.pair_loss.temperature} if hasattr(self.pair_loss, "temperature") else {}

    def evaluator(self) -> CrossModalEvaluator:
        return CrossModalEvaluator(self)


class CrossModalEvaluator:
    """Retrieval both ways between a head's two towers: ``{q}_to_{g}/R@1, R@5, R@10, mAP, median_rank``.

    Relevance is class-level when every item has a label, pair-level otherwise.
    """

    def __init__(self, head: Head) -> None:
        self.head = head
        self.emb: dict[str, list[Tensor]] = {t: [] for t in head.towers}
        self.labels: list[Tensor] = []

    def update(self, outputs: Mapping[str, EncoderOutput], batch: Batch) -> None:
        for t in self.head.towers:
            self.emb[t].append(self.head.embed(t, outputs[t]).float().cpu())
        self.labels.append(batch.labels.cpu())

    def compute(self) -> dict[str, float]:
        emb = {t: torch.cat(v) for t, v in self.emb.items()}
        labels = torch.cat(self.labels)
        labels = labels if bool((labels >= 0).all()) else None
        first, second = self.head.towers[:2]
        out: dict[str, float] = {}
        for q, g in ((first, second), (second, first)):
            for key, value in retrieval_metrics(emb[q], emb[g], labels, labels).items():
                if key != "queries":
                    out[f"{q}_to_{g}/{key}"] = value
        out["score"] = (out[f"{first}_to_{second}/mAP"] + out[f"{second}_to_{first}/mAP"]) / 2
        return out

"""What a task is: a model plus its training loss, validation, and embeddings.

The training engine knows only this interface; tasks know their modalities by
the names in the config, never by literal.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avkit.data.dataset import ManifestDataset
from avkit.models.encoders import EncoderOutput
from avkit.registry import Registry
from avkit.train.config import TrainConfig

#: Tasks, by name: ``TASKS.create("contrastive", cfg=cfg, label_names=names)``.
TASKS: Registry[Task] = Registry("task")


class Task(nn.Module):
    """A trainable objective.

    Subclasses set ``self.modalities`` (the manifest fields a batch needs) and implement:

    - ``forward(batch) -> (loss, logs)``: the training loss of one batch
      (``batch[modality]`` is ``(B, ...)``, ``batch["label"]`` is ``(B,)``, -1 if unlabelled);
    - ``features(modality, x) -> EncoderOutput`` and ``embed(modality, x) -> (B, D)``;
    - ``evaluate(ds) -> metrics``, including ``score`` (higher is better; picks ``best``).

    ``extra_state()`` is JSON saved in checkpoints and handed back to the
    constructor as ``extra`` when a checkpoint is loaded (a distilled student
    keeps its teacher's architecture there).
    """

    modalities: tuple[str, ...]

    def __init__(self, cfg: TrainConfig, label_names: list[str], extra: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.cfg, self.label_names = cfg, list(label_names)

    def features(self, modality: str, x: Tensor) -> EncoderOutput:
        raise NotImplementedError

    def embed(self, modality: str, x: Tensor) -> Tensor:
        """Unit-norm embeddings ``(B, D)``; by default the encoder's pooled vector, normalised."""
        return F.normalize(self.features(modality, x).pooled, dim=-1)

    def evaluate(self, ds: ManifestDataset) -> dict[str, float]:
        raise NotImplementedError

    def extra_state(self) -> dict[str, Any]:
        return {}

    def embedding_modalities(self) -> tuple[str, ...]:
        """The modalities this task can embed (what ``avkit embed --modality`` accepts)."""
        return self.modalities


@torch.no_grad()
def embed_tensor(task: Task, modality: str, x: Tensor, batch_size: int = 256) -> Tensor:
    """Embed ``(N, ...)`` items in eval mode, ``batch_size`` at a time -> ``(N, D)``."""
    was_training = task.training
    task.eval()
    device = next(task.parameters()).device
    out = [task.embed(modality, x[i : i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)]
    task.train(was_training)
    return torch.cat(out)


@torch.no_grad()
def apply_in_batches(fn: Any, x: Tensor, device: torch.device, batch_size: int = 256) -> Tensor:
    """``fn`` over ``(N, ...)`` in chunks on ``device``, concatenated on the CPU."""
    return torch.cat([fn(x[i : i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)])

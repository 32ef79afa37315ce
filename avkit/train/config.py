"""The training config: one dataclass tree, loaded from TOML/JSON plus ``--set key=value``.

    cfg = load_config(TrainConfig, "experiments/configs/contrastive.toml", ["optim.epochs=5"])

Any config may point at any manifest; modalities are named, never assumed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass
class LossConfig:
    """The matching loss (``contrastive`` task).

    Attributes:
        kind: ``infonce`` (symmetric, learnable clamped temperature) or ``triplet``.
        temperature: InfoNCE's initial temperature.
        margin: the triplet margin on cosine similarity.
        semantic_weight: λ of the shared classifier over both embeddings (0: off).
    """

    kind: Literal["infonce", "triplet"] = "infonce"
    temperature: float = 0.07
    margin: float = 0.2
    semantic_weight: float = 0.0


@dataclass
class DistillConfig:
    """Teacher -> student (``distill`` task).

    Attributes:
        teacher: run directory (or checkpoint file) of a trained ``classify`` run.
        temperature: softmax temperature T of the KL loss.
    """

    teacher: str = ""
    temperature: float = 2.0


@dataclass
class OptimConfig:
    """AdamW with linear warm-up and cosine decay, stepped per batch."""

    epochs: int = 10
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    grad_clip: float = 5.0


@dataclass
class TrainConfig:
    """One training run.

    Attributes:
        task: ``contrastive``, ``classify`` or ``distill`` (see ``avkit.train.tasks``).
        manifest: the data; ``train_split`` trains, ``val_split`` validates.
        modalities: manifest fields used, in order. ``contrastive``: the two sides
            (the first is the query side in reports). ``classify``: one.
            ``distill``: ``[student, teacher]``.
        encoders: modality -> ``{"name": encoder, ...constructor kwargs}``
            (a missing name means the modality's default encoder).
        head: projection head (``linear`` or ``mlp``) into ``embed_dim``.
        checkpoint_every: save ``last`` every this many steps (and at each epoch end).
        eval_every: validate every this many epochs (and after the last).
        record_samples: log which dataset indices each epoch used (``samples.jsonl``).
        strict: refuse the run if any item fails to load (default: skip and report).
    """

    task: str = "contrastive"
    manifest: str = ""
    out: str = ""
    seed: int = 0
    modalities: list[str] = field(default_factory=list)
    encoders: dict[str, Any] = field(default_factory=dict)
    head: str = "linear"
    embed_dim: int = 128
    loss: LossConfig = field(default_factory=LossConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train_split: str = "train"
    val_split: str = "val"
    checkpoint_every: int = 100
    eval_every: int = 1
    log_every: int = 10
    record_samples: bool = False
    strict: bool = False
    threads: int = 0

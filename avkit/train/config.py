"""The run config: data, optimisation, augmentation, output; the model config is a part of it, kept apart.

    cfg = load_run_config("experiments/configs/contrastive.toml", ["optim.epochs=5"])

A run config file either holds the model as a ``[model]`` table or names a model
config file, relative to itself (``model = "models/av-small.toml"``, as
open_clip's ``model_configs/``). Overrides reach either: ``--set
model.embed_dim=64``. The resolved config, model inlined, is what a run records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from avkit.config import apply_overrides, from_dict, read_config_file
from avkit.errors import ConfigError
from avkit.models.config import ModelConfig


@dataclass
class DataConfig:
    """Where the data comes from and how it is read.

    Attributes:
        manifest: the data; ``train_split`` trains, ``val_split`` validates (and picks the best checkpoint).
        workers: DataLoader worker processes (0: read in the training process).
        in_memory: decode every item once, up front (small data; also finds bad items before training).
        feature_cache: tower -> feature cache file (``avkit features``), used when its settings
            match the tower's and the tower's augmentation can work on it; otherwise not at all.
        strict: refuse the run on the first bad item (default: skip it, count it, report it).
        shards: a shard folder (``avkit data shard``) to stream the training split from instead of
            the manifest, which still gives the validation split and the labels.
        shuffle_buffer: items each DataLoader worker mixes when streaming shards (they were mixed
            when written; each buffered item costs about 90 KB per worker for AV-digits).
    """

    manifest: str = ""
    train_split: str = "train"
    val_split: str = "val"
    shards: str = ""
    shuffle_buffer: int = 256
    workers: int = 0
    in_memory: bool = False
    feature_cache: dict[str, str] = field(default_factory=dict)
    strict: bool = False


@dataclass
class OptimConfig:
    """AdamW with linear warm-up and cosine decay, stepped per batch; no weight decay on biases,
    norm layers and temperatures (open_clip)."""

    epochs: int = 10
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    grad_clip: float = 5.0


@dataclass
class RunConfig:
    """One training run.

    Attributes:
        model: the architecture (:class:`~avkit.models.ModelConfig`), saved with every checkpoint.
        data, optim: see :class:`DataConfig`, :class:`OptimConfig`.
        augment: tower -> that modality's augmentation settings, used in training only
            (``AudioAugment``, ``ImageAugment`` in ``avkit.modalities``).
        loss_weights: head -> loss term -> weight (default 1.0); the loss is the weighted sum.
        select: the validation metric that picks ``best`` (default: the first trained head's ``score``).
        checkpoint_every: save ``last`` every this many steps (and at each epoch end).
        eval_every: validate every this many epochs (and after the last).
        keep_epoch_checkpoints: also keep the model of every epoch (``checkpoints/epoch-N``).
        record_samples: log which dataset indices each process used, per epoch.
        threads: torch threads (0: torch's default).
        precision: ``fp32``, or ``bf16`` autocast for the forward pass.
        channels_last: NHWC memory format for 2-D convolutions.
        compile: ``torch.compile`` the model for training.
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    augment: dict[str, dict[str, Any]] = field(default_factory=dict)
    loss_weights: dict[str, dict[str, float]] = field(default_factory=dict)
    select: str = ""
    out: str = ""
    seed: int = 0
    checkpoint_every: int = 100
    eval_every: int = 1
    log_every: int = 10
    keep_epoch_checkpoints: bool = False
    record_samples: bool = False
    threads: int = 0
    precision: Literal["fp32", "bf16"] = "fp32"
    channels_last: bool = False
    compile: bool = False


def resolve_model_file(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """Replace ``model = "file"`` (relative to ``base``) with that file's contents."""
    if isinstance(data.get("model"), str):
        path = Path(data["model"])
        path = path if path.is_absolute() else base / path
        data = {**data, "model": read_config_file(path)}
    return data


def load_run_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> RunConfig:
    """Defaults, updated by the file at ``path`` (its model file inlined), then by ``key=value`` overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        data = resolve_model_file(read_config_file(path), Path(path).parent)
    if "task" in data and "model" not in data:
        raise ConfigError(f"{path}: an avkit 0.1 config (with 'task'); configs now hold [model] towers and heads "
                          "apart from the run settings: see experiments/configs/ and docs/architecture.md")  # fmt: skip
    return from_dict(RunConfig, apply_overrides(data, overrides))

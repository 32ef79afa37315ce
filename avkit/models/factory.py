"""Build models from configs, and rebuild them from checkpoints alone (open_clip's ``factory.py``).

    model = create_model({"towers": {...}, "heads": {...}})   # fresh, with its inits applied
    model = load_model("runs/contrastive")                    # its best checkpoint, in eval mode
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from avkit.config import from_dict, to_dict
from avkit.errors import ArtifactError, ConfigError
from avkit.modalities import get_modality
from avkit.models.checkpoint import Checkpoint, load_checkpoint, resolve_checkpoint
from avkit.models.config import ModelConfig, TowerConfig
from avkit.models.encoders import ENCODERS
from avkit.models.model import AVModel


def model_config(config: ModelConfig | Mapping[str, Any]) -> ModelConfig:
    """A :class:`ModelConfig` from itself or from plain data (unknown keys are refused)."""
    return config if isinstance(config, ModelConfig) else from_dict(ModelConfig, dict(config), prefix="model.")


def create_model(config: ModelConfig | Mapping[str, Any], init: bool = True) -> AVModel:
    """A freshly initialised model; with ``init``, the config's weight copies from other runs are applied.

    Raises:
        ConfigError: an unknown encoder, head or modality (the registered ones are listed), bad
            arguments, or an ``init`` whose source does not fit.
    """
    model = AVModel(model_config(config))
    if init:
        for name, spec in model.config.init.items():
            apply_init(model, name, spec.checkpoint, spec.parts)
    return model


def load_model(run_or_checkpoint: str | Path, which: str = "best") -> AVModel:
    """The model of a run directory (its ``which`` checkpoint, else ``last``) or a checkpoint file, in eval mode.

    Raises:
        ArtifactError: a missing or corrupt checkpoint, a config naming an unregistered encoder
            or head (the registered ones are listed), or weights that do not fit the config.
    """
    ckpt = load_checkpoint(resolve_checkpoint(run_or_checkpoint, which))
    return model_from_checkpoint(ckpt)


def model_from_checkpoint(ckpt: Checkpoint) -> AVModel:
    """Rebuild and fill the model a loaded checkpoint holds (eval mode)."""
    try:
        model = AVModel(model_config(ckpt.model_config))
    except ConfigError as exc:
        raise ArtifactError(ckpt.path, f"its model cannot be rebuilt: {exc}") from None
    try:
        model.load_state_dict(ckpt.model_state())
    except RuntimeError as exc:
        raise ArtifactError(ckpt.path, f"weights do not fit the recorded model ({str(exc).splitlines()[0]})") from None
    model.fingerprint = ckpt.fingerprint
    return model.eval()


def _tower_identity(cfg: TowerConfig, name: str) -> dict[str, Any]:
    """What must agree for a tower's weights to mean the same thing elsewhere."""
    modality = cfg.modality or name
    mod = get_modality(modality)
    encoder = dict(cfg.encoder)
    encoder.setdefault("name", mod.encoders[0])
    defaults = {k: p.default for k, p in inspect.signature(ENCODERS.get(encoder["name"])).parameters.items()
                if p.default is not inspect.Parameter.empty}  # fmt: skip
    encoder = {**defaults, **encoder}  # written out or left to its default: the same encoder
    settings = to_dict(mod.parse_settings(cfg.preprocess)) if mod.settings is not None else {}
    return {"modality": modality, "encoder": encoder, "preprocess": settings}


def apply_init(model: AVModel, name: str, checkpoint: str, parts: Mapping[str, str]) -> None:
    """Copy ``parts`` (this model's module -> the source's module) from ``checkpoint`` into ``model``.

    Raises:
        ConfigError: no checkpoint given, a module missing on either side, a copied tower
            whose config differs from the source's, or class names that differ.
    """
    where = f"model.init.{name}"
    if not checkpoint:
        raise ConfigError(f"{where}.checkpoint: set it to the run directory (or checkpoint) to copy from")
    if not parts:
        raise ConfigError(f"{where}.parts: name the modules to copy, e.g. {{\"towers.image\" = \"towers.image\"}}")
    src = load_checkpoint(resolve_checkpoint(checkpoint))
    try:
        src_cfg = model_config(src.model_config)
    except ConfigError as exc:
        raise ArtifactError(src.path, f"its model config cannot be read: {exc}") from None
    state = src.model_state()
    for dst, part in parts.items():
        module = model._module(dst)
        kind, _, rest = part.partition(".")
        if kind == "towers" and "." not in rest and dst.startswith("towers.") and dst.count(".") == 1:
            if rest not in src_cfg.towers:
                raise ConfigError(f"{where}: {src.path} has no tower {rest!r}; it has {list(src_cfg.towers)}")
            ours = _tower_identity(model.config.towers[dst.split(".")[1]], dst.split(".")[1])
            theirs = _tower_identity(src_cfg.towers[rest], rest)
            if ours != theirs:
                raise ConfigError(f"{where}: {dst} must have the config of {part} in {src.path} to take its weights: "
                                  f"{theirs} there, {ours} here")  # fmt: skip
        if kind == "heads" and list(src_cfg.labels) != list(model.config.labels):
            raise ConfigError(f"{where}: {src.path} was trained on classes {src_cfg.labels}, this model on "
                              f"{model.config.labels}")  # fmt: skip
        weights = {k[len(part) + 1 :]: v for k, v in state.items() if k.startswith(part + ".")}
        if not weights:
            raise ConfigError(f"{where}: {src.path} has no weights under {part!r}")
        try:
            module.load_state_dict(weights)
        except RuntimeError as exc:
            raise ConfigError(f"{where}: {part} of {src.path} does not fit {dst} ({str(exc).splitlines()[0]})") from None

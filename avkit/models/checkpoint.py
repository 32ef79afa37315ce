"""Checkpoints: a model's weights and config, plus whatever state the trainer adds, in one artifact.

A checkpoint (``avkit.artifacts`` kind ``checkpoint``) holds the model's tensors
(``model/...``), optionally the trainer's (``optim/...``, ``rng/torch``), and in
its header the model config (``model``), the weights' fingerprint and the
trainer's JSON ``state`` (step, epoch, run config, ...). A readable copy of the
header is written beside it (``last.json``). The model config alone rebuilds
the model: ``avkit.models.load_model``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from avkit.artifacts import load_artifact, require_fields, save_artifact, tensor_digest
from avkit.config import to_dict
from avkit.errors import ArtifactError
from avkit.fileio import atomic_write_json
from avkit.models.config import ModelConfig

KIND, FORMAT = "checkpoint", 2


def fingerprint(model_state: dict[str, Tensor]) -> str:
    """SHA-256 (first 16 hex digits) of a model's tensors: names, dtypes, shapes and bytes."""
    h = hashlib.sha256()
    for name in sorted(model_state):
        tensor_digest(name, model_state[name], h)
    return h.hexdigest()[:16]


@dataclass
class Checkpoint:
    """A loaded checkpoint."""

    path: Path
    header: dict[str, Any]
    tensors: dict[str, Tensor]

    @property
    def model_config(self) -> dict[str, Any]:
        return self.header["model"]

    @property
    def fingerprint(self) -> str:
        return self.header["fingerprint"]

    @property
    def state(self) -> dict[str, Any]:
        """The trainer's JSON state ({} if none)."""
        return self.header.get("state", {})

    def model_state(self) -> dict[str, Tensor]:
        return {k[len("model/"):]: v for k, v in self.tensors.items() if k.startswith("model/")}

    def tensors_under(self, prefix: str) -> dict[str, Tensor]:
        """Non-model tensors stored under ``prefix/`` (the trainer's), with the prefix removed."""
        return {k[len(prefix) + 1 :]: v for k, v in self.tensors.items() if k.startswith(prefix + "/")}


def save_checkpoint(
    path: str | Path,
    model_state: dict[str, Tensor],
    model_config: ModelConfig | dict[str, Any],
    state: dict[str, Any] | None = None,
    extra_tensors: dict[str, Tensor] | None = None,
) -> str:
    """Write a checkpoint and its JSON twin atomically; returns the weights' fingerprint.

    Args:
        extra_tensors: the trainer's tensors, keyed ``prefix/name`` (not ``model/``).
    """
    path = Path(path)
    fp = fingerprint(model_state)
    config = model_config if isinstance(model_config, dict) else to_dict(model_config)
    header = {"model": config, "fingerprint": fp, "state": state or {}}
    tensors = {f"model/{k}": v for k, v in model_state.items()}
    for key, value in (extra_tensors or {}).items():
        if key.startswith("model/"):
            raise ValueError(f"extra tensor {key!r} would shadow the model's")
        tensors[key] = value
    save_artifact(path, KIND, tensors, header, FORMAT)
    atomic_write_json(path.with_suffix(".json"), {**header, "format": FORMAT})
    return fp


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint file.

    Raises:
        ArtifactError: missing, truncated or corrupt, not an avkit checkpoint, or an older format.
    """
    art = load_artifact(path, KIND, formats={FORMAT})
    require_fields(art.path, art.header, KIND, {"model": dict, "fingerprint": str, "state": dict})
    ckpt = Checkpoint(art.path, art.header, art.tensors)
    if fingerprint(ckpt.model_state()) != ckpt.fingerprint:
        raise ArtifactError(art.path, "the model's weights do not match the checkpoint's fingerprint; the file is damaged")
    return ckpt


def resolve_checkpoint(run_or_file: str | Path, which: str = "best") -> Path:
    """A checkpoint file from a run directory (``which``: ``best``, falling back to ``last``) or a file path."""
    p = Path(run_or_file)
    if p.is_dir():
        for name in (which, "last"):
            candidate = p / "checkpoints" / f"{name}.safetensors"
            if candidate.is_file():
                return candidate
        raise ArtifactError(p, "run directory has no checkpoints/best.safetensors or last.safetensors")
    return p

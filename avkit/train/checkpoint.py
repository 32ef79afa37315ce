"""Checkpoints: one safetensors file (tensors + JSON state in its header), no pickle.

A checkpoint holds the model's tensors (``model/...``), optionally the
optimiser's (``optim/...``) and the torch RNG (``rng/torch``); everything else
(step, epoch, config, label names, scheduler, optimiser hyper-parameters) is
JSON in the header's ``avkit`` entry. A readable copy of that JSON is written
beside it (``last.json``). The file is written atomically, so a crash never
leaves a half-written checkpoint in place of a good one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_save
from torch import Tensor

from avkit.errors import ArtifactError
from avkit.fileio import atomic_write_bytes, atomic_write_json

FORMAT = 1


def fingerprint(model_state: dict[str, Tensor]) -> str:
    """SHA-256 (first 16 hex digits) of a model's tensors: names, dtypes, shapes and bytes."""
    h = hashlib.sha256()
    for name in sorted(model_state):
        t = model_state[name].detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    tensors, scalars = {}, {}
    for idx, slots in state["state"].items():
        for key, value in slots.items():
            if isinstance(value, Tensor):
                tensors[f"optim/{idx}/{key}"] = value
            else:
                scalars[f"{idx}/{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


@dataclass
class Checkpoint:
    """A loaded checkpoint: its JSON ``state`` and its ``tensors``."""

    path: Path
    state: dict[str, Any]
    tensors: dict[str, Tensor]

    def model_state(self) -> dict[str, Tensor]:
        return {k[len("model/"):]: v for k, v in self.tensors.items() if k.startswith("model/")}

    def optimizer_state(self) -> dict[str, Any] | None:
        """The optimiser's ``state_dict``, or None if this checkpoint has none (a ``best`` file)."""
        opt = self.state.get("optimizer")
        if opt is None:
            return None
        slots: dict[int, dict[str, Any]] = {}
        for key, value in self.tensors.items():
            if key.startswith("optim/"):
                _, idx, name = key.split("/", 2)
                slots.setdefault(int(idx), {})[name] = value
        for key, value in opt["scalars"].items():
            idx, name = key.split("/", 1)
            slots.setdefault(int(idx), {})[name] = value
        return {"state": slots, "param_groups": opt["param_groups"]}


def save_checkpoint(
    path: str | Path,
    model_state: dict[str, Tensor],
    state: dict[str, Any],
    optimizer_state: dict[str, Any] | None = None,
    rng_state: Tensor | None = None,
) -> str:
    """Write a checkpoint (and its JSON twin) atomically; returns the model fingerprint."""
    path = Path(path)
    tensors = {f"model/{k}": v.detach().cpu().contiguous().clone() for k, v in model_state.items()}
    state = {**state, "format": FORMAT, "fingerprint": fingerprint(model_state)}
    if optimizer_state is not None:
        opt_tensors, state["optimizer"] = _flatten_optimizer(optimizer_state)
        tensors.update({k: v.detach().cpu().contiguous().clone() for k, v in opt_tensors.items()})
    if rng_state is not None:
        tensors["rng/torch"] = rng_state.clone()
    atomic_write_bytes(path, safetensors_save(tensors, metadata={"avkit": json.dumps(state)}))
    atomic_write_json(path.with_suffix(".json"), {k: v for k, v in state.items() if k != "optimizer"})
    return state["fingerprint"]


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint file.

    Raises:
        ArtifactError: missing, truncated or corrupt file, or not an avkit checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(path, "checkpoint does not exist; expected a .safetensors file written by avkit train")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ArtifactError(path, f"corrupt or unreadable checkpoint ({exc}); expected a safetensors file") from None
    if "avkit" not in meta:
        raise ArtifactError(path, "a safetensors file, but not an avkit checkpoint (no 'avkit' header entry)")
    try:
        state = json.loads(meta["avkit"])
    except json.JSONDecodeError as exc:
        raise ArtifactError(path, f"checkpoint header is not valid JSON ({exc})") from None
    if state.get("format") != FORMAT:
        raise ArtifactError(path, f"checkpoint format {state.get('format')!r}; this avkit reads format {FORMAT}")
    return Checkpoint(path, state, tensors)


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

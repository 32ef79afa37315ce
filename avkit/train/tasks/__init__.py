"""Tasks, registered by name: ``contrastive``, ``classify``, ``distill``.

    task = build_task(cfg, label_names)          # a fresh model for a config
    task, ckpt = load_task("runs/contrastive")    # a trained one, from its best checkpoint
"""

from __future__ import annotations

from pathlib import Path

from avkit.config import from_dict
from avkit.errors import ArtifactError, ConfigError
from avkit.train.checkpoint import Checkpoint, load_checkpoint, resolve_checkpoint
from avkit.train.config import TrainConfig
from avkit.train.tasks import classify, contrastive, distill  # noqa: F401  (registers the built-ins)
from avkit.train.tasks.base import TASKS, Task, embed_tensor


def build_task(cfg: TrainConfig, label_names: list[str], extra: dict | None = None) -> Task:
    """The registered task ``cfg.task``, freshly initialised."""
    return TASKS.create(cfg.task, cfg=cfg, label_names=label_names, extra=extra)


def load_task(run_or_checkpoint: str | Path, which: str = "best") -> tuple[Task, Checkpoint]:
    """A trained task in eval mode, from a run directory or a checkpoint file.

    Raises:
        ArtifactError: missing or corrupt checkpoint, or weights that do not fit the recorded config.
    """
    ckpt = load_checkpoint(resolve_checkpoint(run_or_checkpoint, which))
    try:
        cfg = from_dict(TrainConfig, ckpt.state["config"])
        task = build_task(cfg, ckpt.state["label_names"], ckpt.state.get("extra"))
    except (KeyError, ConfigError) as exc:
        raise ArtifactError(ckpt.path, f"checkpoint config cannot be rebuilt ({exc})") from None
    try:
        task.load_state_dict(ckpt.model_state())
    except RuntimeError as exc:
        raise ArtifactError(ckpt.path, f"weights do not fit the recorded model ({str(exc).splitlines()[0]})") from None
    return task.eval(), ckpt


__all__ = ["TASKS", "Task", "build_task", "embed_tensor", "load_task"]

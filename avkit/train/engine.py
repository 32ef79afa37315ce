"""The training engine: one loop for every task, on one process or many (``torchrun``).

    result = train(load_config(TrainConfig, "experiments/configs/contrastive.toml"))

A run directory holds everything about a run:

    config.json          the resolved config          environment.json  seed, git commit, versions
    metrics.jsonl        one row per log/validation    samples.jsonl     indices seen per epoch (opt-in)
    checkpoints/         last.* and best.* (safetensors + JSON)
    plots/curves.png     loss and validation curves    summary.json      the final numbers

``resume=True`` continues from ``checkpoints/last.safetensors`` exactly: model,
optimiser, scheduler, torch RNG, epoch and position within the epoch (each
epoch's order depends only on the seed and the epoch number).
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from avkit.config import to_dict
from avkit.data.dataset import ManifestDataset
from avkit.data.manifest import read_manifest
from avkit.errors import ConfigError
from avkit.fileio import atomic_write_json, atomic_write_text
from avkit.provenance import environment_info
from avkit.train.checkpoint import load_checkpoint, save_checkpoint
from avkit.train.config import TrainConfig
from avkit.train.distributed import (
    DistInfo,
    barrier,
    epoch_batches,
    gather_objects,
    init_distributed,
    mean_across,
)
from avkit.train.plots import plot_curves
from avkit.train.tasks import Task, build_task

log = logging.getLogger(__name__)


class WarmupCosine:
    """LR multiplier: linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``total``."""

    def __init__(self, warmup: int, total: int) -> None:
        self.warmup, self.total = warmup, total

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        progress = (step - self.warmup) / max(1, self.total - self.warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


@dataclass
class RunResult:
    """What a finished run reports (also written to ``summary.json``)."""

    run_dir: Path
    steps: int
    seconds: float
    best_score: float
    best_metrics: dict[str, float]
    fingerprint: str


def _check_config(cfg: TrainConfig) -> None:
    if not cfg.manifest:
        raise ConfigError("manifest: set the manifest to train on (e.g. --set manifest=data/digits/manifest.jsonl)")
    if not cfg.out:
        raise ConfigError("out: set the run directory (e.g. --set out=runs/my-run)")
    if not cfg.modalities:
        raise ConfigError("modalities: name the manifest fields to train on, e.g. [\"audio\", \"image\"]")
    for name in ("epochs", "batch_size", "checkpoint_every", "eval_every", "log_every"):
        owner = cfg.optim if hasattr(cfg.optim, name) else cfg
        if getattr(owner, name) < 1:
            raise ConfigError(f"{name}: must be at least 1, got {getattr(owner, name)}")


def _config_diff(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _config_diff(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


class _Run:
    """The state of one training run on one process."""

    def __init__(self, cfg: TrainConfig, resume: bool, show_progress: bool) -> None:
        _check_config(cfg)
        self.cfg, self.info = cfg, init_distributed()
        self.show_progress = show_progress and self.info.is_main
        self.dir = Path(cfg.out)
        self.ckpt_dir = self.dir / "checkpoints"
        last = self.ckpt_dir / "last.safetensors"
        if resume and not last.is_file():
            raise ConfigError(f"--resume: {last} does not exist; nothing to resume (start without --resume)")
        if not resume and last.is_file():
            raise ConfigError(f"{self.dir} already has a run; pass --resume to continue it, or choose another out")
        if resume:
            saved = json.loads((self.dir / "config.json").read_text())
            diff = _config_diff(saved, to_dict(cfg))
            if diff:
                raise ConfigError(f"--resume with a different config than {self.dir / 'config.json'}: " + "; ".join(diff))
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        self.device = torch.device(f"cuda:{self.info.local_rank}" if torch.cuda.is_available() else "cpu")

        manifest = read_manifest(cfg.manifest, modalities=cfg.modalities)
        load = dict(modalities=cfg.modalities, strict=cfg.strict, show_progress=self.show_progress)
        self.train_ds = ManifestDataset.load(manifest, split=cfg.train_split, **load)
        self.val_ds = ManifestDataset.load(manifest, split=cfg.val_split, **load) if manifest.split(cfg.val_split) else None
        if self.val_ds is None:
            log.warning("%s has no %r split; validation is skipped and best = last", cfg.manifest, cfg.val_split)
        for name, ds in (("train", self.train_ds), ("val", self.val_ds)):
            if ds is not None and ds.skipped:
                log.warning("%s split: skipped %d bad item(s)", name, len(ds.skipped))

        self.task: Task = build_task(cfg, self.train_ds.label_names).to(self.device)
        params = [p for p in self.task.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
        self.steps_per_epoch = len(epoch_batches(len(self.train_ds), cfg.optim.batch_size, cfg.seed, 0, self.info))
        self.total_steps = cfg.optim.epochs * self.steps_per_epoch
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, WarmupCosine(cfg.optim.warmup_steps, self.total_steps)
        )
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.best_score, self.best_metrics, self.fingerprint = -math.inf, {}, ""
        if resume:
            self._restore(last)
        elif self.info.is_main:
            self.dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.dir / "config.json", to_dict(cfg))
            atomic_write_json(self.dir / "environment.json", {**environment_info(cfg.seed), "world_size": self.info.world_size})
            for name in ("metrics.jsonl", "samples.jsonl"):
                (self.dir / name).unlink(missing_ok=True)
        barrier(self.info)
        self.model = (
            DistributedDataParallel(self.task, device_ids=[self.info.local_rank] if self.device.type == "cuda" else None)
            if self.info.enabled else self.task
        )  # fmt: skip

    # -- checkpoints -------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {
            "task": self.cfg.task, "config": to_dict(self.cfg), "label_names": self.train_ds.label_names,
            "extra": self.task.extra_state(), "step": self.step, "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch, "best_score": self.best_score, "best_metrics": self.best_metrics,
            "scheduler": self.scheduler.state_dict(), "world_size": self.info.world_size,
        }  # fmt: skip

    def save_last(self) -> None:
        if self.info.is_main:
            save_checkpoint(self.ckpt_dir / "last.safetensors", self.task.state_dict(), self._state(),
                            self.optimizer.state_dict(), torch.get_rng_state())  # fmt: skip
            log.info("checkpoint: step %d (epoch %d, batch %d)", self.step, self.epoch, self.batch_in_epoch)

    def save_best(self, metrics: dict[str, float]) -> None:
        self.best_score, self.best_metrics = metrics["score"], metrics
        if self.info.is_main:
            self.fingerprint = save_checkpoint(self.ckpt_dir / "best.safetensors", self.task.state_dict(), self._state())

    def _restore(self, path: Path) -> None:
        ckpt = load_checkpoint(path)
        s = ckpt.state
        if s.get("world_size", 1) != self.info.world_size:
            raise ConfigError(f"{path} was written by {s.get('world_size')} process(es); resume with the same number")
        self.task.load_state_dict(ckpt.model_state())
        self.optimizer.load_state_dict(ckpt.optimizer_state())
        self.scheduler.load_state_dict(s["scheduler"])
        torch.set_rng_state(ckpt.tensors["rng/torch"])
        self.step, self.epoch, self.batch_in_epoch = s["step"], s["epoch"], s["batch_in_epoch"]
        self.best_score, self.best_metrics = s["best_score"], s["best_metrics"]
        best = self.ckpt_dir / "best.json"
        self.fingerprint = json.loads(best.read_text())["fingerprint"] if best.is_file() else ""
        if self.info.is_main:  # drop rows logged after the checkpoint; they will be logged again
            metrics = self.dir / "metrics.jsonl"
            if metrics.is_file():
                rows = [r for r in metrics.read_text().splitlines() if r and json.loads(r)["step"] <= self.step]
                atomic_write_text(metrics, "".join(r + "\n" for r in rows))
        log.info("resumed %s at step %d (epoch %d, batch %d)", self.dir, self.step, self.epoch, self.batch_in_epoch)

    # -- logging -----------------------------------------------------------
    def write_row(self, row: dict[str, Any]) -> None:
        if self.info.is_main:
            with (self.dir / "metrics.jsonl").open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(row) + "\n")

    def rows(self) -> list[dict[str, Any]]:
        path = self.dir / "metrics.jsonl"
        return [json.loads(r) for r in path.read_text().splitlines() if r] if path.is_file() else []

    # -- the loop ----------------------------------------------------------
    def validate(self) -> dict[str, float]:
        metrics = self.task.evaluate(self.val_ds if self.val_ds is not None else self.train_ds)
        self.write_row({"split": "val", "step": self.step, "epoch": self.epoch, **metrics})
        if self.val_ds is None or metrics["score"] > self.best_score:
            self.save_best(metrics)
        if self.info.is_main:
            plot_curves(self.rows(), self.dir / "plots" / "curves.png")
            log.info("validation at step %d: score %.4f (best %.4f)", self.step, metrics["score"], self.best_score)
        return metrics

    def run(self) -> RunResult:
        cfg, started = self.cfg, time.perf_counter()
        while self.epoch < cfg.optim.epochs:
            batches = epoch_batches(len(self.train_ds), cfg.optim.batch_size, cfg.seed, self.epoch, self.info)
            seen: list[int] = []
            self.task.train()
            bar = tqdm(total=len(batches), initial=self.batch_in_epoch, desc=f"epoch {self.epoch + 1}/{cfg.optim.epochs}",
                       disable=None if self.show_progress else True, leave=False)  # fmt: skip
            while self.batch_in_epoch < len(batches):
                idx = batches[self.batch_in_epoch]
                loss, logs = self.train_step(idx)
                seen += idx.tolist()
                self.batch_in_epoch += 1
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}")
                if self.step % cfg.log_every == 0 or self.batch_in_epoch == len(batches):
                    self.write_row({"split": "train", "step": self.step, "epoch": self.epoch,
                                    "lr": self.scheduler.get_last_lr()[0], "loss": mean_across(loss, self.info), **logs})  # fmt: skip
                if self.step % cfg.checkpoint_every == 0 and self.batch_in_epoch < len(batches):
                    self.save_last()
            bar.close()
            if cfg.record_samples:
                per_rank = gather_objects(seen, self.info)
                self.write_row({"split": "samples", "step": self.step, "epoch": self.epoch, "per_rank": per_rank})
            last_epoch = self.epoch + 1 == cfg.optim.epochs
            if self.info.is_main and ((self.epoch + 1) % cfg.eval_every == 0 or last_epoch):
                self.validate()
            barrier(self.info)
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0
            self.save_last()
        seconds = time.perf_counter() - started
        result = RunResult(self.dir, self.step, seconds, self.best_score, self.best_metrics, self.fingerprint)
        if self.info.is_main:
            atomic_write_json(self.dir / "summary.json", {
                "steps": self.step, "train_seconds_this_session": round(seconds, 2), "best_score": self.best_score,
                "best_metrics": self.best_metrics, "fingerprint": self.fingerprint,
                "skipped": {"train": self.train_ds.skipped, "val": self.val_ds.skipped if self.val_ds else []},
            })  # fmt: skip
        return result

    def train_step(self, idx: torch.Tensor) -> tuple[float, dict[str, float]]:
        batch = {k: v.to(self.device, non_blocking=True) for k, v in self.train_ds.batch(idx).items()}
        loss, logs = self.model(batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {float(loss)} at step {self.step}; lower optim.lr or check the data")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_([p for p in self.task.parameters() if p.requires_grad], self.cfg.optim.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        return float(loss.detach()), logs


def train(cfg: TrainConfig, resume: bool = False, show_progress: bool = False) -> RunResult:
    """Train ``cfg.task`` and return the best validation result; see the module docstring."""
    return _Run(cfg, resume, show_progress).run()


def train_or_reuse(cfg: TrainConfig, show_progress: bool = False) -> tuple[RunResult, bool]:
    """Reuse a finished run with the same config, resume an interrupted one, or train.

    Returns the result and whether it was reused (``seconds`` is then 0).
    """
    out = Path(cfg.out)
    summary, saved = out / "summary.json", out / "config.json"
    if summary.is_file() and saved.is_file() and json.loads(saved.read_text()) == to_dict(cfg):
        s = json.loads(summary.read_text())
        log.info("reusing the finished run in %s", out)
        return RunResult(out, s["steps"], 0.0, s["best_score"], s["best_metrics"], s["fingerprint"]), True
    resume = (out / "checkpoints" / "last.safetensors").is_file()
    return train(cfg, resume=resume, show_progress=show_progress), False


__all__ = ["DistInfo", "RunResult", "WarmupCosine", "train", "train_or_reuse"]

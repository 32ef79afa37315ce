"""The training engine: one loop for every model, on one process or many (``torchrun``).

    result = train(load_run_config("experiments/configs/contrastive.toml"))

Each step: a batch from the DataLoader -> the model's named loss terms -> their
weighted sum (``loss_weights``) -> backward -> AdamW. A run directory holds
everything about a run:

    config.json          the resolved run config, model inlined   environment.json  seed, commit, versions, CPU kernels
    metrics.jsonl        one row per log ("kind": "train") and per evaluation ("kind": "eval", with its split)
    checkpoints/         last.* and best.* (safetensors + JSON; best chosen on the validation split)
    plots/curves.png     loss and validation curves          summary.json      the final numbers, skipped items

``resume=True`` continues from ``checkpoints/last.safetensors`` exactly: model,
optimiser, scheduler, torch RNG, epoch and position within the epoch. Each
epoch's order depends only on the seed and the epoch, and each item's
augmentation only on (seed, epoch, index).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import time
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from avkit.config import from_dict, to_dict
from avkit.data.batch import Batch
from avkit.data.dataset import ManifestDataset, check_targets, make_loader, ordered_loader
from avkit.data.manifest import read_manifest
from avkit.data.shards import ShardSet, ShardStream
from avkit.errors import ArtifactError, AvkitError, ConfigError
from avkit.fileio import atomic_write_json, atomic_write_text, folder_lock
from avkit.models import AVModel, create_model, load_checkpoint, save_checkpoint
from avkit.provenance import environment_info
from avkit.train.config import RunConfig
from avkit.train.distributed import (
    DistInfo,
    any_across,
    barrier,
    epoch_batches,
    gather_objects,
    init_distributed,
    mean_across,
)
from avkit.train.optim import WarmupCosine, build_optimizer, flatten_optimizer, unflatten_optimizer
from avkit.train.plots import plot_curves

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What a finished run reports (also written to ``summary.json``)."""

    run_dir: Path
    steps: int
    seconds: float
    best_score: float
    best_metrics: dict[str, float]
    fingerprint: str


def _check_config(cfg: RunConfig) -> None:
    if not cfg.data.manifest:
        raise ConfigError("data.manifest: set the manifest to train on (e.g. --set data.manifest=data/digits/manifest.jsonl)")
    if not cfg.out:
        raise ConfigError("out: set the run directory (e.g. --set out=runs/my-run)")
    for owner, name in ((cfg.optim, "epochs"), (cfg.optim, "batch_size"), (cfg, "checkpoint_every"),
                        (cfg, "eval_every"), (cfg, "log_every")):  # fmt: skip
        if getattr(owner, name) < 1:
            raise ConfigError(f"{name}: must be at least 1, got {getattr(owner, name)}")
    if cfg.data.workers < 0:
        raise ConfigError(f"data.workers: must be 0 or more, got {cfg.data.workers}")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read as a run's config ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not a run's config (expected a JSON object)")
    return data


def _metric_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of ``metrics.jsonl``. A row that is not a JSON object with a step (a kill tore the
    last write, or the file was damaged) is dropped with a warning naming its line."""
    rows = []
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if isinstance(row, dict) and isinstance(row.get("step"), int):
            rows.append(row)
        else:
            where = "the last line, cut short when the run was stopped" if number == len(lines) else "a damaged line"
            log.warning("%s:%d: dropped a partial metrics row (%s): %.60r", path, number, where, line)
    return rows


def _with_defaults(saved: dict[str, Any]) -> dict[str, Any]:
    """A recorded run config with the settings it predates filled with their defaults (a run recorded
    before ``data.shards`` existed resumes as one without shards); as recorded if it no longer parses."""
    try:
        return to_dict(from_dict(RunConfig, saved))
    except (AvkitError, TypeError, ValueError):
        return saved


def _config_diff(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """``key: old -> new`` for each setting that differs; ``out`` is where the run is, not what it is."""
    out = []
    for key in sorted((set(old) | set(new)) - ({"out"} if not prefix else set())):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _config_diff(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


#: What a checkpoint must hold to continue a run.
RESUME_STATE = ("step", "epoch", "batch_in_epoch", "train_seconds", "best_score", "best_metrics", "scheduler",
                "optimizer", "best_fingerprint")  # fmt: skip
RESUME_TENSORS = ("rng/torch",)


class _Run:
    """The state of one training run on one process."""

    def __init__(self, cfg: RunConfig, resume: bool, show_progress: bool) -> None:
        _check_config(cfg)
        self.info: DistInfo = init_distributed()
        self.show_progress = show_progress and self.info.is_main
        self.dir, self.ckpt_dir = Path(cfg.out), Path(cfg.out) / "checkpoints"
        last, recorded = self.ckpt_dir / "last.safetensors", self.dir / "config.json"
        saved = _read_json(recorded) if recorded.is_file() and (resume or last.is_file()) else {}
        if "task" in saved:
            raise ConfigError(f"{self.dir} is a run of avkit 0.1's task trainer; this avkit cannot resume or load it. "
                              "Retrain into a new directory with a config from experiments/configs/")  # fmt: skip
        if resume and not last.is_file():
            raise ConfigError(f"--resume: {last} does not exist; nothing to resume (start without --resume)")
        if resume and not recorded.is_file():
            raise ConfigError(f"--resume: {recorded} is missing, so the run cannot be checked against this config; "
                              "the run directory is incomplete (train into a new out)")  # fmt: skip
        if not resume and last.is_file():
            raise ConfigError(f"{self.dir} already has a run; pass --resume to continue it, or choose another out")
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        self.device = torch.device(f"cuda:{self.info.local_rank}" if torch.cuda.is_available() else "cpu")

        self.cfg = cfg = with_labels(cfg)
        manifest = read_manifest(cfg.data.manifest, modalities=cfg.model.modalities())
        diff = _config_diff(_with_defaults(saved), to_dict(cfg)) if resume else []
        if diff:
            raise ConfigError(f"--resume with a different config than {self.dir / 'config.json'}: " + "; ".join(diff))
        if resume and saved.get("out") != cfg.out and self.info.is_main:
            log.info("%s was moved here from %s; recording its new place in config.json", self.dir, saved.get("out"))
            atomic_write_json(recorded, to_dict(cfg))
        self.model: AVModel = create_model(cfg.model, init=not resume).to(self.device)
        self._check_loss_weights()
        if not self.model.trained_heads():
            raise ConfigError(f"model: every head ({list(self.model.heads)}) is copied whole and frozen by an init; "
                              "there is nothing to train")  # fmt: skip
        self.select = cfg.select or f"{self.model.trained_heads()[0]}/score"
        if self.select.partition("/")[0] not in self.model.heads:
            raise ConfigError(f"select: {self.select!r} must be HEAD/METRIC with HEAD one of {list(self.model.heads)}")

        train_pipes = self.model.pipelines(cfg.augment, train=True)
        evaluated = [s for s in (cfg.data.train_split, cfg.data.val_split) if manifest.split(s)]
        for split in evaluated:  # every split a head reads must carry its targets: checked before decoding any
            for head, targets in self.model.targets().items():
                check_targets(manifest.split(split), train_pipes, cfg.model.labels, f"head {head!r}", targets,
                              f"split {split!r} of {manifest.path}")  # fmt: skip
        load = dict(label_names=cfg.model.labels, fields=sorted({f for t in self.model.targets().values() for f in t}),
                    seed=cfg.seed, in_memory=cfg.data.in_memory, feature_caches=cfg.data.feature_cache,
                    strict=cfg.data.strict, show_progress=self.show_progress)  # fmt: skip
        self.train_ds: ManifestDataset | ShardStream = (
            self._shard_stream(train_pipes, load["fields"]) if cfg.data.shards
            else ManifestDataset(manifest, train_pipes, split=cfg.data.train_split, train=True, **load))  # fmt: skip
        self.val_ds = (ManifestDataset(manifest, self.model.pipelines(), split=cfg.data.val_split, **load)
                       if manifest.split(cfg.data.val_split) else None)  # fmt: skip
        self.eval_split = cfg.data.val_split if self.val_ds is not None else cfg.data.train_split
        self.shards_digest = self.train_ds.set.digest if isinstance(self.train_ds, ShardStream) else None
        if self.val_ds is None and cfg.data.shards:
            raise ConfigError(f"data.shards: training from shards validates on the manifest's {cfg.data.val_split!r} "
                              f"split, but {cfg.data.manifest} has none (set data.val_split)")  # fmt: skip
        if self.val_ds is None:
            log.warning("%s has no %r split: evaluating on the %r split (rows labelled so) and best = last",
                        cfg.data.manifest, cfg.data.val_split, cfg.data.train_split)  # fmt: skip
        self.batch_augment = {t: m for t, p in train_pipes.items() if (m := p.batch_augment()) is not None}
        self.skipped: dict[str, dict[str, str]] = {"train": {}, "eval": {}}
        for split, ds in (("train", self.train_ds), ("eval", self.val_ds)):
            if ds is not None:
                self.skipped[split].update(dict(ds.skipped))

        if cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = build_optimizer(self.model, cfg.optim.lr, cfg.optim.weight_decay)
        self.steps_per_epoch = (self.train_ds.steps_per_epoch() if isinstance(self.train_ds, ShardStream)
                                else len(epoch_batches(len(self.train_ds), cfg.optim.batch_size, cfg.seed, 0, self.info)))  # fmt: skip
        self.total_steps = cfg.optim.epochs * self.steps_per_epoch
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, WarmupCosine(cfg.optim.warmup_steps, self.total_steps))
        self.step = self.epoch = self.batch_in_epoch = 0
        self.train_seconds = 0.0
        self.best_score, self.best_metrics, self.fingerprint = -math.inf, {}, ""
        if resume:
            self._restore(last)
        elif self.info.is_main:
            self.dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.dir / "config.json", to_dict(cfg))
            atomic_write_json(self.dir / "environment.json", {**environment_info(cfg.seed), "world_size": self.info.world_size})
            (self.dir / "metrics.jsonl").unlink(missing_ok=True)
        barrier(self.info)
        wrapped = (DistributedDataParallel(self.model, device_ids=[self.info.local_rank] if self.device.type == "cuda" else None)
                   if self.info.enabled else self.model)  # fmt: skip
        self.step_model = torch.compile(wrapped) if cfg.compile else wrapped

    def _shard_stream(self, pipelines: dict[str, Any], fields: list[str]) -> ShardStream:
        cfg = self.cfg
        shards = ShardSet.load(cfg.data.shards)
        if shards.split != cfg.data.train_split:
            raise ConfigError(f"data.shards: {shards.folder} holds the {shards.split!r} split, but data.train_split is "
                              f"{cfg.data.train_split!r}; shard the training split (avkit data shard --split "
                              f"{cfg.data.train_split})")  # fmt: skip
        if Path(shards.source).resolve() != Path(cfg.data.manifest).resolve():
            log.warning("%s was written from %s, not from data.manifest %s", shards.folder, shards.source, cfg.data.manifest)
        return ShardStream(shards, pipelines, cfg.optim.batch_size, cfg.seed, self.info.rank, self.info.world_size,
                           label_names=cfg.model.labels, fields=fields, shuffle_buffer=cfg.data.shuffle_buffer,
                           strict=cfg.data.strict)  # fmt: skip

    def _epoch(self) -> Iterable[Batch]:
        """The rest of this epoch's batches, from ``batch_in_epoch`` on."""
        if isinstance(self.train_ds, ShardStream):
            return self.train_ds.loader(self.epoch, self.batch_in_epoch, self.cfg.data.workers)
        batches = epoch_batches(len(self.train_ds), self.cfg.optim.batch_size, self.cfg.seed, self.epoch, self.info)
        keys = [[(int(i), self.epoch) for i in b] for b in batches[self.batch_in_epoch :]]
        return make_loader(self.train_ds, keys, self.cfg.data.workers)

    # -- checks --------------------------------------------------------------------------------
    def _check_loss_weights(self) -> None:
        for head, weights in self.cfg.loss_weights.items():
            if head not in self.model.heads:
                raise ConfigError(f"loss_weights.{head}: the model has no head {head!r}; heads: {list(self.model.heads)}")
            terms = self.model.heads[head].loss_terms
            for term in weights:
                if term not in terms:
                    raise ConfigError(f"loss_weights.{head}.{term}: head {head!r} gives the loss terms {list(terms)}")

    def _weight(self, term: str) -> float:
        head, _, name = term.partition("/")
        return self.cfg.loss_weights.get(head, {}).get(name, 1.0)

    # -- checkpoints ---------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        run = to_dict(self.cfg)
        run.pop("model")
        return {
            "step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
            "train_seconds": self.train_seconds, "best_score": self.best_score, "best_metrics": self.best_metrics,
            "select": self.select, "selected_on": self.eval_split, "scheduler": self.scheduler.state_dict(),
            "world_size": self.info.world_size, "best_fingerprint": self.fingerprint, "run": run,
            "shards": self.shards_digest,
        }  # fmt: skip

    def _save(self, name: str, with_optimizer: bool) -> str:
        extra: dict[str, torch.Tensor] = {}
        state = self._state()
        if with_optimizer:
            extra, state["optimizer"] = flatten_optimizer(self.optimizer.state_dict())
            extra["rng/torch"] = torch.get_rng_state()
        return save_checkpoint(self.ckpt_dir / f"{name}.safetensors", self.model.state_dict(), self.cfg.model, state, extra)

    def save_last(self) -> None:
        if self.info.is_main:
            self._save("last", with_optimizer=True)
            log.info("checkpoint: step %d (epoch %d, batch %d)", self.step, self.epoch, self.batch_in_epoch)

    def save_best(self, metrics: dict[str, float]) -> None:
        self.best_score, self.best_metrics = metrics[self.select], metrics
        if self.info.is_main:
            self.fingerprint = self._save("best", with_optimizer=False)

    def _restore(self, path: Path) -> None:
        ckpt = load_checkpoint(path)
        s = ckpt.state
        lacking = sorted(set(RESUME_STATE) - set(s)) + sorted(set(RESUME_TENSORS) - set(ckpt.tensors))
        if lacking:
            raise ArtifactError(path, f"cannot be resumed: its training state lacks {lacking} (a checkpoint "
                                "written without the optimizer, such as best, cannot continue a run)")  # fmt: skip
        if s.get("world_size", 1) != self.info.world_size:
            raise ConfigError(f"{path} was written by {s.get('world_size')} process(es); resume with the same number")
        if s.get("shards") != self.shards_digest:
            raise ConfigError(f"{path} was trained from other shards than {self.cfg.data.shards or 'none'} (their "
                              "shards.json differs); an exact resume needs the same ones")  # fmt: skip
        self.model.load_state_dict(ckpt.model_state())
        try:
            self.optimizer.load_state_dict(unflatten_optimizer(ckpt.tensors_under("optim"), s["optimizer"]))
        except ValueError as exc:  # the trainable parameters differ from the ones the run was saved with
            raise ArtifactError(path, f"its optimizer state does not fit this model's trainable parameters ({exc}); "
                                "avkit changed which parameters train since; start the run again") from None
        self.scheduler.load_state_dict(s["scheduler"])
        torch.set_rng_state(ckpt.tensors["rng/torch"])
        self.step, self.epoch, self.batch_in_epoch = s["step"], s["epoch"], s["batch_in_epoch"]
        self.train_seconds = s["train_seconds"]
        self.best_score, self.best_metrics = s["best_score"], s["best_metrics"]
        self.fingerprint = s["best_fingerprint"]
        if self.info.is_main:  # drop rows logged after the checkpoint; they will be logged again
            metrics = self.dir / "metrics.jsonl"
            if metrics.is_file():
                rows = [r for r in _metric_rows(metrics) if r["step"] <= self.step]
                atomic_write_text(metrics, "".join(json.dumps(r) + "\n" for r in rows))
        log.info("resumed %s at step %d (epoch %d, batch %d)", self.dir, self.step, self.epoch, self.batch_in_epoch)

    # -- logging -------------------------------------------------------------------------------
    def write_row(self, row: dict[str, Any]) -> None:
        if self.info.is_main:
            with (self.dir / "metrics.jsonl").open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(row) + "\n")

    def rows(self) -> list[dict[str, Any]]:
        path = self.dir / "metrics.jsonl"
        return _metric_rows(path) if path.is_file() else []

    def _tracked(self, batches: Any, split: str) -> Iterator[Batch]:
        """Batches, with their skipped items recorded (or raised, in strict mode)."""
        for batch in batches:
            for rid, error in batch.skipped:
                if self.cfg.data.strict:
                    raise error
                if rid not in self.skipped[split]:
                    log.warning("skipping %s: %s", rid, error)
                self.skipped[split][rid] = str(error)
            yield batch

    # -- the loop ------------------------------------------------------------------------------
    def validate(self) -> dict[str, float]:
        ds = self.val_ds if self.val_ds is not None else self.train_ds.for_evaluation()
        loader = ordered_loader(ds, self.cfg.optim.batch_size, self.cfg.data.workers)
        metrics = self.model.evaluate(self._tracked(loader, "eval"))
        if self.select not in metrics:
            raise ConfigError(f"select: no metric {self.select!r}; the heads report {sorted(metrics)}")
        self.write_row({"kind": "eval", "split": self.eval_split, "step": self.step, "epoch": self.epoch,
                        "seconds": round(self.train_seconds, 3), **metrics})  # fmt: skip
        if self.val_ds is None or metrics[self.select] > self.best_score:
            self.save_best(metrics)
        if self.info.is_main:
            plot_curves(self.rows(), self.dir / "plots" / "curves.png", self.select)
            log.info("evaluation on %s at step %d: %s %.4f (best %.4f)", self.eval_split, self.step, self.select,
                     metrics[self.select], self.best_score)  # fmt: skip
        return metrics

    def run(self) -> RunResult:
        cfg, started = self.cfg, time.perf_counter()
        while self.epoch < cfg.optim.epochs:
            steps = self.steps_per_epoch
            seen: list[int] = []
            self.model.train()
            bar = tqdm(total=steps, initial=self.batch_in_epoch, desc=f"epoch {self.epoch + 1}/{cfg.optim.epochs}",
                       disable=None if self.show_progress else True, leave=False)  # fmt: skip
            tick = time.perf_counter()
            for batch in self._tracked(self._epoch(), "train"):
                if any_across(len(batch) == 0, self.info):  # every item of a batch unreadable (a damaged shard),
                    # here or on another process: all skip the step together
                    log.warning("epoch %d batch %d: no item could be read; the step is skipped", self.epoch, self.batch_in_epoch)
                    self.batch_in_epoch += 1
                    bar.update(1)
                    continue
                loss, logs = self.train_step(batch)
                seen += batch.index.tolist()
                self.batch_in_epoch += 1
                self.train_seconds += time.perf_counter() - tick
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}")
                if self.step % cfg.log_every == 0 or self.batch_in_epoch == steps:
                    self.write_row({"kind": "train", "step": self.step, "epoch": self.epoch, "lr": self.scheduler.get_last_lr()[0],
                                    "seconds": round(self.train_seconds, 3), "loss": mean_across(loss, self.info), **logs})  # fmt: skip
                if self.step % cfg.checkpoint_every == 0 and self.batch_in_epoch < steps:
                    self.save_last()
                tick = time.perf_counter()
            bar.close()
            if cfg.record_samples:
                self.write_row({"kind": "samples", "step": self.step, "epoch": self.epoch, "per_rank": gather_objects(seen, self.info)})
            last_epoch = self.epoch + 1 == cfg.optim.epochs
            if self.info.is_main and ((self.epoch + 1) % cfg.eval_every == 0 or last_epoch):
                self.validate()
            barrier(self.info)
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0
            if cfg.keep_epoch_checkpoints and self.info.is_main:
                self._save(f"epoch-{self.epoch}", with_optimizer=False)
            self.save_last()
        seconds = time.perf_counter() - started
        result = RunResult(self.dir, self.step, seconds, self.best_score, self.best_metrics, self.fingerprint)
        if self.info.is_main:
            atomic_write_json(self.dir / "summary.json", {
                "steps": self.step, "train_seconds": round(self.train_seconds, 2),
                "session_seconds": round(seconds, 2), "best_score": self.best_score, "select": self.select,
                "selected_on": self.eval_split, "best_metrics": self.best_metrics, "fingerprint": self.fingerprint,
                "skipped": {split: sorted(items.items()) for split, items in self.skipped.items()},
            })  # fmt: skip
        return result

    def train_step(self, batch: Batch) -> tuple[float, dict[str, float]]:
        batch = batch.to(self.device, non_blocking=True)
        if self.cfg.channels_last:
            batch.inputs = {k: v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v for k, v in batch.inputs.items()}
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16) if self.cfg.precision == "bf16" else nullcontext()
        with autocast:
            terms = self.step_model(batch, self.batch_augment)
        loss = sum(self._weight(name) * value.float() for name, value in terms.items())
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {float(loss)} at step {self.step}; lower optim.lr or check the data")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad], self.cfg.optim.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        logs = {name: float(value.detach()) for name, value in terms.items()}
        return float(loss.detach()), {**logs, **self.model.logs()}


def with_labels(cfg: RunConfig) -> RunConfig:
    """``cfg`` with the model's class names filled from its manifest when the config leaves them empty."""
    if cfg.model.labels:
        return cfg
    labels = read_manifest(cfg.data.manifest, modalities=cfg.model.modalities()).labels()
    return replace(cfg, model=replace(cfg.model, labels=labels))


def train(cfg: RunConfig, resume: bool = False, show_progress: bool = False) -> RunResult:
    """Train the model ``cfg.model`` describes; see the module docstring.

    The writing process (rank 0 under torchrun) holds a lock on ``cfg.out`` throughout, so a second
    training into the same directory is refused (ArtifactError naming the first one's pid).
    """
    writer = int(os.environ.get("RANK", "0")) == 0
    with folder_lock(cfg.out, "training run") if writer else contextlib.nullcontext():
        return _Run(cfg, resume, show_progress).run()


def train_or_reuse(cfg: RunConfig, show_progress: bool = False) -> tuple[RunResult, bool]:
    """Reuse a finished run with the same config, resume an interrupted one, or train.

    Returns the result and whether it was reused (``seconds`` is then 0).
    """
    out = Path(cfg.out)
    summary, saved = out / "summary.json", out / "config.json"
    if summary.is_file() and saved.is_file() and not _config_diff(_with_defaults(_read_json(saved)), to_dict(with_labels(cfg))):
        try:
            s = json.loads(summary.read_text(encoding="utf-8"))
            result = RunResult(out, s["steps"], 0.0, s["best_score"], s["best_metrics"], s["fingerprint"])
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
            log.warning("%s cannot be read (%s); resuming the run instead, which rewrites it", summary, exc)
        else:
            log.info("reusing the finished run in %s", out)
            return result, True
    resume = (out / "checkpoints" / "last.safetensors").is_file()
    return train(cfg, resume=resume, show_progress=show_progress), False


__all__ = ["RunResult", "train", "train_or_reuse", "with_labels"]

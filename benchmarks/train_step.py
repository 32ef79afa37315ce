"""Where a training step's time goes, for the contrastive model, and what each speed option buys.

    python benchmarks/train_step.py [--data data/digits] [--batch-sizes 64 256] [--rounds 3] [--steps 4]

The model is ``experiments/configs/models/av-contrastive.toml`` with the same
spectrogram-level augmentation on every row (a time shift, a gain, SpecAugment),
so rows differ only in the option named. Each step is split into:

- **data**: the next batch from the DataLoader (items decoded once, in memory; cropping and augmentation per item);
- **front-end**: the audio tower's log-mel of the waveform batch (none when read from the cache);
- **forward**: towers (SpecAugment included) and head, to the loss;
- **backward**, and **optimiser** (AdamW step and zeroing the gradients).

Every configuration is warmed up (``torch.compile``'s compilation is timed
apart), then the configurations take turns, ``--steps`` steps each, for
``--rounds`` rounds, so that a slow spell of the machine hits them all alike.
The table gives per-step medians in milliseconds and the ratio of each row's
step time to the fp32 row of its batch size.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from avkit.data.batch import Batch
from avkit.data.dataset import ManifestDataset, make_loader
from avkit.data.digits import DigitsConfig, build_digits
from avkit.data.features import compute_features
from avkit.models import create_model
from avkit.train import load_run_config, with_labels
from avkit.train.distributed import DistInfo, epoch_batches
from avkit.train.optim import build_optimizer

ROOT = Path(__file__).resolve().parents[1]
AUGMENT = {"shift_seconds": 0.1, "gain_db": [-6.0, 6.0], "time_masks": 2, "time_mask_frames": 10,
           "freq_masks": 2, "freq_mask_bins": 8}  # fmt: skip
PARTS = ("data", "front-end", "forward", "backward", "optimiser")


@dataclass
class Option:
    """One row: which speed options are on."""

    name: str
    cache: bool = False
    channels_last: bool = False
    bf16: bool = False
    compile: bool = False
    workers: int = 0


OPTIONS = [
    Option("fp32 (front-end per step)"),
    Option("log-mel cache", cache=True),
    Option("channels_last", channels_last=True),
    Option("bf16 autocast", bf16=True),
    Option("torch.compile", compile=True),
    Option("1 DataLoader worker", workers=1),
    Option("cache + bf16", cache=True, bf16=True),
]


@dataclass
class Config:
    option: Option
    batch_size: int
    times: dict[str, list[float]] = field(default_factory=lambda: {p: [] for p in PARTS})
    compile_seconds: float = 0.0


class Runner:
    """A model, its optimiser and an endless stream of training batches for one configuration."""

    def __init__(self, cfg: Config, run_cfg, manifest: Path, cache: Path) -> None:  # noqa: ANN001
        opt = cfg.option
        torch.manual_seed(0)
        self.cfg, self.model = cfg, create_model(run_cfg.model)
        if opt.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.model.train()
        self.optimizer = build_optimizer(self.model, run_cfg.optim.lr, run_cfg.optim.weight_decay)
        pipes = self.model.pipelines({"audio": AUGMENT}, train=True)
        self.augment = {t: m for t, p in pipes.items() if (m := p.batch_augment()) is not None}
        self.ds = ManifestDataset(manifest, pipes, split="train", label_names=run_cfg.model.labels, train=True,
                                  in_memory=True, feature_caches={"audio": cache} if opt.cache else None)  # fmt: skip
        self.step_fn = torch.compile(self._forward) if opt.compile else self._forward
        self.epoch, self.batches = 0, iter(())

    def next_batch(self) -> Batch:
        batch = next(self.batches, None)
        if batch is None:
            keys = [[(int(i), self.epoch) for i in b] for b in epoch_batches(len(self.ds), self.cfg.batch_size, 0, self.epoch, DistInfo())]
            self.batches, self.epoch = iter(make_loader(self.ds, keys[:-1], self.cfg.option.workers)), self.epoch + 1
            batch = next(self.batches)
        return batch

    def _forward(self, batch: Batch) -> torch.Tensor:
        return sum(self.model(batch, self.augment).values())

    def step(self, record: bool) -> None:
        opt, model = self.cfg.option, self.model
        t0 = time.perf_counter()
        batch = self.next_batch()
        t1 = time.perf_counter()
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if opt.bf16 else nullcontext()
        with autocast:
            if "audio" not in batch.precomputed:
                batch = replace(batch, inputs={**batch.inputs, "audio": model.towers["audio"].frontend(batch.inputs["audio"])},
                                precomputed=batch.precomputed | {"audio"})  # fmt: skip
            if opt.channels_last:
                batch.inputs["image"] = batch.inputs["image"].contiguous(memory_format=torch.channels_last)
            t2 = time.perf_counter()
            loss = self.step_fn(batch)
        t3 = time.perf_counter()
        loss.float().backward()
        t4 = time.perf_counter()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        t5 = time.perf_counter()
        if record:
            for part, dt in zip(PARTS, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
                self.cfg.times[part].append(dt * 1e3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "digits", help="AV-digits folder (built if missing)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--rounds", type=int, default=3, help="turns each configuration takes (default 3)")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per turn (default 4)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: all cores)")
    parser.add_argument("--only", nargs="*", help="run only the options whose names contain these words")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    manifest = args.data / "manifest.jsonl"
    if not manifest.is_file():
        build_digits(args.data, DigitsConfig())
    run_cfg = with_labels(load_run_config(ROOT / "experiments" / "configs" / "contrastive.toml", [f"data.manifest={manifest}"]))
    cache = args.data / "logmel.safetensors"
    compute_features(manifest, cache, create_model(run_cfg.model).towers["audio"].pipeline)

    options = [o for o in OPTIONS if not args.only or any(w in o.name for w in args.only)]
    configs = [Config(o, bs) for bs in args.batch_sizes for o in options]
    runners = []
    for cfg in configs:
        runner = Runner(cfg, run_cfg, manifest, cache)
        started = time.perf_counter()
        runner.step(record=False)  # compiles, if compiling
        cfg.compile_seconds = time.perf_counter() - started if cfg.option.compile else 0.0
        for _ in range(args.warmup - 1):
            runner.step(record=False)
        runners.append(runner)
        print(f"  warmed up: {cfg.option.name}, batch {cfg.batch_size}", file=sys.stderr)
    for _ in range(args.rounds):
        for runner in runners:
            for _ in range(args.steps):
                runner.step(record=True)

    print("training-step benchmark: contrastive audio<->image model (av-contrastive.toml), AV-digits train split, "
          "spectrogram-level augmentation on every row\\")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.machine()}, "
          f"python {platform.python_version()}; median of {args.rounds} x {args.steps} steps per row, ms per step\n")
    print("| option | batch | data | front-end | forward | backward | optimiser | step | items/s | step / fp32 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for bs in args.batch_sizes:
        rows = [c for c in configs if c.batch_size == bs]
        base = None
        for c in rows:
            med = {p: statistics.median(c.times[p]) for p in PARTS}
            steps = [sum(c.times[p][i] for p in PARTS) for i in range(len(c.times["data"]))]
            step = statistics.median(steps)
            base = step if base is None and c.option.name.startswith("fp32") else base
            ratio = f"{step / base:.2f}" if base else "-"
            extra = f" (compiled in {c.compile_seconds:.0f} s)" if c.option.compile else ""
            print(f"| {c.option.name}{extra} | {bs} | " + " | ".join(f"{med[p]:.1f}" for p in PARTS)
                  + f" | {step:.1f} | {bs / step * 1e3:,.0f} | {ratio} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

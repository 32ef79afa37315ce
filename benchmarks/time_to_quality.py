"""Time to quality: audio->image R@1 on the AV-digits test split against seconds of training.

    python benchmarks/time_to_quality.py [--data data/digits] [--out runs/ttq] [--recipes fp32 fast] [--plot PNG]

Each recipe trains the contrastive model with a checkpoint kept at every epoch.
Afterwards every epoch's checkpoint is scored on the test split, for the curve
only: the run itself picks its ``best`` checkpoint on the validation split, and
that checkpoint's test R@1 and the training seconds it took are the result.
Training seconds exclude validation and checkpoint writing; the log-mel cache's
one-off build is reported apart. Run it with nothing else on the machine.

Recipes (``experiments/configs/``):

- ``fp32``: ``contrastive.toml`` as it is (15 epochs, waveforms, fp32);
- ``fast``: ``contrastive-fast.toml`` (log-mel cache, bf16 autocast, channels_last).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import torch

from avkit.data.dataset import ManifestDataset, make_loader, sequential_batches
from avkit.data.digits import DigitsConfig, build_digits
from avkit.data.features import compute_features
from avkit.models import create_model, load_model
from avkit.plotting import plt, save_figure
from avkit.train import load_run_config, train, with_labels

ROOT = Path(__file__).resolve().parents[1]
RECIPES = {"fp32": "contrastive.toml", "fast": "contrastive-fast.toml"}
TARGET_R1, TARGET_SECONDS = 0.95, 150.0


def test_r1(run: Path, checkpoint: str, manifest: Path) -> float:
    model = load_model(run / "checkpoints" / f"{checkpoint}.safetensors")
    ds = ManifestDataset(manifest, model.pipelines(), split="test", label_names=model.config.labels)
    a, b = model.embedding_towers()
    return model.evaluate(make_loader(ds, sequential_batches(len(ds), 256)))[f"contrastive/{a}_to_{b}/R@1"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "digits", help="AV-digits folder (built if missing)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "time_to_quality", help="run directories (replaced)")
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--plot", type=Path, help="save the curves here (PNG)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    manifest = args.data / "manifest.jsonl"
    if not manifest.is_file():
        build_digits(args.data, DigitsConfig())
    cache = args.out / "logmel.safetensors"
    results, curves = {}, {}
    for name in args.recipes:
        overrides = [f"data.manifest={manifest}", f"out={args.out / name}", "keep_epoch_checkpoints=true",
                     f"threads={args.threads}"]  # fmt: skip
        cfg = with_labels(load_run_config(ROOT / "experiments" / "configs" / RECIPES[name], overrides))
        cache_seconds = None
        if "audio" in cfg.data.feature_cache:
            started = time.perf_counter()
            compute_features(manifest, cache, create_model(cfg.model, init=False).towers["audio"].pipeline)
            cache_seconds = time.perf_counter() - started
            cfg.data.feature_cache["audio"] = str(cache)
        shutil.rmtree(args.out / name, ignore_errors=True)
        result = train(cfg)
        rows = [json.loads(r) for r in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
        evals = [r for r in rows if r["kind"] == "eval"]
        curves[name] = [(r["seconds"], test_r1(result.run_dir, f"epoch-{r['epoch'] + 1}", manifest)) for r in evals]
        best = max(evals, key=lambda r: r[result_select(result.run_dir)])
        results[name] = {"epochs": cfg.optim.epochs, "train_seconds": evals[-1]["seconds"], "best_epoch": best["epoch"] + 1,
                         "best_seconds": best["seconds"], "best_test_r1": test_r1(result.run_dir, "best", manifest),
                         "cache_seconds": cache_seconds}  # fmt: skip

    print(f"time to quality: contrastive audio<->image on AV-digits; torch {torch.__version__}, {torch.get_num_threads()} "
          f"threads, {platform.machine()}\n")
    print("| recipe | epochs | training s | best epoch (on val) | its training s | its test a→i R@1 | cache build s | target |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for name, r in results.items():
        met = r["best_test_r1"] >= TARGET_R1 and r["train_seconds"] <= TARGET_SECONDS  # the whole run: best is known at its end
        cache_s = "-" if r["cache_seconds"] is None else f"{r['cache_seconds']:.1f}"
        print(f"| {name} | {r['epochs']} | {r['train_seconds']:.0f} | {r['best_epoch']} | {r['best_seconds']:.0f} | "
              f"{r['best_test_r1']:.3f} | {cache_s} | {'met' if met else 'not met'} |")  # fmt: skip
    print(f"\ntarget: test a→i R@1 >= {TARGET_R1} from the checkpoint chosen on validation, the whole run within "
          f"{TARGET_SECONDS:.0f} s of training\n")
    print("curve (each epoch's checkpoint on the test split):\n")
    print("| recipe | " + " | ".join(f"epoch {i + 1}" for i in range(max(len(c) for c in curves.values()))) + " |")
    print("| --- |" + " ---: |" * max(len(c) for c in curves.values()))
    for name, curve in curves.items():
        print(f"| {name} | " + " | ".join(f"{s:.0f} s: {r1:.3f}" for s, r1 in curve) + " |")
    if args.plot:
        fig, ax = plt.subplots(figsize=(6.4, 3.8))
        for name, curve in curves.items():
            ax.plot([s for s, _ in curve], [r for _, r in curve], marker="o", label=name)
        ax.axhline(TARGET_R1, color="grey", ls="--", lw=1)
        ax.axvline(TARGET_SECONDS, color="grey", ls=":", lw=1)
        ax.set(xlabel="training seconds (2 CPU cores)", ylabel="test audio→image R@1", ylim=(0, 1.0),
               title="time to quality, AV-digits")  # fmt: skip
        ax.grid(alpha=0.3)
        ax.legend()
        save_figure(fig, args.plot)
    return 0


def result_select(run: Path) -> str:
    return json.loads((run / "summary.json").read_text())["select"]


if __name__ == "__main__":
    sys.exit(main())

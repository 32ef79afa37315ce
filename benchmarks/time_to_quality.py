"""Time to quality: audio->image R@1 on the AV-digits test split against seconds of training.

    python benchmarks/time_to_quality.py [--data data/digits] [--out runs/time_to_quality] [--repeats 3]
                                         [--recipes fp32 fast] [--baseline-commit aa6b09c] [--plot PNG]

Each recipe trains the contrastive model; the run picks its ``best`` checkpoint
on the validation split, and that checkpoint's test R@1 is the result. Times:

- **training s**: the training steps alone (data, forward, backward, optimiser);
- **loop s**: the whole training loop, validation after every epoch and checkpoints
  included: what avkit 0.1 recorded (``train_seconds_this_session``), so the
  column to compare with its row.

The recipes (``experiments/configs/``) and the baseline take turns, ``--repeats``
rounds, so that a slow spell of the machine hits them all alike; the table gives
the median and the range of each time, and a target is met only if it is met in
every round. In the first round every epoch's checkpoint is also scored on the
test split, for the curve only. The log-mel cache's one-off build is reported
apart. Run it with nothing else on the machine.

- ``fp32``: ``contrastive.toml`` as it is (15 epochs, waveforms, fp32, channels_last);
- ``fast``: ``contrastive-fast.toml`` (the same, plus a log-mel cache and bf16 autocast);
- ``avkit 0.1``: the same recipe (``contrastive.toml`` of commit ``--baseline-commit``),
  trained by that commit's own code in a git worktree (``experiments/old_avkit.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

import torch

from avkit.data.dataset import ManifestDataset, make_loader, sequential_batches
from avkit.data.digits import DigitsConfig, build_digits
from avkit.data.features import compute_features
from avkit.fileio import atomic_write_json
from avkit.models import create_model, load_model
from avkit.plotting import plt, save_figure
from avkit.train import load_run_config, with_labels

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))
import old_avkit  # noqa: E402  (experiments/old_avkit.py)

RECIPES = {"fp32": "contrastive.toml", "fast": "contrastive-fast.toml"}
BASELINE = "avkit 0.1"
TARGET_R1, TARGET_SECONDS = 0.95, 150.0


def test_r1(run: Path, checkpoint: str, manifest: Path) -> float:
    model = load_model(run / "checkpoints" / f"{checkpoint}.safetensors")
    ds = ManifestDataset(manifest, model.pipelines(), split="test", label_names=model.config.labels)
    a, b = model.embedding_towers()
    return model.evaluate(make_loader(ds, sequential_batches(len(ds), 256)))[f"contrastive/{a}_to_{b}/R@1"]


def run_recipe(name: str, manifest: Path, out: Path, cache: Path, threads: int, curve: bool) -> tuple[dict, list]:
    """Train one recipe from scratch into ``out``, as ``avkit train`` in a fresh process (as the baseline
    is, and as users run it); returns its numbers and (if ``curve``) its test curve."""
    config = ROOT / "experiments" / "configs" / RECIPES[name]
    overrides = [f"data.manifest={manifest}", f"out={out}", "keep_epoch_checkpoints=true", f"threads={threads}"]
    cfg = with_labels(load_run_config(config, overrides))
    cache_seconds = None
    if "audio" in cfg.data.feature_cache:
        started = time.perf_counter()
        compute_features(manifest, cache, create_model(cfg.model, init=False).towers["audio"].pipeline)
        cache_seconds = time.perf_counter() - started
        overrides.append(f"data.feature_cache.audio={cache}")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    old_avkit.run_logged(f"recipe {name}", [sys.executable, "-m", "avkit", "train", str(config),
                         *[a for o in overrides for a in ("--set", o)]], out / "console.log")  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    evals = [json.loads(r) for r in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in evals if r["kind"] == "eval"]
    best = max(evals, key=lambda r: r[summary["select"]])
    points = [(r["seconds"], test_r1(out, f"epoch-{r['epoch'] + 1}", manifest)) for r in evals] if curve else []
    return {"epochs": cfg.optim.epochs, "train_s": summary["train_seconds"], "loop_s": summary["session_seconds"],
            "best_epoch": best["epoch"] + 1, "r1": test_r1(out, "best", manifest),
            "cache_s": cache_seconds}, points  # fmt: skip


def run_baseline(commit: str, manifest: Path, out: Path) -> dict:
    """avkit 0.1's contrastive recipe, trained and tested by its own code."""
    src = old_avkit.checkout(commit)
    shutil.rmtree(out, ignore_errors=True)
    summary = old_avkit.train(src, "contrastive.toml", out, [f"manifest={manifest.resolve()}"])
    metrics = old_avkit.test_metrics(src, out, manifest)
    return {"epochs": 15, "train_s": None, "loop_s": summary["train_seconds_this_session"], "best_epoch": None,
            "r1": metrics["audio_to_image/R@1"], "cache_s": None}  # fmt: skip


def spread(values: list[float]) -> str:
    """Median and range of a time, e.g. ``114 (108-131)``."""
    if len(values) == 1:
        return f"{values[0]:.0f}"
    return f"{statistics.median(values):.0f} ({min(values):.0f}-{max(values):.0f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "digits", help="AV-digits folder (built if missing)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "time_to_quality", help="run directories (replaced)")
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--baseline-commit", default=old_avkit.COMMIT, help="avkit 0.1 commit of the baseline row ('' skips it)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of every recipe (default 3)")
    parser.add_argument("--plot", type=Path, help="save the curves here (PNG)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.threads < 1:
        parser.error("--repeats and --threads must be at least 1")
    torch.set_num_threads(args.threads)
    manifest = args.data / "manifest.jsonl"
    if not manifest.is_file():
        build_digits(args.data, DigitsConfig())
    names = [*args.recipes, *([BASELINE] if args.baseline_commit else [])]
    rounds: dict[str, list[dict]] = {name: [] for name in names}
    curves: dict[str, list] = {}
    try:
        for i in range(args.repeats):
            run_round(i, args, names, manifest, rounds, curves)
    except old_avkit.RunError as exc:
        print(f"time_to_quality: error: {exc}", file=sys.stderr)
        return 2
    report(args, rounds, curves)
    return 0


def run_round(i: int, args: argparse.Namespace, names: list[str], manifest: Path, rounds: dict, curves: dict) -> None:
    """Every recipe once, in turn; the numbers so far are saved after the round."""
    for name in names:
        print(f"round {i + 1}/{args.repeats}: {name}", file=sys.stderr)
        if name == BASELINE:
            rounds[name].append(run_baseline(args.baseline_commit, manifest, args.out / "baseline"))
            continue
        numbers, points = run_recipe(name, manifest, args.out / name, args.out / "logmel.safetensors", args.threads, i == 0)
        rounds[name].append(numbers)
        curves.setdefault(name, points)
    atomic_write_json(args.out / "results.json", {"rounds": rounds, "curves": curves})


def report(args: argparse.Namespace, rounds: dict, curves: dict) -> None:
    """Print the table and the curve; save the plot."""
    base = rounds.get(BASELINE)
    print(f"time to quality: contrastive audio<->image on AV-digits; torch {torch.__version__}, {args.threads} "
          f"threads, {platform.machine()}; {args.repeats} rounds, times as median (min-max)\n")
    print("| recipe | epochs | training s | loop s | loop / avkit 0.1 | best epoch (on val) | test a→i R@1 | cache build s | target |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for name, runs in rounds.items():
        r1s = sorted({round(r["r1"], 4) for r in runs})  # training is deterministic: one value, unless it is not
        train_s = [r["train_s"] for r in runs if r["train_s"] is not None]
        loop_s = [r["loop_s"] for r in runs]
        ratio = "-"
        if base is not None:
            ratios = [r["loop_s"] / b["loop_s"] for r, b in zip(runs, base)]
            ratio = f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
        met = "-" if name == BASELINE else "met" if all(
            r["r1"] >= TARGET_R1 and r["train_s"] <= TARGET_SECONDS for r in runs) else "not met"  # every round
        caches = [r["cache_s"] for r in runs if r["cache_s"] is not None]
        print(f"| {name} | {runs[0]['epochs']} | {spread(train_s) if train_s else '-'} | {spread(loop_s)} | {ratio} | "
              f"{runs[0]['best_epoch'] or '-'} | {' / '.join(f'{v:.3f}' for v in r1s)} | "
              f"{spread(caches) if caches else '-'} | {met} |")  # fmt: skip
    print(f"\ntarget: test a→i R@1 >= {TARGET_R1} from the checkpoint chosen on validation, the whole run within "
          f"{TARGET_SECONDS:.0f} s of training steps, in every round\n")
    if curves:
        width = max(len(c) for c in curves.values())
        print("curve, round 1 (each epoch's checkpoint on the test split; seconds of training steps):\n")
        print("| recipe | " + " | ".join(f"epoch {i + 1}" for i in range(width)) + " |")
        print("| --- |" + " ---: |" * width)
        for name, curve in curves.items():
            print(f"| {name} | " + " | ".join(f"{s:.0f} s: {r1:.3f}" for s, r1 in curve) + " |")
    if args.plot and curves:
        fig, ax = plt.subplots(figsize=(6.4, 3.8))
        for name, curve in curves.items():
            ax.plot([s for s, _ in curve], [r for _, r in curve], marker="o", label=name)
        ax.axhline(TARGET_R1, color="grey", ls="--", lw=1)
        ax.axvline(TARGET_SECONDS, color="grey", ls=":", lw=1)
        ax.set(xlabel="seconds of training steps (2 CPU cores)", ylabel="test audio→image R@1", ylim=(0, 1.0),
               title="time to quality, AV-digits")  # fmt: skip
        ax.grid(alpha=0.3)
        ax.legend()
        save_figure(fig, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())

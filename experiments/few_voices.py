"""Few voices: train on AV-digits items from only 3 training voices, test on unseen voices and images.

    python experiments/few_voices.py                                   # writes its section of docs/results.md
    python experiments/few_voices.py --quick --out runs/fv-quick --results runs/fv-quick/results.md

The case of a user with little data. The training split keeps the items of
``--voices`` voices drawn (seeded) from AV-digits' training voices; validation
(checkpoint choice) and test are the usual splits, whose voices and images are
never seen in training. Rows, each trained for the same number of steps:

- **avkit 0.1, unchanged**: the code before the model core (commit
  ``--baseline-commit``, checked out in a git worktree and run as its own
  processes, ``experiments/old_avkit.py``) with its contrastive config;
- **this core**, ``experiments/configs/few-voices.toml`` (chosen on validation):
  the same model, trained by InfoNCE alone or with semantic regularisation (a
  classifier shared by both sides' embeddings), each without and with the
  config's audio and image augmentation.

Each row reports test audio->image R@1 and mAP (class-level relevance) and the
reverse direction, from the checkpoint chosen on validation.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
from dataclasses import replace
from pathlib import Path

import old_avkit

from avkit.data.dataset import ManifestDataset, ordered_loader
from avkit.data.digits import DigitsConfig, build_digits
from avkit.data.manifest import read_manifest, write_manifest
from avkit.errors import AvkitError
from avkit.fileio import atomic_write_json
from avkit.models import load_model
from avkit.provenance import environment_info, git_commit
from avkit.reporting import update_section
from avkit.train import load_run_config, train_or_reuse

log = logging.getLogger("few_voices")
ROOT = Path(__file__).resolve().parents[1]
CONFIGS = Path(__file__).parent / "configs"
TARGET = 0.80


def few_voice_manifest(source: Path, out: Path, voices: int, seed: int) -> list[str]:
    """Write ``out``: ``source`` with its train split cut to ``voices`` seeded voices; returns them."""
    manifest = read_manifest(source)
    train_voices = sorted({r.extra["voice"] for r in manifest.split("train")})
    kept = sorted(random.Random(seed).sample(train_voices, voices))
    records = [r for r in manifest if r.split != "train" or r.extra["voice"] in kept]
    records = [type(r)(r.id, {m: str(manifest.resolve(r, m).resolve()) for m in r.paths}, r.label, r.split, r.boxes,
                       r.extra, r.line) for r in records]  # fmt: skip
    write_manifest(out, records)
    return kept


def test_metrics(run: Path, manifest: Path) -> dict[str, float]:
    model = load_model(run)
    ds = ManifestDataset(manifest, model.pipelines(), split="test", label_names=model.config.labels)
    metrics = model.evaluate(ordered_loader(ds, 256))
    return {k.split("/", 1)[1]: v for k, v in metrics.items() if k.startswith("contrastive/")}


def baseline_row(commit: str, manifest: Path, out: Path, epochs: int, eval_every: int, seed: int) -> dict[str, float]:
    """Train and test with avkit at ``commit`` (a git worktree beside the runs), in its own processes."""
    src = old_avkit.checkout(commit)
    overrides = [f"manifest={manifest.resolve()}", f"optim.epochs={epochs}", f"eval_every={eval_every}", f"seed={seed}"]
    old_avkit.train(src, "contrastive.toml", out / "baseline", overrides)
    return old_avkit.test_metrics(src, out / "baseline", manifest)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/digits"), help="AV-digits folder (built if missing)")
    parser.add_argument("--out", type=Path, default=Path("runs/few_voices"), help="manifest and run directories go here")
    parser.add_argument("--results", type=Path, default=Path("docs/results.md"), help="Markdown file; its few_voices section is replaced")
    parser.add_argument("--voices", type=int, default=3, help="training voices kept (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baseline-commit", default=old_avkit.COMMIT, help="avkit 0.1 commit for the baseline row ('' skips it)")
    parser.add_argument("--quick", action="store_true", help="a few epochs: a smoke run, not the reported numbers")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    try:
        source = args.data / "manifest.jsonl"
        if not source.is_file():
            build_digits(args.data, DigitsConfig(seed=args.seed), show_progress=True)
        setting = {"voices": args.voices, "seed": args.seed, "quick": args.quick, "data": str(source.resolve())}
        recorded = args.out / "setting.json"
        if recorded.is_file() and json.loads(recorded.read_text()) != setting:
            raise AvkitError(f"{args.out} holds runs of another setting ({recorded.read_text().strip()}); "
                             "choose another --out, or delete it")  # fmt: skip
        args.out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(recorded, setting)
        manifest = args.out / "manifest.jsonl"
        voices = few_voice_manifest(source, manifest, args.voices, args.seed)
        n_train = len(read_manifest(manifest).split("train"))
        base_cfg = load_run_config(CONFIGS / "few-voices.toml")
        epochs = 4 if args.quick else base_cfg.optim.epochs
        common = [f"data.manifest={manifest}", f"seed={args.seed}", f"optim.epochs={epochs}"]
        rows: dict[str, dict[str, float]] = {}
        if args.baseline_commit:
            rows[f"avkit 0.1 (commit {args.baseline_commit}), unchanged"] = baseline_row(
                args.baseline_commit, manifest, args.out, epochs, base_cfg.eval_every, args.seed)  # fmt: skip
        recipe = load_run_config(CONFIGS / "few-voices.toml", common)
        head = recipe.model.heads["contrastive"]
        infonce = replace(recipe, model=replace(recipe.model, heads={"contrastive": {**head, "semantic": False}}),
                          loss_weights={})  # fmt: skip
        weight = recipe.loss_weights.get("contrastive", {}).get("semantic", 1.0)
        for loss, cfg in (("InfoNCE", infonce), (f"InfoNCE + semantic (weight {weight:g})", recipe)):
            for aug in (False, True):
                run = replace(cfg, augment=cfg.augment if aug else {},
                              out=str(args.out / f"{'semantic' if cfg is recipe else 'infonce'}-{'aug' if aug else 'plain'}"))
                result, _ = train_or_reuse(run, show_progress=True)
                rows[f"this core, {loss}, {'augmentation' if aug else 'no augmentation'}"] = test_metrics(result.run_dir, manifest)
        target_row = f"this core, InfoNCE + semantic (weight {weight:g}), augmentation"
    except (AvkitError, old_avkit.RunError) as exc:
        print(f"few_voices: error: {exc}", file=sys.stderr)
        return 2

    a, b = "audio", "image"
    lines = [
        "## Few voices: training on 3 voices", "",
        f"AV-digits with its training split cut to the {n_train} items of {len(voices)} voices, drawn with seed "
        f"{args.seed}: {', '.join(f'`{v}`' for v in voices)}. Validation (checkpoint choice) and test are the usual "
        "splits: unseen voices, unseen images. Every row trains the same model for the same number of steps "
        f"({epochs} epochs of one batch); `experiments/configs/few-voices.toml` holds the settings, the "
        "augmentation and the validation scores that chose them. Produced by `python experiments/few_voices.py`."
        + (" **Quick smoke run: not the reported numbers.**" if args.quick else ""), "",
        "| model | a→i R@1 | a→i mAP | i→a R@1 | i→a mAP |", "| --- | --- | --- | --- | --- |",
    ]  # fmt: skip
    for name, m in rows.items():
        lines.append(f"| {name} | {m[f'{a}_to_{b}/R@1']:.3f} | {m[f'{a}_to_{b}/mAP']:.3f} | "
                     f"{m[f'{b}_to_{a}/R@1']:.3f} | {m[f'{b}_to_{a}/mAP']:.3f} |")  # fmt: skip
    aug = rows[target_row][f"{a}_to_{b}/R@1"]
    lines += ["", f"Target: a→i R@1 ≥ {TARGET} with augmentation ({target_row.removeprefix('this core, ')}): "
              f"**{'met' if aug >= TARGET else 'not met'}** ({aug:.3f})."]
    text = "\n".join(lines)
    update_section(args.results, "few_voices", text)
    atomic_write_json(args.out / "results.json", {"voices": voices, "rows": rows, "epochs": epochs,
                                                  "commit": git_commit(ROOT), "environment": environment_info(args.seed)})  # fmt: skip
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Joint embedding on AV-digits: contrastive matching and SoundNet-style distillation.

    python experiments/joint_embedding.py                      # full run, writes docs/results.md
    python experiments/joint_embedding.py --quick --out runs/je-quick --results runs/je-quick/results.md

Steps: build AV-digits (if missing) -> train the contrastive model -> train the
image teacher -> distil it into a raw-waveform audio student -> evaluate on the
test split (unseen voices, unseen images): audio->image and image->audio R@1,
R@5, mAP (class-level), against random embeddings and untrained encoders, and a
linear probe of the student's pool5 features (trained on seen voices, tested on
unseen ones). A finished run is reused; an interrupted one resumes.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from avkit.data.dataset import ManifestDataset, map_batches, ordered_loader
from avkit.data.digits import DigitsConfig, build_digits
from avkit.errors import AvkitError
from avkit.evaluation import retrieval_metrics
from avkit.evaluation.probe import linear_probe, summarise_map
from avkit.fileio import atomic_write_json
from avkit.models import AVModel, create_model, load_model
from avkit.provenance import environment_info
from avkit.reporting import update_section
from avkit.train import RunConfig, load_run_config, train_or_reuse, with_labels

log = logging.getLogger("joint_embedding")
CONFIGS = Path(__file__).parent / "configs"
QUICK = ["optim.epochs=2"]  # a smoke run: minutes, not the numbers in docs/results.md


def run_config(config: Path, overrides: list[str]) -> tuple[RunConfig, float | None]:
    """Train (or resume, or reuse) one config; returns (config, seconds trained now, None if reused)."""
    cfg = with_labels(load_run_config(config, overrides))
    result, reused = train_or_reuse(cfg, show_progress=True)
    return cfg, None if reused else result.seconds


def both_ways(emb_a: torch.Tensor, emb_b: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Class-level audio->image (a2i) and image->audio (i2a) metrics."""
    out = {}
    for tag, (q, g) in {"a2i": (emb_a, emb_b), "i2a": (emb_b, emb_a)}.items():
        m = retrieval_metrics(q, g, labels, labels)
        out.update({f"{tag}_{k}": m[k] for k in ("R@1", "R@5", "R@10", "mAP", "median_rank")})
    return out


def evaluate(model: AVModel, manifest: Path, split: str) -> dict[str, float]:
    """Every head's metrics on ``split``, keys without the head's name (one head per model here)."""
    ds = ManifestDataset(manifest, model.pipelines(), split=split, label_names=model.config.labels)
    metrics = model.evaluate(ordered_loader(ds, 256))
    return {k.split("/", 1)[1]: v for k, v in metrics.items()}


def matching_row(model: AVModel, manifest: Path) -> dict[str, float]:
    """Audio->image (a2i) and image->audio (i2a) test metrics of a contrastive model."""
    m = evaluate(model, manifest, "test")
    a, b = model.embedding_towers()
    return {f"{tag}_{k}": m[f"{q}_to_{g}/{k}"] for tag, (q, g) in {"a2i": (a, b), "i2a": (b, a)}.items()
            for k in ("R@1", "R@5", "R@10", "mAP", "median_rank")}  # fmt: skip


def probe_data(model: AVModel, tower: str, manifest: Path) -> dict[str, ManifestDataset]:
    """The train and test splits as ``tower`` reads them, decoded once (every probe of this tower's config reuses them)."""
    return {split: ManifestDataset(manifest, {tower: model.towers[tower].pipeline}, split=split,
                                   label_names=model.config.labels, in_memory=True) for split in ("train", "test")}  # fmt: skip


def pool5(model: AVModel, tower: str, ds: ManifestDataset) -> tuple[np.ndarray, np.ndarray]:
    """SoundNet pool5 features (mean and max over time) and labels of a split."""
    feats, ids, _ = map_batches(ds, lambda b: summarise_map(model.tower_output(tower, b).intermediates["pool5"]).cpu())
    labels = dict(zip(ds.ids, ds.labels().tolist()))
    return feats.numpy(), np.array([labels[i] for i in ids])


def probe(model: AVModel, tower: str, data: dict[str, ManifestDataset]) -> float:
    """Linear-probe accuracy: trained on the train split's pool5 (seen voices), tested on the test split's."""
    return linear_probe(*pool5(model, tower, data["train"]), *pool5(model, tower, data["test"]))


def over_seeds(seeds: range, measure: Any) -> Any:
    """``measure()`` after seeding torch with each seed: a list per number (a dict of lists for a dict)."""
    draws = []
    for seed in seeds:
        torch.manual_seed(seed)
        draws.append(measure())
    return {k: [d[k] for d in draws] for k in draws[0]} if isinstance(draws[0], dict) else draws


def _seeds(n: int) -> str:
    return f"{n} seed{'s' if n != 1 else ''}"


def fmt(v: float | list[float]) -> str:
    """A number, or several draws as mean ± standard deviation."""
    if isinstance(v, list):
        return f"{float(np.mean(v)):.3f} ± {float(np.std(v)):.3f}" if len(v) > 1 else f"{v[0]:.3f}"
    return f"{v:.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/digits"), help="AV-digits folder (built if missing)")
    parser.add_argument("--out", type=Path, default=Path("runs/joint_embedding"), help="run directories go here")
    parser.add_argument("--results", type=Path, default=Path("docs/results.md"), help="Markdown file; its joint_embedding section is replaced")
    parser.add_argument("--quick", action="store_true", help="2 epochs each: a smoke run, not the reported numbers")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--control-seeds", type=int, default=5, help="random draws of each control (default 5)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    try:
        manifest = args.data / "manifest.jsonl"
        if not manifest.is_file():
            build_digits(args.data, DigitsConfig(seed=args.seed), show_progress=True)
        common = [f"data.manifest={manifest}", f"seed={args.seed}"] + (QUICK if args.quick else [])
        runs = {name: args.out / name for name in ("contrastive", "teacher", "distill")}
        c_cfg, c_secs = run_config(CONFIGS / "contrastive.toml", [*common, f"out={runs['contrastive']}"])
        _, t_secs = run_config(CONFIGS / "teacher.toml", [*common, f"out={runs['teacher']}"])
        d_cfg, d_secs = run_config(CONFIGS / "distill.toml", [*common, f"out={runs['distill']}",
                                                              f"model.init.teacher.checkpoint={runs['teacher']}"])  # fmt: skip

        seeds = range(args.seed, args.seed + args.control_seeds)  # controls are random: several draws, mean ± sd
        rows: dict[str, dict] = {"contrastive (InfoNCE)": matching_row(load_model(runs["contrastive"]), manifest)}
        rows[f"untrained encoders ({_seeds(len(seeds))})"] = over_seeds(
            seeds, lambda: matching_row(create_model(c_cfg.model).eval(), manifest))  # fmt: skip
        test_labels = ManifestDataset(manifest, {}, split="test", label_names=c_cfg.model.labels).labels()
        rows[f"random embeddings ({_seeds(len(seeds))})"] = over_seeds(seeds, lambda: both_ways(
            *(torch.randn(len(test_labels), c_cfg.model.embed_dim) for _ in range(2)), test_labels))  # fmt: skip

        student = load_model(runs["distill"])
        s_tower = student.embedding_towers()[0]
        data = probe_data(student, s_tower, manifest)
        probes = {"distilled student (pool5)": probe(student, s_tower, data),
                  f"untrained student (pool5, {_seeds(len(seeds))})": over_seeds(
                      seeds, lambda: probe(create_model(d_cfg.model).eval(), s_tower, data))}  # fmt: skip
        distill_eval = evaluate(student, manifest, "test")
        c_summary = json.loads((runs["contrastive"] / "summary.json").read_text())
    except AvkitError as exc:
        print(f"joint_embedding: error: {exc}", file=sys.stderr)
        return 2

    lines = [
        "## Joint embedding on AV-digits",
        "",
        f"Test split: {len(test_labels)} pairs; its voices and images are never seen in training. Relevance is "
        "class-level (a result is relevant if it shows or says the query's digit). Machine: "
        f"{torch.get_num_threads()} CPU threads, no GPU. Seed {args.seed}. "
        + ("**Quick smoke run (2 epochs): not the reported numbers.**" if args.quick else ""),
        "",
        "Produced by `python experiments/joint_embedding.py`; configs in `experiments/configs/`"
        " (`contrastive.toml`, `teacher.toml`, `distill.toml`), run directories under "
        f"`{args.out}/`.",
        "",
        "### Audio <-> image retrieval (test split)",
        "",
        "| model | a→i R@1 | a→i R@5 | a→i mAP | i→a R@1 | i→a R@5 | i→a mAP |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, m in rows.items():
        lines.append(f"| {name} | " + " | ".join(fmt(m[k]) for k in
                     ("a2i_R@1", "a2i_R@5", "a2i_mAP", "i2a_R@1", "i2a_R@5", "i2a_mAP")) + " |")  # fmt: skip
    lines += [
        "",
        f"Contrastive training time: {c_summary['train_seconds']:.0f} s of training steps, "
        f"{c_summary['session_seconds']:.0f} s with validation after every epoch"
        + ("" if c_secs is not None else " (recorded by the run; reused here)") + ".",
        "",
        "### Distillation (SoundNet-style): image teacher -> raw-waveform audio student",
        "",
        "| measure | value |",
        "| --- | --- |",
    ]
    lines += [f"| linear probe accuracy, {k}, trained on seen voices, tested on unseen | {fmt(v)} |" for k, v in probes.items()]
    lines += [f"| {k} (test) | {fmt(v)} |" for k, v in distill_eval.items() if k != "score"]
    lines += ["", "The student never sees an audio label; labels are used only by the probe and for reporting. "
              "Controls (untrained networks, random embeddings) are random draws"
              + (f": mean ± standard deviation over {args.control_seeds} seeds." if args.control_seeds > 1 else
                 " (one seed here; the default is 5)."), ""]  # fmt: skip
    text = "\n".join(lines)
    update_section(args.results, "joint_embedding", text)
    atomic_write_json(args.out / "results.json", {"retrieval": rows, "probe": probes, "distill": distill_eval,
                      "seconds": {"contrastive": c_secs, "teacher": t_secs, "distill": d_secs},
                      "environment": environment_info(args.seed)})  # fmt: skip
    print(text)
    return 0


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    sys.exit(main())

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

import numpy as np
import torch

from avkit.config import load_config
from avkit.data.dataset import ManifestDataset
from avkit.data.digits import DigitsConfig, build_digits
from avkit.errors import AvkitError
from avkit.evaluation.probe import intermediate_features, linear_probe
from avkit.fileio import atomic_write_json, atomic_write_text
from avkit.provenance import environment_info
from avkit.retrieval.metrics import retrieval_metrics
from avkit.train import TrainConfig, train_or_reuse
from avkit.train.tasks import Task, build_task, embed_tensor, load_task

log = logging.getLogger("joint_embedding")
CONFIGS = Path(__file__).parent / "configs"
QUICK = ["optim.epochs=2"]  # a smoke run: minutes, not the numbers in docs/results.md


def run_config(config: Path, overrides: list[str]) -> tuple[TrainConfig, float | None]:
    """Train (or resume, or reuse) one config; returns (config, seconds trained now, None if reused)."""
    cfg = load_config(TrainConfig, config, overrides)
    result, reused = train_or_reuse(cfg, show_progress=True)
    return cfg, None if reused else result.seconds


def both_ways(emb_a: torch.Tensor, emb_b: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Class-level audio->image (a2i) and image->audio (i2a) metrics."""
    out = {}
    for tag, (q, g) in {"a2i": (emb_a, emb_b), "i2a": (emb_b, emb_a)}.items():
        m = retrieval_metrics(q, g, labels, labels)
        out.update({f"{tag}_{k}": m[k] for k in ("R@1", "R@5", "R@10", "mAP", "median_rank")})
    return out


def evaluate_matching(task: Task, test: ManifestDataset) -> dict[str, float]:
    a, b = task.modalities
    return both_ways(embed_tensor(task, a, test.tensors[a]), embed_tensor(task, b, test.tensors[b]), test.labels)


def probe(task: Task, modality: str, train_ds: ManifestDataset, test_ds: ManifestDataset) -> float:
    xtr = intermediate_features(task, modality, train_ds.tensors[modality], "pool5")
    xte = intermediate_features(task, modality, test_ds.tensors[modality], "pool5")
    return linear_probe(xtr, train_ds.labels.numpy(), xte, test_ds.labels.numpy())


def fmt(v: float) -> str:
    return f"{v:.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/digits"), help="AV-digits folder (built if missing)")
    parser.add_argument("--out", type=Path, default=Path("runs/joint_embedding"), help="run directories go here")
    parser.add_argument("--results", type=Path, default=Path("docs/results.md"), help="the results table (Markdown)")
    parser.add_argument("--quick", action="store_true", help="2 epochs each: a smoke run, not the reported numbers")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    try:
        manifest = args.data / "manifest.jsonl"
        if not manifest.is_file():
            build_digits(args.data, DigitsConfig(seed=args.seed), show_progress=True)
        common = [f"manifest={manifest}", f"seed={args.seed}"] + (QUICK if args.quick else [])
        runs = {name: args.out / name for name in ("contrastive", "teacher", "distill")}
        c_cfg, c_secs = run_config(CONFIGS / "contrastive.toml", [*common, f"out={runs['contrastive']}"])
        _, t_secs = run_config(CONFIGS / "teacher.toml", [*common, f"out={runs['teacher']}"])
        _, d_secs = run_config(CONFIGS / "distill.toml",
                                   [*common, f"out={runs['distill']}", f"distill.teacher={runs['teacher']}"])  # fmt: skip

        mods = c_cfg.modalities
        test = ManifestDataset.load(manifest, mods, split="test")
        train_ds = ManifestDataset.load(manifest, mods, split="train")
        contrastive, _ = load_task(runs["contrastive"])
        rows = {"contrastive (InfoNCE)": evaluate_matching(contrastive, test)}
        torch.manual_seed(args.seed)
        rows["untrained encoders"] = evaluate_matching(build_task(c_cfg, train_ds.label_names).eval(), test)
        gen = torch.Generator().manual_seed(args.seed)
        rand = [torch.randn(len(test), c_cfg.embed_dim, generator=gen) for _ in mods]
        rows["random embeddings"] = both_ways(rand[0], rand[1], test.labels)

        student, _ = load_task(runs["distill"])
        s_mod = student.modalities[0]
        d_cfg = load_config(TrainConfig, CONFIGS / "distill.toml", [*common, f"distill.teacher={runs['teacher']}"])
        untrained_student = build_task(d_cfg, train_ds.label_names).eval()
        probes = {"distilled student (pool5)": probe(student, s_mod, train_ds, test),
                  "untrained student (pool5)": probe(untrained_student, s_mod, train_ds, test)}  # fmt: skip
        distill_eval = student.evaluate(test)
        train_seconds = json.loads((runs["contrastive"] / "summary.json").read_text())["train_seconds_this_session"]
    except AvkitError as exc:
        print(f"joint_embedding: error: {exc}", file=sys.stderr)
        return 2

    lines = [
        "# Results: joint embedding on AV-digits",
        "",
        f"Test split: {len(test)} pairs; its voices and images are never seen in training. Relevance is "
        "class-level (a result is relevant if it shows or says the query's digit). Machine: "
        f"{torch.get_num_threads()} CPU threads, no GPU. Seed {args.seed}. "
        + ("**Quick smoke run (2 epochs): not the reported numbers.**" if args.quick else ""),
        "",
        "Produced by `python experiments/joint_embedding.py`; configs in `experiments/configs/`"
        " (`contrastive.toml`, `teacher.toml`, `distill.toml`), run directories under "
        f"`{args.out}/`.",
        "",
        "## Audio <-> image retrieval (test split)",
        "",
        "| model | a→i R@1 | a→i R@5 | a→i mAP | i→a R@1 | i→a R@5 | i→a mAP |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, m in rows.items():
        lines.append(f"| {name} | " + " | ".join(fmt(m[k]) for k in
                     ("a2i_R@1", "a2i_R@5", "a2i_mAP", "i2a_R@1", "i2a_R@5", "i2a_mAP")) + " |")  # fmt: skip
    lines += [
        "",
        f"Contrastive training time: {train_seconds:.0f} s"
        + ("" if c_secs is not None else " (recorded by the run; reused here)") + ".",
        "",
        "## Distillation (SoundNet-style): image teacher -> raw-waveform audio student",
        "",
        "| measure | value |",
        "| --- | --- |",
    ]
    lines += [f"| linear probe accuracy, {k}, trained on seen voices, tested on unseen | {fmt(v)} |" for k, v in probes.items()]
    lines += [f"| {k} (test) | {fmt(v)} |" for k, v in distill_eval.items() if k != "score"]
    lines += ["", "The student never sees an audio label; labels are used only by the probe and for reporting.", ""]
    text = "\n".join(lines)
    atomic_write_text(args.results, text)
    atomic_write_json(args.out / "results.json", {"retrieval": rows, "probe": probes, "distill": distill_eval,
                      "seconds": {"contrastive": c_secs, "teacher": t_secs, "distill": d_secs},
                      "environment": environment_info(args.seed)})  # fmt: skip
    print(text)
    return 0


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    sys.exit(main())

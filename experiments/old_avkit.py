"""avkit 0.1 (the task-based trainer, before the model core) run beside this avkit, for baseline rows.

    src = checkout("aa6b09c")                                     # a git worktree of that commit, in runs/baselines
    summary = train(src, "contrastive.toml", run_dir, ["optim.epochs=15", "manifest=..."])
    metrics = test_metrics(src, run_dir, manifest)               # its own evaluation, on the test split

Its code runs in processes of its own (``PYTHONPATH`` = the worktree), so no
line of it is imported here; only its files (summary.json, its metrics) are read.
A failure raises :class:`BaselineError` naming what failed and where its output is.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: The last commit of avkit 0.1 (before towers and heads).
COMMIT = "aa6b09c"
_EVAL = textwrap.dedent("""
    import json, sys
    from avkit.data.dataset import ManifestDataset
    from avkit.train.tasks import load_task
    from avkit.train.tasks.contrastive import cross_modal_metrics
    task, _ = load_task(sys.argv[1])
    test = ManifestDataset.load(sys.argv[2], list(task.modalities), split="test")
    print(json.dumps(cross_modal_metrics(task, test)))
""")


class RunError(RuntimeError):
    """A process of a baseline or benchmark failed; the message says where its output is."""


class BaselineError(RunError):
    """avkit 0.1 could not be checked out, trained or evaluated."""


def run_logged(what: str, cmd: list[str], log: Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
    """Run ``cmd`` with its output appended to ``log``; RunError naming ``what`` and the log if it fails."""
    with log.open("a") as console:
        done = subprocess.run(cmd, cwd=cwd, env=env, stdout=console, stderr=console)
    if done.returncode != 0:
        raise RunError(f"{what} failed (exit {done.returncode}); see {log}")


#: Where the worktrees go (``runs/`` is not tracked).
WORKTREES = ROOT / "runs" / "baselines"


def checkout(commit: str, where: Path = WORKTREES) -> Path:
    """A git worktree of ``commit`` at ``where/avkit-COMMIT`` (made once); its absolute path."""
    src = (where / f"avkit-{commit}").resolve()
    if not (src / "avkit").is_dir():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "prune"], capture_output=True)  # forget deleted ones
        done = subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--force", "--detach", str(src), commit],
                              capture_output=True, text=True)  # fmt: skip
        if done.returncode != 0:
            raise BaselineError(f"cannot check out avkit {commit} into {src}: {done.stderr.strip()}")
    return src


def _env(src: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(src)}


def train(src: Path, config: str, out: Path, overrides: list[str]) -> dict[str, Any]:
    """Train ``experiments/configs/CONFIG`` of the worktree ``src`` into ``out``; returns its summary.json
    (``train_seconds_this_session``: the loop, validation included).

    A finished run with the same source, config and overrides (``out/baseline.json``) is reused, an
    interrupted one resumed; a run of other settings is replaced. Its console goes to ``out/console.log``.
    """
    out = out.resolve()
    settings = {"src": str(src), "config": config, "overrides": overrides}
    recorded = out / "baseline.json"
    same = recorded.is_file() and json.loads(recorded.read_text()) == settings
    if same and (out / "summary.json").is_file():
        return json.loads((out / "summary.json").read_text())
    if not same:
        shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    recorded.write_text(json.dumps(settings))
    resume = ["--resume"] if (out / "checkpoints" / "last.safetensors").is_file() else []
    sets = [arg for o in [*overrides, f"out={out}"] for arg in ("--set", o)]
    run_logged(f"avkit at {src} training {config}", [sys.executable, "-m", "avkit", "train",
               str(src / "experiments" / "configs" / config), *sets, *resume], out / "console.log", src, _env(src))  # fmt: skip
    if not (out / "summary.json").is_file():
        raise BaselineError(f"avkit at {src} trained {config} but wrote no summary.json; see {out / 'console.log'}")
    return json.loads((out / "summary.json").read_text())


def test_metrics(src: Path, run: Path, manifest: Path) -> dict[str, float]:
    """Its own cross-modal metrics of ``run``'s best checkpoint on the test split of ``manifest``
    (keys ``audio_to_image/R@1``, ...)."""
    done = subprocess.run([sys.executable, "-c", _EVAL, str(run.resolve()), str(manifest.resolve())], env=_env(src),
                          capture_output=True, text=True, cwd=src)  # fmt: skip
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise BaselineError(f"avkit at {src} failed to evaluate {run}: {last}")
    return json.loads(done.stdout.strip().splitlines()[-1])


_CONTROLS = textwrap.dedent("""
    import importlib.util, json, sys
    from pathlib import Path
    import torch
    src, manifest, seeds = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    spec = importlib.util.spec_from_file_location("je", src / "experiments" / "joint_embedding.py")
    je = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(je)
    from avkit.config import load_config
    from avkit.data.dataset import ManifestDataset
    from avkit.train.config import TrainConfig
    from avkit.train.tasks import build_task
    cfg = load_config(TrainConfig, src / "experiments/configs/contrastive.toml", [f"manifest={manifest}"])
    test = ManifestDataset.load(manifest, cfg.modalities, split="test")
    labels = ManifestDataset.load(manifest, cfg.modalities, split="train").label_names
    out = {"untrained encoders": [], "random embeddings": []}
    for seed in range(seeds):  # as its joint_embedding.py draws them, for seed 0, 1, ...
        torch.manual_seed(seed)
        out["untrained encoders"].append(je.evaluate_matching(build_task(cfg, labels).eval(), test))
        gen = torch.Generator().manual_seed(seed)
        rand = [torch.randn(len(test), cfg.embed_dim, generator=gen) for _ in cfg.modalities]
        out["random embeddings"].append(je.both_ways(rand[0], rand[1], test.labels))
    print(json.dumps(out))
""")


def controls(src: Path, manifest: Path, seeds: int) -> dict[str, list[dict[str, float]]]:
    """avkit 0.1's joint-embedding controls (untrained encoders, random embeddings) drawn with seeds 0..N-1,
    by its own code: ``{control: [metrics of each draw]}``."""
    done = subprocess.run([sys.executable, "-c", _CONTROLS, str(src), str(manifest.resolve()), str(seeds)],
                          env=_env(src), capture_output=True, text=True, cwd=src)  # fmt: skip
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise BaselineError(f"avkit at {src} failed to draw its controls: {last}")
    return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":  # python experiments/old_avkit.py [DATA] [SEEDS]: avkit 0.1's controls, per seed
    import statistics

    data = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "data" / "digits"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    try:
        draws = controls(checkout(COMMIT), data / "manifest.jsonl", n)
    except BaselineError as exc:
        sys.exit(f"old_avkit: error: {exc}")
    print(f"avkit {COMMIT}: joint-embedding controls on the test split of {data}, seeds 0-{n - 1}\n")
    print("| control | metric | per seed | mean ± sd |\n| --- | --- | --- | --- |")
    for control, rows in draws.items():
        for key in ("a2i_R@1", "a2i_R@5", "a2i_mAP", "i2a_R@1", "i2a_R@5", "i2a_mAP"):
            values = [r[key] for r in rows]
            print(f"| {control} | {key} | {', '.join(f'{v:.3f}' for v in values)} | "
                  f"{statistics.mean(values):.3f} ± {statistics.pstdev(values):.3f} |")

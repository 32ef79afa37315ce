"""avkit 0.1 (the task-based trainer, before the model core) run beside this avkit, for baseline rows.

    src = checkout("aa6b09c", Path("runs/baselines"))            # a git worktree of that commit
    summary = train(src, "contrastive.toml", run_dir, ["optim.epochs=15", "manifest=..."])
    metrics = test_metrics(src, run_dir, manifest)               # its own evaluation, on the test split

Its code runs in processes of its own (``PYTHONPATH`` = the worktree), so no
line of it is imported here; only its files (summary.json, its metrics) are read.
"""

from __future__ import annotations

import json
import os
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


def checkout(commit: str, where: Path) -> Path:
    """A git worktree of ``commit`` at ``where/avkit-COMMIT`` (made once); its absolute path."""
    src = (where / f"avkit-{commit}").resolve()
    if not (src / "avkit").is_dir():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(src), commit], check=True,
                       capture_output=True)  # fmt: skip
    return src


def _env(src: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(src)}


def train(src: Path, config: str, out: Path, overrides: list[str]) -> dict[str, Any]:
    """Train ``experiments/configs/CONFIG`` of the worktree ``src`` into ``out`` (resumed if interrupted,
    reused if finished); returns its summary.json (``train_seconds_this_session``: the loop, validation included).
    What it prints goes to ``out/console.log``."""
    out = out.resolve()
    if not (out / "summary.json").is_file():
        resume = ["--resume"] if (out / "checkpoints" / "last.safetensors").is_file() else []
        sets = [arg for o in [*overrides, f"out={out}"] for arg in ("--set", o)]
        out.mkdir(parents=True, exist_ok=True)
        with (out / "console.log").open("a") as console:
            subprocess.run([sys.executable, "-m", "avkit", "train", str(src / "experiments" / "configs" / config), *sets,
                            *resume], check=True, env=_env(src), cwd=src, stdout=console, stderr=console)  # fmt: skip
    return json.loads((out / "summary.json").read_text())


def test_metrics(src: Path, run: Path, manifest: Path) -> dict[str, float]:
    """Its own cross-modal metrics of ``run``'s best checkpoint on the test split of ``manifest``
    (keys ``audio_to_image/R@1``, ...)."""
    result = subprocess.run([sys.executable, "-c", _EVAL, str(run.resolve()), str(manifest.resolve())], check=True,
                            env=_env(src), capture_output=True, text=True, cwd=src)  # fmt: skip
    return json.loads(result.stdout.strip().splitlines()[-1])

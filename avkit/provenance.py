"""What produced a result: code version, library versions, threads, seed."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import torch


def git_commit(path: str | Path = ".") -> str | None:
    """The checkout's HEAD commit (with ``-dirty`` if it has changes), or None outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=path,
                               capture_output=True, text=True, check=True)  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def environment_info(seed: int | None = None) -> dict[str, Any]:
    """Versions, thread count, device and git commit, to record beside a run's results."""
    import avkit

    return {
        "seed": seed,
        "git_commit": git_commit(Path(avkit.__file__).resolve().parent),
        "avkit": avkit.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "machine": platform.machine(),
    }

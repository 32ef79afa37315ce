"""What produced a result: code version, library versions, threads, seed, and the CPU's kernels."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import torch

#: Environment variables that choose which CPU kernels torch (ATen), oneDNN, MKL, OpenBLAS and faiss run.
#: Other kernels round differently in the last bits, and a chain of training runs can end elsewhere: the
#: translation chain's image -> speech accuracy moved from 0.955 to 0.788 with AVX2 kernels in place of
#: AVX-512 ones (docs/translation.md). Recorded when set.
KERNEL_VARIABLES = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "OPENBLAS_CORETYPE",
                    "FAISS_SIMD_LEVEL")


def cpu_model(cpuinfo: str | Path = "/proc/cpuinfo") -> str | None:
    """The CPU's model name (from ``cpuinfo`` on Linux, else ``platform.processor()``), or None if unknown."""
    try:
        for line in Path(cpuinfo).read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or None


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
    """Versions, thread count, device, CPU and its kernel level, and git commit, to record beside a run's results
    (the same code and seeds give other numbers on another CPU's kernels: ``KERNEL_VARIABLES``)."""
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
        "cpu": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),  # the ATen kernels in use, e.g. AVX512
        "kernel_overrides": {name: os.environ[name] for name in KERNEL_VARIABLES if name in os.environ},
    }

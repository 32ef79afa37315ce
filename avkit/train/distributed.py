"""Data-parallel plumbing for ``torchrun``: process group, ranks, and the per-rank batches.

One process (no ``WORLD_SIZE`` in the environment) is the plain case; every
helper then does nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed() -> DistInfo:
    """Join the process group ``torchrun`` describes (gloo on CPU, nccl on GPU), if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
    return DistInfo(dist.get_rank(), dist.get_world_size(), local)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def mean_across(value: float, info: DistInfo) -> float:
    """The mean of a scalar over all processes."""
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t) / info.world_size


def any_across(flag: bool, info: DistInfo) -> bool:
    """Whether ``flag`` is true on any process (a collective call: every process must make it)."""
    if not info.enabled:
        return flag
    t = torch.tensor([int(flag)])
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t)


def gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """Every process's ``obj``, in rank order (a one-item list without a process group)."""
    if not info.enabled:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, info: DistInfo) -> list[torch.Tensor]:
    """This process's index batches for ``epoch``: every index exactly once across processes.

    The epoch's permutation depends only on ``(seed, epoch)``, so a resumed run
    sees the same order. It is cut into global batches of ``batch_size``; a
    remainder too small to give every process an item joins the previous batch.
    Each global batch is split evenly across processes (sizes differ by at most 1),
    so every process takes the same number of steps.
    """
    gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
    perm = torch.randperm(n, generator=gen)
    if n < info.world_size:
        raise ValueError(f"{n} training items cannot be shared among {info.world_size} processes")
    bounds = list(range(0, n, batch_size)) + [n]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] < max(info.world_size, 2):
        bounds.pop(-2)
    batches = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        chunk = np.array_split(np.arange(lo, hi), info.world_size)[info.rank]
        batches.append(perm[torch.from_numpy(chunk)])
    return batches

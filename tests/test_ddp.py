"""Data-parallel training under torchrun: 2 CPU processes (gloo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import tiny_config, write_config


def test_two_processes_see_every_sample_once_per_epoch_and_only_rank0_writes(small_digits, tmp_path):
    out = tmp_path / "ddp"
    cfg = tiny_config(small_digits / "manifest.jsonl", out, record_samples=True, checkpoint_every=4,
                      **{"optim.epochs": 3, "optim.batch_size": 16, "data.workers": 1})  # fmt: skip
    config = write_config(tmp_path / "ddp.json", cfg)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "avkit", "-q", "train", str(config)]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]

    rows = [json.loads(r) for r in (out / "metrics.jsonl").read_text().splitlines()]
    n_train = sum(1 for line in (small_digits / "manifest.jsonl").read_text().splitlines() if '"split": "train"' in line)
    samples = [r for r in rows if r["kind"] == "samples"]
    assert [r["epoch"] for r in samples] == [0, 1, 2]
    for r in samples:
        rank0, rank1 = r["per_rank"]
        assert rank0 and rank1 and not set(rank0) & set(rank1)  # each process has its own share
        assert sorted(rank0 + rank1) == list(range(n_train))  # together: every sample exactly once

    train_rows = [r for r in rows if r["kind"] == "train"]
    steps = [r["step"] for r in train_rows]
    assert steps == sorted(set(steps))  # one writer: no step logged twice
    first, last = train_rows[0]["loss"], train_rows[-1]["loss"]
    assert last < first, (first, last)
    assert json.loads((out / "environment.json").read_text())["world_size"] == 2
    assert json.loads((out / "checkpoints" / "last.json").read_text())["state"]["world_size"] == 2
    assert not list(out.glob("**/*.tmp*")) and not list(out.glob("**/.*"))  # no leftovers from a second writer

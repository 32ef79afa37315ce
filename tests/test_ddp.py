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


def test_torchrun_embed_splits_the_manifest_and_the_index_takes_every_rank_file(small_digits, trained_run, tmp_path):
    """2 processes each embed their share into their own file; together they hold the one-process embeddings."""
    import torch

    from avkit.retrieval import load_embeddings
    from avkit.retrieval.index import RetrievalIndex

    common = ["embed", "--checkpoint", str(trained_run), "--manifest", str(small_digits / "manifest.jsonl"),
              "--modality", "image", "--split", "test"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = subprocess.run([sys.executable, "-m", "avkit", "-q", *common, "--out", str(tmp_path / "one.safetensors")],
                            capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert single.returncode == 0, single.stderr[-2000:]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "avkit", "-q", *common, "--out", str(tmp_path / "emb.safetensors")]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    parts = [load_embeddings(tmp_path / f"emb.rank{r}-of-2.safetensors") for r in (0, 1)]
    whole = load_embeddings(tmp_path / "one.safetensors")
    assert parts[0].ids and parts[1].ids and not set(parts[0].ids) & set(parts[1].ids)
    assert sorted(parts[0].ids + parts[1].ids) == sorted(whole.ids)
    by_id = {i: v for p in parts for i, v in zip(p.ids, p.vectors)}
    assert torch.allclose(torch.stack([by_id[i] for i in whole.ids]), whole.vectors, atol=1e-5)
    from avkit.cli import main

    files = [str(tmp_path / f"emb.rank{r}-of-2.safetensors") for r in (0, 1)]
    assert main(["index", "build", "--embeddings", *files, "--out", str(tmp_path / "idx")]) == 0
    assert sorted(RetrievalIndex.load(tmp_path / "idx").keys()) == sorted(whole.ids)


def test_two_processes_on_shards_see_every_item_once_per_epoch(small_digits, tmp_path):
    """Streaming shards under torchrun: each rank reads its part of the epoch's shard sequence."""
    from avkit.data.shards import write_shards
    from avkit.modalities import get_modality

    pipes = {m: get_modality(m).make_pipeline() for m in ("audio", "image")}
    write_shards(small_digits / "manifest.jsonl", tmp_path / "shards", pipes, split="train", shard_size=7)
    out = tmp_path / "ddp-shards"
    cfg = tiny_config(small_digits / "manifest.jsonl", out, record_samples=True,
                      **{"optim.epochs": 2, "optim.batch_size": 16, "data.workers": 2,
                         "data.shards": str(tmp_path / "shards")})  # fmt: skip
    config = write_config(tmp_path / "ddp.json", cfg)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "avkit", "-q", "train", str(config)]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    rows = [json.loads(r) for r in (out / "metrics.jsonl").read_text().splitlines()]
    samples = [r for r in rows if r["kind"] == "samples"]
    assert [r["epoch"] for r in samples] == [0, 1]
    for r in samples:
        rank0, rank1 = r["per_rank"]
        assert rank0 and rank1 and not set(rank0) & set(rank1)
        assert sorted(rank0 + rank1) == list(range(60))  # the 60 training items, each once
    assert samples[0]["per_rank"] != samples[1]["per_rank"]  # each epoch its own shard order

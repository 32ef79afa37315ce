"""WebDataset shards: writing, streaming (every item once, by rank and worker), exact resume, damage."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tarfile

import pytest
import torch
from conftest import tiny_config

from avkit.config import from_dict
from avkit.data.manifest import read_manifest
from avkit.data.shards import ShardSet, ShardStream, epoch_plan, write_shards
from avkit.errors import ConfigError
from avkit.modalities import get_modality
from avkit.train import RunConfig, train


def pipelines(**audio: object) -> dict:
    return {"audio": get_modality("audio").make_pipeline(audio or None), "image": get_modality("image").make_pipeline()}


@pytest.fixture(scope="module")
def shards(small_digits, tmp_path_factory):
    out = tmp_path_factory.mktemp("shards") / "media"
    summary = write_shards(small_digits / "manifest.jsonl", out, pipelines(), split="train", shard_size=7)
    assert summary["items"] == 60 and summary["shards"] == 9 and not summary["skipped"]
    return ShardSet.load(out)


def numbers(stream: ShardStream, epoch: int, workers: int, start: int = 0) -> list[list[int]]:
    return [b.index.tolist() for b in stream.loader(epoch, start, workers)]


def test_shards_hold_each_item_once_with_its_metadata(shards, small_digits):
    manifest = read_manifest(small_digits / "manifest.jsonl")
    info = json.loads((shards.folder / "shards.json").read_text())
    assert info["split"] == "train" and info["labels"] == manifest.labels() and shards.items == 60
    assert shards.verify() == []
    with tarfile.open(shards.folder / "shard-000000.tar") as tar:
        names = tar.getnames()
        meta = json.loads(tar.extractfile("000000000.json").read())
    assert sorted(names[:3]) == ["000000000.audio.wav", "000000000.image.png", "000000000.json"]
    first = manifest[meta["id"]]
    assert first.split == "train" and meta["label"] == first.label and meta["voice"] == first.extra["voice"]
    assert info["shuffle_seed"] == 0 and meta["id"] != manifest.split("train")[0].id  # written in a shuffled order


@pytest.mark.parametrize("workers", [0, 2])
def test_an_epoch_streams_every_item_once_and_batches_match_the_manifest_path(shards, small_digits, workers):
    stream = ShardStream(shards, pipelines(), batch_size=16, seed=3)
    batches = numbers(stream, 0, workers)
    assert len(batches) == stream.steps_per_epoch() == 4 and sorted(sum(batches, [])) == list(range(60))
    assert numbers(stream, 1, workers) != batches  # another epoch, another order
    batch = next(iter(stream.loader(0, 0, workers)))
    assert batch.inputs["audio"].shape == (15, 16000) and batch.inputs["image"].shape[0] == 15
    manifest = read_manifest(small_digits / "manifest.jsonl")
    by_id = {r.id: r for r in manifest}
    assert [stream.label_names[i] for i in batch.labels] == [by_id[i].label for i in batch.ids]


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_a_resumed_epoch_continues_with_exactly_the_batches_left(shards, workers):
    stream = ShardStream(shards, pipelines(), batch_size=8, seed=1)
    full = numbers(stream, 2, workers)
    for start in (1, 3, len(full) - 1):
        assert numbers(stream, 2, workers, start) == full[start:], start


def test_ranks_split_the_items_and_take_the_same_number_of_steps(shards):
    for world in (2, 3):
        parts = [numbers(ShardStream(shards, pipelines(), 16, seed=0, rank=r, world=world), 1, 2) for r in range(world)]
        assert len({len(p) for p in parts}) == 1  # the same number of steps on every rank
        seen = [i for p in parts for b in p for i in b]
        assert sorted(seen) == list(range(60))
    _, _, sizes = epoch_plan([7] * 3, 4, 0, 0, 0, 2)
    assert sum(sizes) == 10 and max(sizes) - min(sizes) <= 1


def test_array_shards_hold_what_the_pipeline_loads_and_refuse_other_settings(small_digits, tmp_path):
    manifest = read_manifest(small_digits / "manifest.jsonl")
    write_shards(manifest, tmp_path / "arrays", pipelines(sample_rate=8000), split="val", content="arrays")
    arrays = ShardSet.load(tmp_path / "arrays")
    stream = ShardStream(arrays, pipelines(sample_rate=8000), 64, train=False)
    batch = next(iter(stream.loader(0)))
    rec = manifest[batch.ids[0]]
    want = pipelines(sample_rate=8000)["audio"](manifest.load(rec, pipelines(sample_rate=8000)["audio"]))[0]
    assert torch.equal(batch.inputs["audio"][0], want)
    with pytest.raises(ConfigError, match="arrays were made with settings"):
        ShardStream(arrays, pipelines(), 64)
    with pytest.raises(ConfigError, match="already holds shards"):
        write_shards(manifest, tmp_path / "arrays", pipelines(sample_rate=8000), split="val", content="arrays")


def test_a_truncated_shard_is_named_and_its_readable_items_used(shards, tmp_path, caplog):
    import shutil

    copy = tmp_path / "cut"
    shutil.copytree(shards.folder, copy)
    victim = copy / "shard-000004.tar"
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    stream = ShardStream(ShardSet.load(copy), pipelines(), batch_size=16, seed=3)
    with caplog.at_level(logging.WARNING):
        batches = list(stream.loader(0, 0, 0))
    got = sum(len(b) for b in batches)
    lost = [s for b in batches for s in b.skipped]
    assert 53 <= got < 60 and len(lost) == 60 - got  # every loss counted, one by one
    assert all(rid.startswith("shard-000004.tar item ") and "shard-000004.tar" in str(err) for rid, err in lost)
    assert [len(b) + len(b.skipped) for b in batches] == [15, 15, 15, 15]  # batches keep their planned sizes
    assert any("shard-000004.tar is damaged" in r.message for r in caplog.records)
    assert ShardSet.load(copy).verify() == [f"{victim}: its SHA-256 differs from shards.json's (damaged, or rewritten since)"]


def test_a_damaged_member_skips_only_its_item(shards, tmp_path, caplog):
    import shutil

    copy = tmp_path / "flip"
    shutil.copytree(shards.folder, copy)
    victim = copy / "shard-000001.tar"
    data = bytearray(victim.read_bytes())
    with tarfile.open(victim) as tar:
        member = tar.getmember("000000007.image.png")
    data[member.offset_data : member.offset_data + 40] = b"\0" * 40  # the PNG header, inside the tar
    victim.write_bytes(bytes(data))
    stream = ShardStream(ShardSet.load(copy), pipelines(), batch_size=16, seed=3, train=False)
    with caplog.at_level(logging.WARNING):
        batches = list(stream.loader(0, 0, 0))
    assert sum(len(b) for b in batches) == 59
    (rid, error), = [s for b in batches for s in b.skipped]
    assert "shard-000001.tar" in str(error) and "item 0" in str(error) and "cannot be decoded as an image" in str(error)
    assert any("SHA-256 differs" in r.message for r in caplog.records)


def test_training_from_shards_resumes_exactly_after_a_stop(small_digits, shards, tmp_path):
    over = {"optim.epochs": 2, "optim.batch_size": 8, "checkpoint_every": 2, "data.shards": str(shards.folder),
            "data.workers": 2, "data.shuffle_buffer": 10, "augment.image": {"rotate_degrees": 5}}  # fmt: skip
    straight = train(from_dict(RunConfig, tiny_config(small_digits / "manifest.jsonl", tmp_path / "straight", **over)))
    assert straight.steps == 2 * 8
    # stopped after step 5 (checkpoint at 4): the resumed run re-reads 4 batches of epoch 0
    cut = from_dict(RunConfig, tiny_config(small_digits / "manifest.jsonl", tmp_path / "cut", **over))
    from avkit.train import engine

    class Stop(Exception):
        pass

    original = engine._Run.train_step

    def stop_at_5(self, batch):
        if self.step == 5:
            raise Stop
        return original(self, batch)

    engine._Run.train_step = stop_at_5
    try:
        with pytest.raises(Stop):
            train(cut)
    finally:
        engine._Run.train_step = original
    resumed = train(cut, resume=True)
    assert resumed.steps == straight.steps and resumed.fingerprint == straight.fingerprint


def test_fewer_items_than_workers_and_a_foreign_or_interrupted_folder(small_digits, tmp_path):
    manifest = read_manifest(small_digits / "manifest.jsonl")
    few = manifest.split("val")[:3]
    from avkit.data.manifest import Manifest

    write_shards(Manifest(manifest.path, few), tmp_path / "few", pipelines(), split="val", shard_size=2)
    stream = ShardStream(ShardSet.load(tmp_path / "few"), pipelines(), batch_size=64)
    assert [sorted(b.index.tolist()) for b in stream.loader(0, 0, workers=2)] == [[0, 1, 2]]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "shard-000000.tar").write_bytes(b"someone else's")
    with pytest.raises(ConfigError, match=r"holds shard-\*\.tar files that avkit did not write"):
        write_shards(manifest, tmp_path / "other", pipelines(), split="val")
    (tmp_path / "other" / ".avkit-writing-shards").touch()  # an interrupted avkit write: replaced
    assert write_shards(manifest, tmp_path / "other", pipelines(), split="val")["items"] == 20
    assert not (tmp_path / "other" / ".avkit-writing-shards").exists()


def test_shard_cli_writes_and_refuses_clearly(small_digits, tmp_path):
    def avkit(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "avkit", *args], capture_output=True, text=True, cwd=tmp_path)

    manifest = str(small_digits / "manifest.jsonl")
    res = avkit("data", "shard", manifest, "--out", "s", "--shard-size", "25", "--split", "val")
    assert res.returncode == 0, res.stderr
    assert "wrote 20 items in 1 shards" in res.stdout
    res = avkit("data", "shard", manifest, "--out", "a", "--content", "arrays")
    assert res.returncode == 2 and "--content arrays: give --config" in res.stderr
    res = avkit("data", "shard", manifest, "--out", "s", "--split", "nope")
    assert res.returncode == 2 and "no records in split 'nope'" in res.stderr and "Traceback" not in res.stderr
    (tmp_path / "t.json").write_text(json.dumps(tiny_config(small_digits / "manifest.jsonl", tmp_path / "r",
                                                            **{"data.shards": str(tmp_path / "s")})))  # fmt: skip
    res = avkit("train", "t.json")
    assert res.returncode == 2 and "holds the 'val' split, but data.train_split is 'train'" in res.stderr

"""The training engine: run records, determinism, resume after SIGKILL, bad data, bad configs."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import tiny_config, write_config
from safetensors.torch import save_file

from avkit.config import from_dict
from avkit.errors import ArtifactError, ConfigError, MediaError
from avkit.train import TrainConfig, train
from avkit.train.checkpoint import load_checkpoint
from avkit.train.tasks import load_task


def _cfg(small_digits: Path, out: Path, **kw: object) -> TrainConfig:
    return from_dict(TrainConfig, tiny_config(small_digits / "manifest.jsonl", out, **kw))


def test_a_run_records_config_seed_commit_metrics_plots_and_checkpoints(trained_run):
    names = {p.name for p in trained_run.iterdir()}
    assert {"config.json", "environment.json", "metrics.jsonl", "summary.json", "plots", "checkpoints"} <= names
    env = json.loads((trained_run / "environment.json").read_text())
    assert env["seed"] == 0 and "git_commit" in env and env["world_size"] == 1
    rows = [json.loads(r) for r in (trained_run / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if r["split"] == "train"]
    assert [r["step"] for r in train_rows] == list(range(1, len(train_rows) + 1))
    assert {"audio_to_image/R@1", "image_to_audio/mAP", "score"} <= set(next(r for r in rows if r["split"] == "val"))
    assert (trained_run / "plots" / "curves.png").stat().st_size > 1000
    for name in ("best", "last"):
        assert (trained_run / "checkpoints" / f"{name}.safetensors").is_file()
        meta = json.loads((trained_run / "checkpoints" / f"{name}.json").read_text())
        assert meta["config"]["seed"] == 0 and len(meta["fingerprint"]) == 16
    assert load_checkpoint(trained_run / "checkpoints" / "last.safetensors").optimizer_state() is not None


def test_training_is_deterministic_for_a_seed(small_digits, tmp_path, trained_run):
    again = train(_cfg(small_digits, tmp_path / "again"))
    first = json.loads((trained_run / "checkpoints" / "last.json").read_text())["fingerprint"]
    assert json.loads((tmp_path / "again" / "checkpoints" / "last.json").read_text())["fingerprint"] == first
    assert again.best_metrics == json.loads((trained_run / "summary.json").read_text())["best_metrics"]


def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(small_digits, tmp_path):
    # 60 train items, batch 4: 15 steps per epoch, 45 in all; checkpoint every 2 steps
    over = {"optim.epochs": 3, "optim.batch_size": 4, "checkpoint_every": 2, "loss.kind": "triplet"}
    straight = train(_cfg(small_digits, tmp_path / "straight", **over))
    config = write_config(tmp_path / "c.json", tiny_config(small_digits / "manifest.jsonl", tmp_path / "killed", **over))
    cmd = [sys.executable, "-m", "avkit", "-q", "train", str(config)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    last = tmp_path / "killed" / "checkpoints" / "last.json"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if last.is_file() and json.loads(last.read_text())["step"] >= 4:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
    killed_at = json.loads(last.read_text())
    assert killed_at["step"] < straight.steps and not (tmp_path / "killed" / "summary.json").exists()
    res = subprocess.run([*cmd, "--resume"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    final = json.loads(last.read_text())
    assert final["step"] == straight.steps
    assert final["fingerprint"] == json.loads((tmp_path / "straight" / "checkpoints" / "last.json").read_text())["fingerprint"]
    rows = [json.loads(r) for r in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows if r["split"] == "train"]
    assert steps == list(range(1, straight.steps + 1))  # rows after the checkpoint were replaced, not doubled


def test_config_mistakes_are_refused_with_the_key_named(small_digits, tmp_path, trained_run):
    with pytest.raises(ConfigError, match="manifest: set the manifest"):
        train(from_dict(TrainConfig, {"out": str(tmp_path), "modalities": ["audio", "image"]}))
    with pytest.raises(ConfigError, match="unknown task 'clip'"):
        train(_cfg(small_digits, tmp_path / "x", task="clip"))
    with pytest.raises(ConfigError, match="needs two different modalities"):
        train(_cfg(small_digits, tmp_path / "y", modalities=["audio"]))
    with pytest.raises(ConfigError, match="already has a run; pass --resume"):
        train(_cfg(small_digits, trained_run))
    with pytest.raises(ConfigError, match="nothing to resume"):
        train(_cfg(small_digits, tmp_path / "fresh"), resume=True)
    copy = tmp_path / "copy"
    shutil.copytree(trained_run, copy)
    with pytest.raises(ConfigError, match=r"different config .* optim\.lr: 0\.003 -> 0\.01"):
        train(_cfg(small_digits, copy, **{"optim.lr": 0.01}), resume=True)


def test_a_bad_item_is_skipped_and_reported_or_refused_in_strict_mode(small_digits, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(small_digits, data)
    victim = sorted((data / "audio").iterdir())[0]
    victim.write_bytes(b"RIFF garbage")
    result = train(_cfg(data, tmp_path / "run", **{"optim.epochs": 1}))
    skipped = json.loads((tmp_path / "run" / "summary.json").read_text())["skipped"]
    assert any(victim.stem in rid for rid, _ in skipped["train"] + skipped["val"]) and result.steps > 0
    with pytest.raises(MediaError, match=victim.name):
        train(_cfg(data, tmp_path / "strict", strict=True))


def test_corrupt_or_foreign_checkpoints_get_clear_errors(trained_run, tmp_path):
    good = (trained_run / "checkpoints" / "best.safetensors").read_bytes()
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(good[: len(good) // 3])
    with pytest.raises(ArtifactError, match="bad.safetensors: corrupt or unreadable checkpoint"):
        load_task(bad)
    with pytest.raises(ArtifactError, match="checkpoint does not exist"):
        load_task(tmp_path / "none.safetensors")
    with pytest.raises(ArtifactError, match="no checkpoints/best.safetensors"):
        load_task(tmp_path)
    save_file({"w": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(ArtifactError, match="not an avkit checkpoint"):
        load_task(tmp_path / "foreign.safetensors")


def test_distillation_trains_a_student_from_a_frozen_teacher(small_digits, tmp_path):
    teacher = train(_cfg(small_digits, tmp_path / "teacher", task="classify", modalities=["image"]))
    before = load_task(teacher.run_dir)[0].state_dict()
    student = train(_cfg(small_digits, tmp_path / "student", task="distill",
                         **{"distill.teacher": str(teacher.run_dir), "encoders.audio": {"name": "soundnet", "width_mult": 0.125}}))  # fmt: skip
    task, _ = load_task(student.run_dir)  # rebuilt from the student checkpoint alone
    assert set(student.best_metrics) >= {"teacher_agreement", "student_accuracy", "score"}
    for key, value in task.teacher.state_dict().items():  # the teacher stayed frozen, BatchNorm included
        assert torch.equal(value, before[key]), key
    with pytest.raises(ConfigError, match="embeds 'audio' only"):
        task.features("image", None)


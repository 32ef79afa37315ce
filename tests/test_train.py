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
from avkit.models import create_model, load_checkpoint, load_model
from avkit.train import RunConfig, train

CLASSIFY = {"towers": {"image": {"encoder": {"name": "image_resnet", "width": 4, "stages": 2}}}, "heads": {"classify": {}}}


def _cfg(small_digits: Path, out: Path, **kw: object) -> RunConfig:
    return from_dict(RunConfig, tiny_config(small_digits / "manifest.jsonl", out, **kw))


def test_a_run_records_config_seed_commit_metrics_plots_and_checkpoints(trained_run):
    names = {p.name for p in trained_run.iterdir()}
    assert {"config.json", "environment.json", "metrics.jsonl", "summary.json", "plots", "checkpoints"} <= names
    env = json.loads((trained_run / "environment.json").read_text())
    assert env["seed"] == 0 and "git_commit" in env and env["world_size"] == 1
    rows = [json.loads(r) for r in (trained_run / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if r["kind"] == "train"]
    assert [r["step"] for r in train_rows] == list(range(1, len(train_rows) + 1))
    assert {"loss", "contrastive/infonce", "contrastive/temperature", "seconds"} <= set(train_rows[0])
    eval_row = next(r for r in rows if r["kind"] == "eval")
    assert eval_row["split"] == "val"
    assert {"contrastive/audio_to_image/R@1", "contrastive/image_to_audio/mAP", "contrastive/score"} <= set(eval_row)
    assert (trained_run / "plots" / "curves.png").stat().st_size > 1000
    for name in ("best", "last"):
        assert (trained_run / "checkpoints" / f"{name}.safetensors").is_file()
        meta = json.loads((trained_run / "checkpoints" / f"{name}.json").read_text())
        assert meta["state"]["run"]["seed"] == 0 and len(meta["fingerprint"]) == 16
        assert set(meta["model"]["towers"]) == {"audio", "image"} and "run" not in meta["model"]  # model config apart
        assert "out" not in meta["model"] and "optim" not in meta["model"]
    assert "optimizer" in load_checkpoint(trained_run / "checkpoints" / "last.safetensors").state
    summary = json.loads((trained_run / "summary.json").read_text())
    assert summary["select"] == "contrastive/score" and summary["selected_on"] == "val"


def test_training_is_deterministic_for_a_seed(small_digits, tmp_path, trained_run):
    again = train(_cfg(small_digits, tmp_path / "again"))
    first = json.loads((trained_run / "checkpoints" / "last.json").read_text())["fingerprint"]
    assert json.loads((tmp_path / "again" / "checkpoints" / "last.json").read_text())["fingerprint"] == first
    assert again.best_metrics == json.loads((trained_run / "summary.json").read_text())["best_metrics"]


def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(small_digits, tmp_path):
    # 60 train items, batch 4: 15 steps per epoch, 45 in all; checkpoint every 2 steps
    over = {"optim.epochs": 3, "optim.batch_size": 4, "checkpoint_every": 2, "model.heads.contrastive.loss": "triplet",
            "augment.audio": {"gain_db": [-3, 3], "time_masks": 1, "time_mask_frames": 5}, "augment.image": {"rotate_degrees": 5}}
    straight = train(_cfg(small_digits, tmp_path / "straight", **over))
    config = write_config(tmp_path / "c.json", tiny_config(small_digits / "manifest.jsonl", tmp_path / "killed", **over))
    cmd = [sys.executable, "-m", "avkit", "-q", "train", str(config)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    last = tmp_path / "killed" / "checkpoints" / "last.json"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if last.is_file() and json.loads(last.read_text())["state"]["step"] >= 4:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
    killed_at = json.loads(last.read_text())["state"]
    assert killed_at["step"] < straight.steps and not (tmp_path / "killed" / "summary.json").exists()
    res = subprocess.run([*cmd, "--resume"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    final = json.loads(last.read_text())
    assert final["state"]["step"] == straight.steps
    assert final["fingerprint"] == json.loads((tmp_path / "straight" / "checkpoints" / "last.json").read_text())["fingerprint"]
    rows = [json.loads(r) for r in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows if r["kind"] == "train"]
    assert steps == list(range(1, straight.steps + 1))  # rows after the checkpoint were replaced, not doubled


def test_config_mistakes_are_refused_with_the_key_named(small_digits, tmp_path, trained_run):
    with pytest.raises(ConfigError, match="data.manifest: set the manifest"):
        train(from_dict(RunConfig, {"out": str(tmp_path)}))
    with pytest.raises(ConfigError, match=r"head 'clip': unknown head 'clip'; known: \['caption', 'classify', 'contrastive'"):
        train(_cfg(small_digits, tmp_path / "x", **{"model.heads": {"clip": {}}}))
    with pytest.raises(ConfigError, match="needs two different towers"):
        train(_cfg(small_digits, tmp_path / "y", **{"model.heads.contrastive.towers": ["audio", "audio"]}))
    with pytest.raises(ConfigError, match=r"loss_weights.contrastive.semantic: head 'contrastive' gives the loss terms \['infonce'\]"):
        train(_cfg(small_digits, tmp_path / "z", **{"loss_weights.contrastive.semantic": 0.1}))
    with pytest.raises(ConfigError, match=r"augment: no tower named \['depth'\]"):
        train(_cfg(small_digits, tmp_path / "w", **{"augment.depth": {"gain_db": [0, 1]}}))
    with pytest.raises(ConfigError, match="already has a run; pass --resume"):
        train(_cfg(small_digits, trained_run))
    with pytest.raises(ConfigError, match="nothing to resume"):
        train(_cfg(small_digits, tmp_path / "fresh"), resume=True)
    copy = tmp_path / "copy"
    shutil.copytree(trained_run, copy)
    with pytest.raises(ConfigError, match=r"different config .* optim\.lr: 0\.003 -> 0\.01"):
        train(_cfg(small_digits, copy, **{"optim.lr": 0.01}), resume=True)


def test_a_moved_run_with_torn_or_garbled_side_files_resumes_or_is_refused_clearly(small_digits, tmp_path, trained_run,
                                                                                   caplog):  # fmt: skip
    moved = tmp_path / "elsewhere" / "run"
    shutil.copytree(trained_run, moved)
    rows = (moved / "metrics.jsonl").read_text()
    (moved / "metrics.jsonl").write_text(rows + '{"kind": "train", "step": 9, "lo')  # a kill tore the last write
    (moved / "checkpoints" / "best.json").write_text("{garbled")  # a readable twin: resume does not need it
    with caplog.at_level("WARNING", logger="avkit.train.engine"):
        result = train(_cfg(small_digits, moved), resume=True)  # `out` moved: not a config change
    assert "metrics.jsonl:" in caplog.text and "dropped a partial metrics row (the last line, cut short" in caplog.text
    assert (moved / "metrics.jsonl").read_text() == rows
    assert json.loads((moved / "config.json").read_text())["out"] == str(moved)
    assert result.fingerprint == json.loads((trained_run / "summary.json").read_text())["fingerprint"]
    (moved / "config.json").write_bytes(b"\x00\xff binary")
    with pytest.raises(ConfigError, match=r"config\.json: cannot be read as a run's config"):
        train(_cfg(small_digits, moved), resume=True)
    (moved / "config.json").unlink()
    with pytest.raises(ConfigError, match=r"config\.json is missing, so the run cannot be checked"):
        train(_cfg(small_digits, moved), resume=True)
    (moved / "config.json").write_text((trained_run / "config.json").read_text())
    shutil.copyfile(moved / "checkpoints" / "best.safetensors", moved / "checkpoints" / "last.safetensors")
    with pytest.raises(ArtifactError, match=r"last\.safetensors: cannot be resumed: its training state lacks \['optimizer'"):
        train(_cfg(small_digits, moved), resume=True)


def test_a_bad_item_is_skipped_and_reported_or_refused_in_strict_mode(small_digits, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(small_digits, data)
    victim = sorted((data / "audio").iterdir())[0]
    victim.write_bytes(b"RIFF garbage")
    for in_memory in (False, True):  # found while reading batches, or up front
        out = tmp_path / f"run-{in_memory}"
        result = train(_cfg(data, out, **{"optim.epochs": 1, "data.in_memory": in_memory}))
        skipped = json.loads((out / "summary.json").read_text())["skipped"]
        assert any(victim.stem in rid for rid, _ in skipped["train"] + skipped["eval"]) and result.steps > 0
        with pytest.raises(MediaError, match=victim.name):
            train(_cfg(data, tmp_path / f"strict-{in_memory}", **{"data.strict": True, "data.in_memory": in_memory}))


def test_corrupt_or_foreign_checkpoints_get_clear_errors(trained_run, tmp_path):
    good = (trained_run / "checkpoints" / "best.safetensors").read_bytes()
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(good[: len(good) // 3])
    with pytest.raises(ArtifactError, match="bad.safetensors: corrupt or unreadable checkpoint file"):
        load_model(bad)
    with pytest.raises(ArtifactError, match="checkpoint file does not exist"):
        load_model(tmp_path / "none.safetensors")
    with pytest.raises(ArtifactError, match="no checkpoints/best.safetensors"):
        load_model(tmp_path)
    save_file({"w": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(ArtifactError, match="a safetensors file, but not an avkit artifact; expected a checkpoint"):
        load_model(tmp_path / "foreign.safetensors")


def test_distillation_trains_a_student_from_a_frozen_teacher(small_digits, tmp_path):
    teacher = train(_cfg(small_digits, tmp_path / "teacher", model=CLASSIFY))
    before = load_model(teacher.run_dir).state_dict()
    student_model = {
        "towers": {"audio": {"encoder": {"name": "soundnet", "width_mult": 0.125}}, **CLASSIFY["towers"]},
        "heads": {"distill": {"student": "audio", "teacher": "image"}},
        "init": {"teacher": {"checkpoint": str(teacher.run_dir),
                             "parts": {"towers.image": "towers.image", "heads.distill.teacher_classifier": "heads.classify.classifier"}}},
    }  # fmt: skip
    student = train(_cfg(small_digits, tmp_path / "student", model=student_model))
    model = load_model(student.run_dir)  # rebuilt from the student checkpoint alone: the teacher run is not read
    assert set(student.best_metrics) >= {"distill/teacher_agreement", "distill/student_accuracy", "distill/score"}
    state = model.state_dict()
    for key, value in before.items():  # the teacher stayed frozen, BatchNorm statistics included
        mine = key if key.startswith("towers.") else key.replace("heads.classify.classifier", "heads.distill.teacher_classifier")
        assert torch.equal(state[mine], value), key
    assert model.embedding_modalities() == ["audio"]
    with pytest.raises(ConfigError, match=r"this model embeds \['audio'\]; no tower embeds 'image'"):
        model.tower_for("image")
    unfrozen = {**student_model, "init": {}}
    with pytest.raises(ConfigError, match="head 'distill' reads tower 'image' as a frozen teacher, but no init freezes it"):
        train(_cfg(small_digits, tmp_path / "unfrozen", model=unfrozen))
    spelled_out = {**student_model, "towers": {**student_model["towers"],
                   "image": {"encoder": {**CLASSIFY["towers"]["image"]["encoder"], "blocks_per_stage": 1}}}}  # a default
    create_model({**spelled_out, "labels": model.config.labels})  # the same tower as the teacher's, its default written out: its weights are taken
    other = {**student_model, "towers": {**student_model["towers"], "image": {"encoder": {"name": "image_resnet", "width": 8, "stages": 2}}}}
    with pytest.raises(ConfigError, match=r"towers.image must have the config of towers.image in .* to take its weights"):
        train(_cfg(small_digits, tmp_path / "mismatch", model=other))



def test_a_run_recorded_before_a_setting_existed_is_reused_as_with_its_default(trained_run, tmp_path):
    """config.json from an older avkit lacks newer settings (data.shards): they take their defaults, not a diff."""
    import shutil

    from avkit.train import train_or_reuse

    old = tmp_path / "old-run"
    shutil.copytree(trained_run, old)
    recorded = json.loads((old / "config.json").read_text())
    del recorded["data"]["shards"], recorded["data"]["shuffle_buffer"]
    recorded["out"] = str(old)
    (old / "config.json").write_text(json.dumps(recorded))
    cfg = from_dict(RunConfig, {**recorded})
    result, reused = train_or_reuse(cfg)
    assert reused and result.fingerprint == json.loads((trained_run / "summary.json").read_text())["fingerprint"]

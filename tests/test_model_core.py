"""The model core: registries from the top, model vs run config, heads combined on shared towers,
the optimiser's groups, targets checked before training, and checkpoints that rebuild or refuse."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import tiny_config, write_config
from safetensors.torch import save_file

import avkit
from avkit.cli import main
from avkit.config import from_dict, to_dict
from avkit.data.dataset import ManifestDataset, check_targets
from avkit.errors import ArtifactError, ConfigError
from avkit.models import create_model, load_checkpoint, load_model, save_checkpoint
from avkit.train import RunConfig, load_run_config, train
from avkit.train.optim import param_groups

ROOT = Path(__file__).resolve().parents[1]


def _cfg(small_digits: Path, out: Path, **kw: object) -> RunConfig:
    return from_dict(RunConfig, tiny_config(small_digits / "manifest.jsonl", out, **kw))


def test_registries_are_reachable_from_the_top_of_the_package():
    assert avkit.list_encoders() == ["image_hourglass", "image_resnet", "logmel_cnn", "soundnet"]
    assert avkit.list_heads() == ["caption", "classify", "contrastive", "distill", "image_decoder", "localization",
                                  "regress_embedding", "unit_vocoder"]
    assert {"audio", "image"} <= set(avkit.list_modalities())
    assert avkit.create_encoder("soundnet", width_mult=0.125).feature_info.pooled_dim == 128
    assert avkit.register_head is avkit.models.register_head and callable(avkit.load_model)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        avkit.nothing  # noqa: B018


def test_shipped_configs_keep_the_model_apart_and_load():
    for name in ("contrastive", "teacher", "distill"):
        cfg = load_run_config(ROOT / "experiments" / "configs" / f"{name}.toml")
        assert cfg.model.towers and cfg.model.heads and cfg.optim.epochs > 0
    cfg = load_run_config(ROOT / "experiments" / "configs" / "contrastive.toml",
                          ["model.embed_dim=64", "model.towers.image.preprocess.size=48"])  # fmt: skip
    assert cfg.model.embed_dim == 64 and cfg.model.towers["image"].preprocess["size"] == 48
    model = create_model(cfg.model)
    assert model.towers["image"].pipeline.settings.size == 48


def test_no_weight_decay_on_biases_norms_or_the_temperature():
    model = create_model({"towers": {"audio": {"encoder": {"width": 4}}, "image": {"encoder": {"width": 4, "stages": 2}}},
                          "heads": {"contrastive": {}}, "embed_dim": 8})  # fmt: skip
    decay, no_decay = param_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    no_decay_names = {names[id(p)] for p in no_decay["params"]}
    assert "heads.contrastive.pair_loss.logit_scale" in no_decay_names
    assert "heads.contrastive.projections.audio.net.bias" in no_decay_names
    assert any(".bn" in n or n.endswith(".1.weight") for n in no_decay_names)  # BatchNorm weights
    assert all(p.ndim >= 2 for p in decay["params"]) and decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0
    assert len(decay["params"]) + len(no_decay["params"]) == sum(1 for p in model.parameters() if p.requires_grad)


def test_two_heads_share_the_towers_and_their_weighted_terms_are_summed(small_digits, tmp_path):
    heads = {"contrastive": {"towers": ["audio", "image"], "semantic": True}, "classify": {"tower": "audio"}}
    weights = {"contrastive": {"semantic": 0.5}, "classify": {"ce": 0.25}}
    result = train(_cfg(small_digits, tmp_path / "run", **{"model.heads": heads, "loss_weights": weights,
                                                            "select": "classify/accuracy"}))  # fmt: skip
    rows = [json.loads(r) for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    step = next(r for r in rows if r["kind"] == "train")
    expected = step["contrastive/infonce"] + 0.5 * step["contrastive/semantic"] + 0.25 * step["classify/ce"]
    assert step["loss"] == pytest.approx(expected, rel=1e-5)
    assert {"contrastive/score", "classify/accuracy"} <= set(result.best_metrics)
    assert result.best_score == result.best_metrics["classify/accuracy"]
    model = load_model(result.run_dir)
    assert model.embedding_towers() == ["audio", "image"]  # the first head that embeds a tower gives its embeddings
    assert sum(p.numel() for p in model.towers.parameters()) == sum(
        p.numel() for p in create_model(model.config).towers.parameters())  # one set of towers, not one per head


def test_a_head_needing_a_target_the_manifest_lacks_is_refused_before_training(small_digits, tmp_path):
    unlabelled = tmp_path / "data"
    shutil.copytree(small_digits, unlabelled)
    lines = [json.loads(x) for x in (small_digits / "manifest.jsonl").read_text().splitlines()]
    for line in lines[::7]:
        line.pop("label")
    (unlabelled / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    cfg = _cfg(unlabelled, tmp_path / "run", **{"model.heads": {"classify": {"tower": "image"}, "contrastive": {}}})
    with pytest.raises(ConfigError, match=r"head 'classify' needs the manifest field 'label' on every item, but \d+ of 60"):
        train(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_without_a_validation_split_the_rows_say_which_split_was_evaluated(small_digits, tmp_path):
    result = train(_cfg(small_digits, tmp_path / "run", **{"data.val_split": "none", "optim.epochs": 1}))
    rows = [json.loads(r) for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert {r["split"] for r in rows if r["kind"] == "eval"} == {"train"}
    assert json.loads((result.run_dir / "summary.json").read_text())["selected_on"] == "train"


def test_a_checkpoint_naming_an_unregistered_encoder_or_head_is_refused_by_name(trained_run, tmp_path):
    ckpt = load_checkpoint(trained_run / "checkpoints" / "best.safetensors")
    for where, bad, registered in (("towers", "vit_huge", "'image_hourglass', 'image_resnet', 'logmel_cnn', 'soundnet'"),
                                   ("heads", "segment", "'caption', 'classify', 'contrastive', 'distill', 'image_decoder', "
                                                         "'localization', 'regress_embedding', 'unit_vocoder'")):  # fmt: skip
        config = json.loads(json.dumps(ckpt.model_config))
        if where == "towers":
            config["towers"]["image"]["encoder"]["name"] = bad
        else:
            config["heads"] = {bad: {}}
        path = tmp_path / f"{bad}.safetensors"
        save_checkpoint(path, ckpt.model_state(), config)
        with pytest.raises(ArtifactError, match=rf"its model cannot be rebuilt: .*unknown \w+ '{bad}'; known: \[{registered}"):
            load_model(path)


def test_old_runs_are_refused_with_how_to_retrain(tmp_path, capsys):
    """A run directory of avkit 0.1 (task-based trainer): its checkpoint format and its config."""
    old = tmp_path / "old-run"
    (old / "checkpoints").mkdir(parents=True)
    header = {"task": "contrastive", "config": {"task": "contrastive", "modalities": ["audio", "image"]},
              "label_names": [], "step": 30, "format": 1, "fingerprint": "0123456789abcdef"}  # fmt: skip
    save_file({"model/w": torch.zeros(2)}, str(old / "checkpoints" / "best.safetensors"), metadata={"avkit": json.dumps(header)})
    (old / "checkpoints" / "best.safetensors").rename(old / "checkpoints" / "last.safetensors")
    shutil.copy(old / "checkpoints" / "last.safetensors", old / "checkpoints" / "best.safetensors")
    (old / "config.json").write_text(json.dumps(header["config"]))
    with pytest.raises(ArtifactError, match="checkpoint of avkit 0.1's task-based trainer.*Retrain it: avkit train CONFIG"):
        load_model(old)
    assert main(["embed", "--checkpoint", str(old), "--manifest", "x.jsonl", "--modality", "audio", "--out", "e"]) == 2
    assert "Retrain it" in capsys.readouterr().err
    old_config = write_config(tmp_path / "old.json", {"task": "contrastive", "manifest": "m.jsonl", "out": str(old)})
    assert main(["train", str(old_config)]) == 2
    assert "an avkit 0.1 config (with 'task')" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="is a run of avkit 0.1's task trainer; this avkit cannot resume"):
        train(from_dict(RunConfig, tiny_config(tmp_path / "any.jsonl", old)), resume=True)


def test_every_split_that_is_evaluated_must_carry_the_heads_targets(small_digits, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(small_digits, data)
    lines = [json.loads(x) for x in (small_digits / "manifest.jsonl").read_text().splitlines()]
    next(x for x in lines if x["split"] == "val").pop("label")  # the training split is complete
    (data / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    cfg = _cfg(data, tmp_path / "run", **{"model.heads": {"classify": {"tower": "image"}, "contrastive": {}}})
    with pytest.raises(ConfigError, match=r"head 'classify' needs the manifest field 'label' on every item, but 1 of \d+ items "
                                          r"of split 'val'"):  # fmt: skip
        train(cfg)
    audio_only = create_model({"towers": {"audio": {"encoder": {"width": 4}}}, "heads": {"classify": {}},
                               "labels": ["0", "1"]}).pipelines()  # fmt: skip
    with pytest.raises(ConfigError, match=r"head 'localize' needs boxes, but no tower reads a modality that takes them"):
        check_targets(ManifestDataset(small_digits / "manifest.jsonl", audio_only, split="train").records, audio_only,
                      ["0", "1"], "head 'localize'", ("boxes",), "split 'train'")  # fmt: skip


def test_select_names_a_head_of_the_model_before_training(small_digits, tmp_path):
    with pytest.raises(ConfigError, match=r"select: 'contrastiv/score' must be HEAD/METRIC with HEAD one of \['contrastive'\]"):
        train(_cfg(small_digits, tmp_path / "run", select="contrastiv/score"))
    assert not (tmp_path / "run").exists()


def test_an_old_run_directory_is_named_as_such_even_without_resume(tmp_path, small_digits, capsys):
    old = tmp_path / "old"
    (old / "checkpoints").mkdir(parents=True)
    (old / "checkpoints" / "last.safetensors").write_bytes(b"")
    (old / "config.json").write_text(json.dumps({"task": "contrastive", "manifest": "m.jsonl"}))
    with pytest.raises(ConfigError, match="is a run of avkit 0.1's task trainer.*Retrain into a new directory"):
        train(_cfg(small_digits, old))


def test_list_overrides_take_json_or_bare_words():
    cfg = load_run_config(ROOT / "experiments" / "configs" / "contrastive.toml",
                          ["model.labels=[a,b]", "augment.audio.gain_db=[-6, 6]", "model.init={}"])  # fmt: skip
    assert cfg.model.labels == ["a", "b"] and cfg.augment["audio"]["gain_db"] == [-6, 6] and cfg.model.init == {}
    assert load_run_config(None, ["model.labels=7"]).model.labels == ["7"]  # one value: a list of one
    assert load_run_config(None, ["model.labels=a,b"]).model.labels == ["a", "b"]


def test_a_missing_validation_target_is_refused_before_the_training_split_is_decoded(small_digits, tmp_path, monkeypatch):
    data = tmp_path / "data"
    shutil.copytree(small_digits, data)
    lines = [json.loads(x) for x in (small_digits / "manifest.jsonl").read_text().splitlines()]
    next(x for x in lines if x["split"] == "val").pop("label")
    (data / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))

    def no_decoding(*args: object) -> None:
        raise AssertionError("the data was decoded before the targets were checked")

    monkeypatch.setattr(ManifestDataset, "_load_all", no_decoding)
    cfg = _cfg(data, tmp_path / "run", **{"model.heads": {"classify": {"tower": "image"}, "contrastive": {}},
                                          "data.in_memory": True})  # fmt: skip
    with pytest.raises(ConfigError, match=r"head 'classify' needs the manifest field 'label' .* of split 'val'"):
        train(cfg)


def test_resume_without_the_recorded_config_says_the_run_is_incomplete(trained_run, small_digits, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    (run / "config.json").unlink()
    with pytest.raises(ConfigError, match=r"--resume: .*config.json is missing"):
        train(_cfg(small_digits, run), resume=True)


def test_the_few_voices_model_is_the_shipped_contrastive_model_with_its_shared_classifier_on():
    few = to_dict(load_run_config(ROOT / "experiments" / "configs" / "few-voices.toml").model)
    base = to_dict(load_run_config(ROOT / "experiments" / "configs" / "contrastive.toml").model)
    assert few["heads"]["contrastive"].pop("semantic") is True and base["heads"]["contrastive"].pop("semantic") is False
    assert few == base

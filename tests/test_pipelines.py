"""Data pipelines: per-tower preprocessing, seeded augmentation, boxes carried through every
transform, feature caches, variable-length audio, and user data of other sizes."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_config, write_config

from avkit.audio.io import save_audio
from avkit.cli import main
from avkit.data.dataset import ManifestDataset, make_loader, sequential_batches
from avkit.data.features import compute_features
from avkit.data.manifest import read_manifest
from avkit.errors import ConfigError, ManifestError
from avkit.modalities import get_modality
from avkit.models import create_model
from avkit.vision.io import load_image, save_image

AUDIO_AUG = {"shift_seconds": 0.1, "speed": [0.9, 1.1], "gain_db": [-6, 6], "noise_snr_db": [5, 20]}
IMAGE_AUG = {"crop_area": [0.6, 1.0], "crop_ratio": [0.8, 1.25], "rotate_degrees": 15, "translate": 0.1,
             "scale": [0.9, 1.1], "brightness": 0.2, "contrast": 0.2}  # fmt: skip


def _pipes(audio: dict | None = None, image: dict | None = None, train: bool = True) -> dict:
    return {"audio": get_modality("audio").make_pipeline({}, audio if train else None),
            "image": get_modality("image").make_pipeline({}, image if train else None)}  # fmt: skip


def test_training_items_are_a_function_of_seed_epoch_and_index(small_digits):
    manifest = small_digits / "manifest.jsonl"
    ds = ManifestDataset(manifest, _pipes(AUDIO_AUG, IMAGE_AUG), split="train", train=True, seed=3)
    again = ManifestDataset(manifest, _pipes(AUDIO_AUG, IMAGE_AUG), split="train", train=True, seed=3)
    a, b = ds[(5, 0)], again[(5, 0)]
    assert all(torch.equal(a["inputs"][t], b["inputs"][t]) for t in ("audio", "image"))
    later = ds[(5, 1)]  # another epoch: other draws
    assert not torch.equal(a["inputs"]["audio"], later["inputs"]["audio"])
    assert not torch.equal(a["inputs"]["image"], later["inputs"]["image"])
    keys = [[(i, 2) for i in range(j, j + 8)] for j in (0, 8)]
    serial = list(make_loader(ds, keys, workers=0))
    parallel = list(make_loader(ds, keys, workers=2))  # the same batches, whatever the worker count
    for x, y in zip(serial, parallel):  # the same draws; a worker's torch runs on one thread, so the audio
        # augmentation's float sums may differ in the last bit from the main process's (seen: 1.2e-7)
        assert torch.allclose(x.inputs["audio"], y.inputs["audio"], rtol=0, atol=1e-6)
        assert torch.equal(x.inputs["image"], y.inputs["image"])


def test_evaluation_reads_items_plainly_and_training_without_augmentation_too(small_digits):
    manifest = small_digits / "manifest.jsonl"
    ev = ManifestDataset(manifest, _pipes(train=False), split="val")
    plain = ManifestDataset(manifest, _pipes(None, None), split="val", train=True)  # 1 s clips, 32 px: no crop to draw
    rec = ev.records[0]
    item, same = ev[0], plain[(0, 4)]
    raw = get_modality("audio").make_pipeline().load(ev.manifest.resolve(rec, "audio"))
    assert torch.equal(item["inputs"]["audio"], raw) and torch.equal(same["inputs"]["audio"], raw)
    assert torch.equal(item["inputs"]["image"], same["inputs"]["image"])
    augmented = ManifestDataset(manifest, _pipes(AUDIO_AUG, IMAGE_AUG), split="val", train=True)
    assert not torch.equal(augmented[(0, 4)]["inputs"]["image"], item["inputs"]["image"])


def _square_scene(tmp_path: Path, size: int = 96) -> Path:
    """One image with a white rectangle, its box in the manifest, and a few bad lines."""
    img = np.zeros((size, size), dtype=np.float32)
    img[20:50, 30:70] = 1.0
    save_image(tmp_path / "sq.png", img)
    save_audio(tmp_path / "a.wav", np.zeros(16000, dtype=np.float32), 16000)
    lines = [{"id": "sq", "audio": "a.wav", "image": "sq.png", "label": "1", "split": "train", "boxes": [[30, 20, 70, 50]]},
             {"id": "out", "audio": "a.wav", "image": "sq.png", "label": "1", "split": "train", "boxes": [[30, 20, 170, 50]]}]  # fmt: skip
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return tmp_path / "m.jsonl"


def test_boxes_move_with_the_image_through_resizing_cropping_and_augmentation(tmp_path):
    manifest = _square_scene(tmp_path)
    image = {"image": get_modality("image").make_pipeline({"size": 48}, IMAGE_AUG)}
    ev = ManifestDataset(manifest, {"image": get_modality("image").make_pipeline({"size": 48})}, split="train")
    batch = ev.collate([ev[0]])
    assert torch.allclose(batch.boxes["image"][0], torch.tensor([[15.0, 10.0, 35.0, 25.0]]))  # pixels of the 48-px input
    ds = ManifestDataset(manifest, image, split="train", train=True)
    mean, std = torch.tensor(0.17), torch.tensor(0.33)
    for epoch in range(20):
        item = ds[(0, epoch)]
        ink = (item["inputs"]["image"][0] * std + mean) > 0.5
        ys, xs = torch.nonzero(ink, as_tuple=True)
        (box,) = item["boxes"]["image"].tolist()
        drawn = [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]
        assert max(abs(a - b) for a, b in zip(box, drawn)) <= 2.0, (epoch, box, drawn)


def test_bad_boxes_name_the_manifest_line(tmp_path, caplog):
    manifest = _square_scene(tmp_path)
    ds = ManifestDataset(manifest, {"image": get_modality("image").make_pipeline()}, split="train")
    with caplog.at_level(logging.WARNING):
        batch = ds.collate([ds[0], ds[1]])
    assert batch.ids == ["sq"] and batch.skipped[0][0] == "out"
    error = batch.skipped[0][1]
    assert isinstance(error, ManifestError) and "m.jsonl:2" in str(error) and "lies outside the 96x96 image" in str(error)
    for boxes, message in (([], "'boxes' is an empty list"), ([[40, 10, 20, 30]], "must have x0 < x1 and y0 < y1"),
                           ([[1, 2, 3]], "must be 4 numbers")):  # fmt: skip
        line = {"id": "x", "audio": "a.wav", "image": "sq.png", "boxes": boxes}
        (tmp_path / "bad.jsonl").write_text("\n" + json.dumps(line) + "\n")
        with pytest.raises(ManifestError, match=rf"bad.jsonl:2: .*{message}"):
            read_manifest(tmp_path / "bad.jsonl")


def test_a_matching_feature_cache_stands_in_for_the_audio(small_digits, tmp_path, caplog):
    manifest = small_digits / "manifest.jsonl"
    model = create_model({"towers": {"audio": {"encoder": {"width": 4}}, "image": {"encoder": {"width": 4}}},
                          "heads": {"contrastive": {}}, "embed_dim": 8})  # fmt: skip
    cache = tmp_path / "logmel.safetensors"
    compute_features(manifest, cache, model.towers["audio"].pipeline)
    plain = ManifestDataset(manifest, model.pipelines(), split="val")
    cached = ManifestDataset(manifest, model.pipelines(), split="val", feature_caches={"audio": cache})
    a = plain.collate([plain[i] for i in range(4)])
    b = cached.collate([cached[i] for i in range(4)])
    assert b.precomputed == {"audio"} and not a.precomputed
    with torch.no_grad():
        from_wave = model.towers["audio"].frontend(a.inputs["audio"])
    assert b.inputs["audio"].shape == from_wave.shape and torch.allclose(b.inputs["audio"], from_wave, atol=1e-3)
    assert torch.allclose(model.embed_batch("audio", a), model.embed_batch("audio", b), atol=1e-4)
    # not used when the settings differ, or when the augmentation needs waveforms
    other = {"audio": get_modality("audio").make_pipeline({"n_mels": 32}), "image": plain.pipelines["image"]}
    with caplog.at_level(logging.WARNING):
        assert not ManifestDataset(manifest, other, split="val", feature_caches={"audio": cache}).caches
        noisy = _pipes({"noise_snr_db": [5, 10]}, None)
        assert not ManifestDataset(manifest, noisy, split="val", train=True, feature_caches={"audio": cache}).caches
    assert "n_mels 64 (tower: 32)" in caplog.text and "added noise work on waveforms" in caplog.text
    shifted = _pipes({"shift_seconds": 0.1, "gain_db": [-3, 3]}, None)  # these work on log-mels too
    assert ManifestDataset(manifest, shifted, split="val", train=True, feature_caches={"audio": cache}).caches


def _synthetic_av(root: Path, side: int, seconds: float, per_class: int = 4) -> Path:
    """Two classes of user data: coloured squares or circles at ``side`` px, low or high tones of ``seconds``."""
    rng = np.random.default_rng(0)
    lines = []
    yy, xx = np.mgrid[:side, :side] / side
    for label in ("low", "high"):
        for i in range(per_class):
            split = ["train", "train", "val", "test"][i % 4]
            img = np.zeros((3, side, side), dtype=np.float32)
            cx, cy = rng.uniform(0.3, 0.7, 2)
            shape = (abs(xx - cx) < 0.2) & (abs(yy - cy) < 0.2) if label == "low" else (xx - cx) ** 2 + (yy - cy) ** 2 < 0.04
            img[int(rng.integers(3))][shape] = 1.0
            t = np.arange(int(seconds * 16000) + int(rng.integers(-800, 800))) / 16000  # lengths vary
            wav = 0.3 * np.sin(2 * np.pi * (300 if label == "low" else 2000) * t).astype(np.float32)
            save_image(root / f"{label}{i}.png", img)
            save_audio(root / f"{label}{i}.wav", wav, 16000)
            lines.append({"id": f"{label}{i}", "audio": f"{label}{i}.wav", "image": f"{label}{i}.png",
                          "label": label, "split": split})  # fmt: skip
    (root / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return root / "manifest.jsonl"


def test_224_px_images_and_3_s_clips_train_embed_and_query_with_only_config_changes(tmp_path, capsys):
    manifest = _synthetic_av(tmp_path / "data", side=224, seconds=3.0)
    cfg = tiny_config(manifest, tmp_path / "run", **{
        "model.towers.audio.preprocess": {"seconds": 3.0},
        "model.towers.image.preprocess": {"size": 224, "mean": [0.1, 0.1, 0.1], "std": [0.3, 0.3, 0.3]},
        "model.towers.image.encoder": {"name": "image_resnet", "width": 4, "stages": 3},
        "augment.image": {"crop_area": [0.7, 1.0]}, "optim.epochs": 1, "optim.batch_size": 4,
    })  # fmt: skip
    assert main(["-q", "train", str(write_config(tmp_path / "c.json", cfg))]) == 0
    assert main(["-q", "embed", "--checkpoint", str(tmp_path / "run"), "--manifest", str(manifest), "--modality", "image",
                 "--out", str(tmp_path / "img.safetensors")]) == 0  # fmt: skip
    assert main(["-q", "index", "build", "--embeddings", str(tmp_path / "img.safetensors"), "--out", str(tmp_path / "idx")]) == 0
    capsys.readouterr()
    assert main(["-q", "query", "--index", str(tmp_path / "idx"), "--checkpoint", str(tmp_path / "run"),
                 "--audio", str(tmp_path / "data" / "low0.wav"), "-k", "2"]) == 0  # fmt: skip
    assert "2 nearest image items of 8" in capsys.readouterr().out
    model_pipes = create_model(cfg["model"] | {"labels": ["high", "low"]}).pipelines()
    item = model_pipes["image"].load_tensor(tmp_path / "data" / "low0.png")
    assert item.shape == (3, 224, 224) and model_pipes["audio"].load_tensor(tmp_path / "data" / "low0.wav").shape == (48000,)


def test_whole_clips_of_any_length_batch_with_their_lengths(tmp_path):
    manifest = _synthetic_av(tmp_path, side=32, seconds=1.0)
    model = create_model({"towers": {"audio": {"encoder": {"width": 4}, "preprocess": {"seconds": None}},
                                     "image": {"encoder": {"width": 4}}},
                          "heads": {"contrastive": {}}, "embed_dim": 8, "labels": ["high", "low"]})  # fmt: skip
    ds = ManifestDataset(manifest, model.pipelines(), split="train")
    batch = make_loader(ds, sequential_batches(len(ds), 4)).__iter__().__next__()
    lengths = batch.lengths["audio"]
    assert len(set(lengths.tolist())) > 1 and batch.inputs["audio"].shape[1] == int(lengths.max())
    for i, n in enumerate(lengths.tolist()):  # padded at the end with silence
        assert torch.equal(batch.inputs["audio"][i, n:], torch.zeros(batch.inputs["audio"].shape[1] - n))
    terms = model(batch)
    assert torch.isfinite(terms["contrastive/infonce"])


def test_image_loaded_at_any_size_is_resized_then_centre_cropped(tmp_path):
    img = torch.zeros(3, 40, 80)
    img[:, :, 30:50] = 1.0  # a bar in the middle of a wide image
    save_image(tmp_path / "wide.png", img)
    x = get_modality("image").make_pipeline({"size": 20, "mean": [0, 0, 0], "std": [1, 1, 1]}).load_tensor(tmp_path / "wide.png")
    assert x.shape == (3, 20, 20)
    assert x[0, :, 8:12].mean() > 0.9 and x[0, :, :5].mean() < 0.05  # centre crop keeps the bar in the middle
    assert load_image(tmp_path / "wide.png").shape == (3, 40, 80)


def test_a_cached_short_clip_equals_the_towers_own_log_mel_away_from_its_end(tmp_path):
    """The cache pads with the value the front-end gives silence, as zero-padding the waveform does;
    only the frames whose window straddles the clip's end (reflect vs zero padding) differ."""
    pipe = get_modality("audio").make_pipeline({"seconds": 1.0})
    wav = 0.1 * torch.randn(8000, generator=torch.Generator().manual_seed(0)) * torch.linspace(0.1, 1.0, 8000)  # 0.5 s
    own = pipe.frontend("logmel")(pipe(wav)[0][None])[0]
    cached = pipe.from_features(pipe.features(wav))
    assert own.shape == cached.shape == (64, 101)
    differ = [i for i in range(101) if not torch.allclose(own[:, i], cached[:, i], atol=1e-3)]
    edge = range(8000 // 160 - 512 // 320, 8000 // 160 + 512 // 320 + 1)  # windows that touch sample 8000
    assert differ and set(differ) <= set(edge), differ
    batch, lengths = pipe.collate([cached[:, :60], cached])  # whole cached clips of two lengths
    assert lengths.tolist() == [60, 101] and torch.allclose(batch[0, :, 60:], own[:, 60:], atol=1e-3)


def test_a_cache_or_spec_augment_meant_for_log_mels_is_refused_for_a_waveform_encoder(small_digits, tmp_path, caplog):
    manifest = small_digits / "manifest.jsonl"
    model = create_model({"towers": {"audio": {"encoder": {"name": "soundnet", "width_mult": 0.125}},
                                     "image": {"encoder": {"width": 4}}},
                          "heads": {"contrastive": {}}, "embed_dim": 8})  # fmt: skip
    cache = tmp_path / "logmel.safetensors"
    compute_features(manifest, cache, get_modality("audio").make_pipeline())
    with caplog.at_level(logging.WARNING):
        ds = ManifestDataset(manifest, model.pipelines(), split="val", feature_caches={"audio": cache})
    assert not ds.caches and "the tower's encoder takes 'waveform'" in caplog.text
    with pytest.raises(ConfigError, match=r"augment.audio: SpecAugment .* the tower's encoder takes 'waveform'"):
        model.pipelines({"audio": {"freq_masks": 2, "freq_mask_bins": 8}}, train=True)


@pytest.mark.parametrize(("augment", "message"), [
    ({"audio": {"gain_db": [3]}}, r"augment.audio: gain_db: a range \[low, high\]"),
    ({"audio": {"time_masks": 2}}, "augment.audio: time_masks and time_mask_frames: both positive"),
    ({"audio": {"noise_p": 2}}, "augment.audio: noise_p must lie in"),
    ({"image": {"brightness": 1.5}}, r"augment.image: brightness: must lie in \[0, 1\)"),
    ({"image": {"crop_area": [0.5, 1.2]}}, "augment.image: crop_area: fractions of the image"),
    ({"image": {"wobble": 1}}, r"augment.image: unknown setting\(s\) \['wobble'\]"),
])  # fmt: skip
def test_augmentation_settings_are_checked_and_named_by_tower(augment, message):
    model = create_model({"towers": {"audio": {"encoder": {"width": 4}}, "image": {"encoder": {"width": 4}}},
                          "heads": {"contrastive": {}}, "embed_dim": 8})  # fmt: skip
    with pytest.raises(ConfigError, match=message):
        model.pipelines(augment, train=True)


def test_in_memory_data_finds_bad_boxes_before_the_first_step(tmp_path, caplog):
    manifest = _square_scene(tmp_path)
    pipes = {"image": get_modality("image").make_pipeline()}
    with caplog.at_level(logging.WARNING):
        ds = ManifestDataset(manifest, pipes, split="train", in_memory=True)
    assert ds.ids == ["sq"] and ds.skipped[0][0] == "out" and "m.jsonl:2" in ds.skipped[0][1]
    with pytest.raises(ManifestError, match=r"m.jsonl:2: .*box 0 \[30.0, 20.0, 170.0, 50.0\] lies outside the 96x96"):
        ManifestDataset(manifest, pipes, split="train", in_memory=True, strict=True)


def test_avkit_features_refuses_a_tower_that_would_not_read_the_cache(small_digits, tmp_path, capsys):
    cfg = tiny_config(small_digits / "manifest.jsonl", tmp_path / "run",
                      **{"model.towers.audio.encoder": {"name": "soundnet", "width_mult": 0.125}})  # fmt: skip
    config = write_config(tmp_path / "c.json", cfg)
    out = tmp_path / "logmel.safetensors"
    assert main(["features", str(small_digits / "manifest.jsonl"), "--out", str(out), "--config", str(config)]) == 2
    assert "tower 'audio' would not use a feature cache (its encoder takes 'waveform' input)" in capsys.readouterr().err
    assert not out.exists()

"""Speech -> image: the decoders, the regression head, frozen heads copied from other runs, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from avkit.cli import main as cli
from avkit.config import from_dict
from avkit.data.batch import Batch
from avkit.errors import ConfigError
from avkit.evaluation.generation import frechet_distance
from avkit.models import create_model, load_model
from avkit.models.decoders import IMAGE_DECODERS
from avkit.train import RunConfig, train
from avkit.translation import speech_to_image, speech_to_image_files, speech_to_image_heads
from avkit.vision.io import load_image
from tests.conftest import tiny_config

LABELS = [str(i) for i in range(10)]
IMAGE = {"encoder": {"name": "image_resnet", "width": 4, "stages": 2}, "preprocess": {"size": 16}}
AUDIO = {"encoder": {"name": "logmel_cnn", "width": 4}}
DIFFUSION = {"name": "diffusion", "widths": [8, 16], "cross_dim": 16, "tokens": 2, "head_dim": 4, "steps": 3}


def _features(x: torch.Tensor) -> torch.Tensor:
    return x.mean((2, 3))


def test_deconv_renders_the_tower_size_and_refuses_other_sides_and_sampling_options():
    dec = IMAGE_DECODERS.create("deconv", cond_dim=8, size=16, width=4)
    cond = torch.nn.functional.normalize(torch.randn(3, 8), dim=-1)
    assert dec.generate(cond).shape == (3, 3, 16, 16)
    terms = dec.losses(cond, torch.randn(3, 3, 16, 16), _features, torch.randn(3, 3))
    assert set(terms) == set(dec.loss_terms) == {"l1", "feature"} and all(t.ndim == 0 for t in terms.values())
    with pytest.raises(ConfigError, match="4 · 2\\^k"):
        IMAGE_DECODERS.create("deconv", cond_dim=8, size=24)
    with pytest.raises(ConfigError, match="deterministic"):
        dec.generate(cond, steps=10)


def test_diffusion_samples_are_reproducible_by_seed_and_options_are_checked():
    torch.manual_seed(0)
    dec = IMAGE_DECODERS.create("diffusion", cond_dim=8, size=8, **{k: v for k, v in DIFFUSION.items() if k != "name"}).eval()
    cond = torch.nn.functional.normalize(torch.randn(2, 8), dim=-1)
    a = dec.generate(cond, torch.Generator().manual_seed(1))
    b = dec.generate(cond, torch.Generator().manual_seed(1))
    c = dec.generate(cond, torch.Generator().manual_seed(2))
    assert a.shape == (2, 3, 8, 8) and torch.equal(a, b) and not torch.equal(a, c)
    unguided = dec.generate(cond, torch.Generator().manual_seed(1), guidance=1.0, steps=2)
    assert unguided.shape == a.shape and not torch.equal(unguided, a)
    images = torch.randn(2, 3, 8, 8)
    assert torch.equal(dec.validation_error(cond, images), dec.validation_error(cond, images))  # fixed noise and t
    assert set(dec.losses(cond, images, _features, _features(images))) == {"mse"}
    with pytest.raises(ConfigError, match="sampling options"):
        dec.generate(cond, temperature=0.5)
    with pytest.raises(ConfigError, match="size 10 must divide by patch 2"):
        IMAGE_DECODERS.create("diffusion", cond_dim=8, size=10)


def test_classifier_free_guidance_training_drops_the_condition_on_a_fraction_of_items(monkeypatch):
    torch.manual_seed(0)
    dec = IMAGE_DECODERS.create("diffusion", cond_dim=4, size=8, condition_dropout=0.5,
                                **{k: v for k, v in DIFFUSION.items() if k != "name"})  # fmt: skip
    seen = []
    monkeypatch.setattr(dec, "_denoise", lambda x, t, cond: seen.append(cond) or torch.zeros_like(x))
    dec.losses(torch.ones(400, 4), torch.zeros(400, 3, 8, 8), _features, torch.zeros(400, 3))
    dropped = float((seen[0].abs().sum(-1) == 0).float().mean())
    assert 0.4 < dropped < 0.6 and bool(((seen[0] == 1).all(-1) | (seen[0] == 0).all(-1)).all())


def test_the_weights_average_moves_only_in_training_and_is_what_samples_use():
    torch.manual_seed(0)
    dec = IMAGE_DECODERS.create("diffusion", cond_dim=4, size=8, ema=0.5, **{k: v for k, v in DIFFUSION.items() if k != "name"})
    cond, images = torch.nn.functional.normalize(torch.randn(2, 4), dim=-1), torch.rand(2, 3, 8, 8) * 2 - 1
    averaged = [p.clone() for p in dec.ema_denoiser.parameters()]
    with torch.no_grad():
        for p in dec.denoiser.parameters():
            p.add_(1.0)
    dec.eval()
    dec.losses(cond, images, _features, _features(images))
    assert all(torch.equal(a, p) for a, p in zip(averaged, dec.ema_denoiser.parameters(), strict=True))
    dec.train()
    dec.losses(cond, images, _features, _features(images))  # first update: decay min(0.5, 1/10), so 0.9 of the way to the weights
    moved = [(p - a) for a, p in zip(averaged, dec.ema_denoiser.parameters(), strict=True)]
    assert int(dec.ema_updates) == 1 and all(torch.allclose(m, torch.full_like(m, 0.9)) for m in moved)
    assert "ema_denoiser.unet.conv_in.weight" in dec.state_dict()  # saved, so a resumed run keeps its average


def test_frechet_distance_of_shifted_copies_is_the_squared_shift():
    a = torch.randn(500, 6, generator=torch.Generator().manual_seed(0))
    shift = torch.tensor([1.0, -2.0, 0.0, 0.5, 0.0, 0.0])
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(a, a + shift) == pytest.approx(float((shift**2).sum()), rel=1e-6)
    with pytest.raises(ValueError, match="feature sets"):
        frechet_distance(a, a[:, :3])


def _voice_model(**init: dict) -> dict:
    return {"towers": {"audio": AUDIO, "image": IMAGE}, "labels": LABELS, "init": init,
            "heads": {"voice": {"kind": "regress_embedding", "hidden": 16},
                      "deconv": {"kind": "image_decoder", "decoder": {"name": "deconv", "width": 4}}}}  # fmt: skip


@pytest.fixture(scope="module")
def speech_to_image_run(small_digits: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """classifier -> deconv decoder (images alone) -> voice encoder with the decoder copied in, frozen."""
    root = tmp_path_factory.mktemp("translation")
    manifest = small_digits / "manifest.jsonl"

    def run(name: str, model: dict, epochs: int = 2) -> Path:
        train(from_dict(RunConfig, tiny_config(manifest, root / name, model=model, **{"optim.epochs": epochs})))
        return root / name

    classifier = run("classifier", {"towers": {"image": IMAGE}, "heads": {"classify": {"tower": "image"}}})
    tower = {"checkpoint": str(classifier), "parts": {"towers.image": "towers.image"}}
    decoder = run("decoder", {"towers": {"image": IMAGE}, "init": {"classifier": tower},
                              "heads": {"decoder": {"kind": "image_decoder", "decoder": {"name": "deconv", "width": 4}}}})  # fmt: skip
    return run("voice", _voice_model(
        classifier={"checkpoint": str(classifier), "parts": {"towers.image": "towers.image",
                                                             "heads.voice.teacher_classifier": "heads.classify.classifier"}},
        deconv={"checkpoint": str(decoder), "parts": {"heads.deconv": "heads.decoder"}}))  # fmt: skip


def test_the_voice_head_trains_the_audio_side_only_and_embeds_both_towers_in_one_space(speech_to_image_run):
    model = create_model(load_model(speech_to_image_run).config).train()  # fresh, with its inits (frozen parts) applied
    batch = Batch({"audio": torch.randn(4, 16000), "image": torch.randn(4, 3, 16, 16)}, torch.arange(4), torch.arange(4),
                  list("abcd"))  # fmt: skip
    terms = model(batch)
    assert set(terms) == {"voice/l1", "voice/kl"}  # the decoder, copied whole and frozen, adds nothing
    sum(terms.values()).backward()
    trained = {n for n, p in model.named_parameters() if p.grad is not None}
    assert trained and all(n.startswith(("towers.audio.", "heads.voice.regressor.")) for n in trained)
    assert any(n.startswith("towers.audio.") for n in trained)
    assert model.embed("audio", batch.inputs["audio"]).shape == model.embed("image", batch.inputs["image"]).shape


def test_a_decoder_copied_whole_and_frozen_adds_no_loss_and_renders_as_trained(speech_to_image_run, small_digits):
    model = load_model(speech_to_image_run)
    assert model.trained_heads() == ["voice"]
    rows = [json.loads(r) for r in (speech_to_image_run / "metrics.jsonl").read_text().splitlines()]
    assert all(not any(k.startswith("deconv/") for k in r) for r in rows if r["kind"] == "train")
    decoder = load_model(speech_to_image_run.parent / "decoder")
    for ours, theirs in zip(model.heads["deconv"].state_dict().values(), decoder.heads["decoder"].state_dict().values(), strict=True):
        assert torch.equal(ours, theirs)
    wav = sorted((small_digits / "audio").glob("*.wav"))[:2]
    images = speech_to_image_files(model, wav)
    assert images.shape == (2, 3, 16, 16) and 0 <= float(images.min()) and float(images.max()) <= 1


def test_translate_writes_the_picture_and_explains_bad_requests(speech_to_image_run, small_digits, tmp_path, capsys):
    wav = sorted((small_digits / "audio").glob("*.wav"))[0]
    out = tmp_path / "picture.png"
    assert cli(["translate", "--checkpoint", str(speech_to_image_run), "--audio", str(wav), "--out", str(out), "--samples", "2"]) == 0
    assert load_image(out).shape == (3, 16 * 4, 2 * 16 * 4) and "2 images of 16x16, shown 4x" in capsys.readouterr().out
    cases = [(["--out", str(tmp_path / "p.svg")], "an image file"),
             (["--out", str(tmp_path / "p.png"), "--decoder", "diffusion"], "no single image decoder 'diffusion'"),
             (["--out", str(tmp_path / "p.png"), "--steps", "5"], "deterministic"),
             (["--out", str(tmp_path / "p.png"), "--audio", str(small_digits / "manifest.jsonl")], "manifest.jsonl")]
    for extra, message in cases:
        args = ["translate", "--checkpoint", str(speech_to_image_run), "--audio", str(wav), "--out", str(out), *extra]
        assert cli(args) == 2
        assert message in capsys.readouterr().err
    image = sorted((small_digits / "images").glob("*.png"))[0]  # the other direction: this run cannot speak
    assert cli(["translate", "--checkpoint", str(speech_to_image_run), "--image", str(image), "--out", str(tmp_path / "s.wav")]) == 2
    assert "one caption head and one unit_vocoder head" in capsys.readouterr().err


def test_a_model_without_a_voice_head_is_told_what_speech_to_image_needs(trained_run):
    with pytest.raises(ConfigError, match="one regress_embedding head from an audio tower.*contrastive"):
        speech_to_image_heads(load_model(trained_run))
    with pytest.raises(ConfigError, match="regress_embedding"):
        speech_to_image(load_model(trained_run), Batch({}, torch.zeros(0), torch.zeros(0), []))


def test_paired_difference_counts_the_discordant_items_and_brackets_the_difference():
    from avkit.evaluation.paired import paired_difference

    rng = np.random.default_rng(0)
    a = rng.random((3, 400)) < 0.85
    same = paired_difference(a, a)
    assert (same.difference, same.low, same.high, same.only_a, same.only_b, same.pairs) == (0, 0, 0, 0, 0, 1200)
    b = a.copy()
    b[:, :40] = ~b[:, :40]  # 40 items flipped under every seed: b is right where a was wrong, and wrong where it was right
    d = paired_difference(b, a)
    assert d.only_a == int((~a[:, :40]).sum()) and d.only_b == int(a[:, :40].sum())
    assert d.difference == pytest.approx((d.only_a - d.only_b) / 1200)
    assert d.low < d.difference < d.high and d.high < 0  # a was right on most of the flipped items: b is worse, surely
    with pytest.raises(ValueError, match=r"one shape \(seeds, items\), got \(3, 400\) and \(2, 400\)"):
        paired_difference(a, a[:2])

"""The localization head, the stacked hourglass, the protocol over a manifest, and the two commands."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from avkit.cli import main
from avkit.config import from_dict
from avkit.data.batch import Batch
from avkit.data.manifest import read_manifest, write_manifest
from avkit.data.scenes import ScenesConfig, build_scenes
from avkit.errors import ConfigError
from avkit.evaluation.localization import upsample
from avkit.localization import evaluate_localization
from avkit.models import create_model, load_model
from avkit.models.encoders import create_encoder
from avkit.train import RunConfig, train
from tests.conftest import tiny_config

SCENE_MODEL = {
    "towers": {"audio": {"encoder": {"name": "logmel_cnn", "width": 4}},
               "image": {"encoder": {"name": "image_resnet", "width": 4, "stages": 2, "stem_stride": 2},
                         "preprocess": {"size": 64}}},
    "heads": {"localization": {"towers": ["audio", "image"]}},
    "embed_dim": 16,
}  # fmt: skip


@pytest.fixture(scope="module")
def scenes(small_digits: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("loc-scenes")
    build_scenes(small_digits, out, ScenesConfig(canvas=64, scale=(16, 28), seed=0))
    return out / "manifest.jsonl"


@pytest.fixture(scope="module")
def loc_run(scenes: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("loc-run") / "run"
    train(from_dict(RunConfig, tiny_config(scenes, out, model=SCENE_MODEL, **{"optim.epochs": 1})))
    return out


def _batch(model, n: int = 4, size: int = 64, boxes: list | None = None) -> Batch:
    return Batch({"audio": torch.randn(n, 16000), "image": torch.randn(n, 3, size, size)}, torch.zeros(n, dtype=torch.long),
                 torch.arange(n), [str(i) for i in range(n)], boxes={"image": boxes or [None] * n})  # fmt: skip


@pytest.mark.parametrize("loss", ["infonce", "triplet", "mil"])
def test_each_unsupervised_loss_trains_and_the_box_term_needs_no_boxes(loss):
    spec = {**SCENE_MODEL, "heads": {"localization": {"loss": loss, "box_supervision": True, "hard_negatives": loss != "triplet",
                                                      "total_variation": True}}}  # fmt: skip
    model = create_model(spec).train()
    terms = model(_batch(model))
    assert set(terms) == {f"localization/{loss}", "localization/box", "localization/tv"}
    assert float(terms["localization/tv"].detach()) > 0
    assert float(terms["localization/box"].detach()) == 0.0  # no item has boxes: nothing to supervise
    sum(terms.values()).backward()
    assert model.heads["localization"].visual_projection.weight.grad.abs().sum() > 0


def test_the_presence_term_contrasts_slavcs_confidence_of_every_pair():
    model = create_model({**SCENE_MODEL, "heads": {"localization": {"presence": True}}}).eval()
    head = model.heads["localization"]
    batch = _batch(model)
    with torch.no_grad():
        out = model.encode(batch)
        terms = head(out, batch)
        visual, audio = head.visual_map(out["image"].feature_map), head.audio_embedding(out["audio"])
    maps = torch.stack([head.heat_map(visual, audio[j].expand(4, -1)) for j in range(4)], dim=1)  # (scene, sound, h, w)
    conf = maps.flatten(2).topk(64, dim=-1).values.mean(-1)  # the top 25% of 16x16 cells
    scale, target = head.logit_scale.detach().exp(), torch.arange(4)
    expected = (F.cross_entropy(scale * conf, target) + F.cross_entropy(scale * conf.T, target)) / 2
    assert set(terms) == {"infonce", "presence"}
    assert float(terms["presence"]) == pytest.approx(float(expected), rel=1e-5)


def test_the_flip_term_compares_each_map_with_its_flipped_scenes_map_flipped_back():
    model = create_model({**SCENE_MODEL, "heads": {"localization": {"flip_equivariance": True}}}).eval()
    head = model.heads["localization"]
    batch = _batch(model)
    x = batch.inputs["image"]
    with torch.no_grad():
        out = model.encode(batch)
        terms = head(out, batch)
        audio = head.audio_embedding(out["audio"])
        heat = upsample(head.own_heat_maps(out), (64, 64), head.grid)
        candidates = []
        for dim in (-1, -2):  # the term flips one axis, chosen at random
            flipped = head.visual_map(model.towers["image"].encoder(x.flip(dim)).feature_map)
            back = upsample(head.heat_map(flipped, audio), (64, 64), head.grid).flip(dim)
            candidates.append(float((heat - back).abs().mean()))
    assert set(terms) == {"infonce", "flip"}
    assert float(terms["flip"]) == pytest.approx(candidates[0], rel=1e-5) or \
        float(terms["flip"]) == pytest.approx(candidates[1], rel=1e-5)
    assert min(candidates) > 0  # an untrained map does not flip with the scene
    model.train()
    terms = model(batch)
    sum(terms.values()).backward()
    assert model.towers["image"].encoder.stem[0].weight.grad.abs().sum() > 0  # both passes train the encoder


def test_the_box_term_is_the_cross_entropy_of_attention_against_the_box():
    model = create_model({**SCENE_MODEL, "heads": {"localization": {"box_supervision": True}}}).eval()
    head = model.heads["localization"]
    boxes = [torch.tensor([[0.0, 0.0, 32.0, 32.0]]), None, None, torch.tensor([[32.0, 32.0, 64.0, 48.0]])]
    batch = _batch(model, boxes=boxes)
    with torch.no_grad():
        out = model.encode(batch)
        terms = head(out, batch)
        own = head.heat_map(head.visual_map(out["image"].feature_map), head.audio_embedding(out["audio"])).flatten(1)
    alpha = torch.softmax(own.clamp(min=0) / head.attention_temperature, dim=-1).view(4, 16, 16)  # the paper's attention
    # stride 4, cell i centred on pixel 4i (centre 0.5): its window is [4i - 1.5, 4i + 2.5); the share inside each box
    low = torch.tensor([2.5 / 4] + [1.0] * 7 + [1.5 / 4] + [0.0] * 7)  # [0, 32): cells 0-8
    high = torch.tensor([0.0] * 8 + [2.5 / 4] + [1.0] * 7)  # [32, 64): cells 8-15
    mid = torch.tensor([0.0] * 8 + [2.5 / 4] + [1.0] * 3 + [1.5 / 4] + [0.0] * 3)  # [32, 48): cells 8-12
    g0, g3 = low[:, None] * low[None, :], mid[:, None] * high[None, :]
    g0, g3 = g0 / g0.sum(), g3 / g3.sum()
    expected = (-(g0 * alpha[0].log()).sum() - (g3 * alpha[3].log()).sum()) / 2  # items 1 and 2 have no boxes
    assert float(terms["box"]) == pytest.approx(float(expected), rel=1e-5)


def test_hourglass_gives_a_stride_4_map_and_every_stack_is_supervised():
    enc = create_encoder("image_hourglass", width=8, stacks=2, depth=2)
    out = enc(torch.randn(2, 3, 64, 64))
    assert out.feature_map.shape == (2, 8, 16, 16) and set(out.intermediates) == {"stack1"}
    assert enc.feature_info.deep_supervision == ("stack1",) and enc.feature_info.map().stride == (4, 4)
    spec = {**SCENE_MODEL, "towers": {**SCENE_MODEL["towers"],
            "image": {"encoder": {"name": "image_hourglass", "width": 8, "depth": 2}, "preprocess": {"size": 64}}}}  # fmt: skip
    model = create_model(spec).train()
    head = model.heads["localization"]
    assert head.supervised_maps == ("map", "stack1")
    seen = []
    handle = head.visual_projection.register_forward_hook(lambda m, i, o: seen.append(i[0].shape))
    sum(model(_batch(model)).values()).backward()
    handle.remove()
    assert len(seen) == 2  # the final map and the first stack's


def test_the_towers_must_be_a_sound_and_an_image_encoder_with_a_map():
    spec = {"towers": {"audio": {"encoder": {"name": "logmel_cnn", "width": 4}},
                       "wave": {"modality": "audio", "encoder": {"name": "soundnet", "width_mult": 0.25}}},
            "heads": {"localization": {"towers": ["audio", "wave"]}}}  # fmt: skip
    with pytest.raises(ConfigError, match=r"the second with an image encoder.*\['logmel', 'waveform'\]"):
        create_model(spec)
    with pytest.raises(ConfigError, match=r"\['image', 'audio'\], whose encoders take \['image', 'logmel'\]"):
        create_model({**SCENE_MODEL, "heads": {"localization": {"towers": ["image", "audio"]}}})
    image_first = {**SCENE_MODEL, "towers": dict(reversed(list(SCENE_MODEL["towers"].items())))}
    head = create_model(image_first).heads["localization"]  # the default pair goes by encoder, not config order
    assert (head.audio_tower, head.image_tower) == ("audio", "image")
    with pytest.raises(ConfigError, match="top_k"):
        create_model({**SCENE_MODEL, "heads": {"localization": {"top_k": 4}}})
    with pytest.raises(ConfigError, match="hard_negatives"):
        create_model({**SCENE_MODEL, "heads": {"localization": {"loss": "triplet", "hard_negatives": True}}})
    with pytest.raises(ConfigError, match="loss must be one of"):
        create_model({**SCENE_MODEL, "heads": {"localization": {"loss": "ntxent"}}})


def test_infonce_pairs_each_scene_with_its_own_sound():
    model = create_model(SCENE_MODEL).eval()
    head = model.heads["localization"]
    torch.manual_seed(0)
    audio = torch.nn.functional.normalize(torch.randn(4, 16), dim=-1)
    visual = torch.randn(4, 16, 8, 8) * 0.1
    matched = visual.clone()
    matched[:, :, 2, 3] = audio * 5  # one cell of scene i is sound i
    crossed = visual.clone()
    crossed[:, :, 2, 3] = audio.roll(1, 0) * 5  # ... or another scene's sound
    batch = _batch(model)
    loss = {name: float(head._terms(v, audio, batch)["infonce"].detach()) for name, v in (("matched", matched), ("crossed", crossed))}
    assert loss["matched"] < loss["crossed"]


def test_negatives_are_absent_digits_and_swaps_a_shown_one(loc_run, scenes):
    import numpy as np

    from avkit.localization.protocol import _pair_controls, encode_scenes, localization_head

    model = load_model(loc_run)
    enc, _ = encode_scenes(model, localization_head(model)[1], scenes, None)
    negatives, swaps = _pair_controls(enc, np.random.default_rng(0))
    for i, rec in enumerate(enc.records):
        shown = {rec.label, *(lab for lab, _ in enc.distractors[i])}
        if negatives[i] is not None:
            assert enc.records[negatives[i][0]].label not in shown
        if swaps[i] is not None:
            j, box = swaps[i]
            named = enc.records[j].label
            assert named != rec.label and named in shown
            assert any(lab == named and b is not None and torch.equal(b, box) for lab, b in enc.distractors[i])
    assert sum(s is not None for s in swaps) == len(swaps)


def test_protocol_scores_the_model_baselines_and_controls(loc_run, scenes):
    model = load_model(loc_run)
    torch.manual_seed(0)
    report = evaluate_localization(model, scenes, split=None, untrained=create_model(model.config))
    assert list(report.rows) == ["model", "centre Gaussian", "whole image", "random map", "visual only", "untrained network"]
    n = report.counts["scored"]
    assert n == len(read_manifest(scenes)) and report.controls["swap/scenes"] == n == report.controls["negative/scenes"]
    assert sum(r["scenes"] for r in report.by_objects.values()) == n
    whole = report.rows["whole image"]  # a flat map: every pixel predicted, never confident on its own, no peak
    assert whole["adaptive/success@0.5"] == 0 and whole["AP"] == 0 and whole["swap/peak_on_named"] == 0
    assert "| model |" in report.markdown()


def test_scenes_without_boxes_or_distractors_are_skipped_and_counted(loc_run, scenes, tmp_path):
    recs = list(read_manifest(scenes).records)
    recs[0] = replace(recs[0], boxes=None)
    recs[1] = replace(recs[1], extra={k: v for k, v in recs[1].extra.items() if k != "distractors"})
    out = tmp_path / "manifest.jsonl"
    write_manifest(out, recs)
    for sub in ("audio", "images"):
        (tmp_path / sub).symlink_to(scenes.parent / sub)
    report = evaluate_localization(load_model(loc_run), out, split=None)
    assert report.counts["no_boxes"] == 1 and report.counts["no_distractors"] == 1
    assert report.counts["scored"] == len(recs) - 1 and report.controls["swap/scenes"] == len(recs) - 2


def test_localize_draws_an_overlay_and_scores_a_given_box(loc_run, scenes, tmp_path, capsys):
    rec = read_manifest(scenes).records[0]
    box = ",".join(str(int(v)) for v in rec.boxes[0])
    code = main(["localize", "--checkpoint", str(loc_run), "--image", str(scenes.parent / rec.paths["image"]),
                 "--audio", str(scenes.parent / rec.paths["audio"]), "--out", str(tmp_path / "heat.png"), "--box", box])  # fmt: skip
    assert code == 0 and (tmp_path / "heat.png").stat().st_size > 1000
    assert "adaptive cIoU" in capsys.readouterr().out


def test_eval_localization_prints_the_table_and_writes_json_and_cases(loc_run, scenes, tmp_path, capsys):
    code = main(["eval", "localization", "--checkpoint", str(loc_run), "--manifest", str(scenes), "--split", "test",
                 "--out", str(tmp_path / "ev"), "--cases", "2"])  # fmt: skip
    assert code == 0
    assert "| visual only |" in capsys.readouterr().out
    saved = json.loads((tmp_path / "ev" / "localization.json").read_text())
    assert saved["split"] == "test" and "model" in saved["rows"]
    assert (tmp_path / "ev" / "cases.png").stat().st_size > 1000


def test_bad_inputs_get_one_line_errors(loc_run, scenes, trained_run, tmp_path, capsys):
    rec = read_manifest(scenes).records[0]
    image, audio = scenes.parent / rec.paths["image"], scenes.parent / rec.paths["audio"]
    out = str(tmp_path / "h.png")

    def run(*args: str) -> str:
        assert main(list(args)) == 2
        return capsys.readouterr().err

    base = ["localize", "--checkpoint", str(loc_run), "--out", out]
    assert str(audio) in run(*base, "--image", str(audio), "--audio", str(audio))  # a sound given as the image
    assert str(image) in run(*base, "--image", str(image), "--audio", str(image))  # an image given as the sound
    assert "outside the 64x64 image" in run(*base, "--image", str(image), "--audio", str(audio), "--box", "50,50,70,60")
    assert "x0 < x1" in run(*base, "--image", str(image), "--audio", str(audio), "--box", "30,10,20,20")
    assert "x0 < x1" in run(*base, "--image", str(image), "--audio", str(audio), "--box", "10,10,10,20")
    err = run("localize", "--checkpoint", str(trained_run), "--out", out, "--image", str(image), "--audio", str(audio))
    assert "no localization head" in err and "localization.toml" in err
    with pytest.raises(SystemExit):  # argparse: "argument --consensus: a positive integer, got '0'"
        main(["eval", "localization", "--checkpoint", str(loc_run), "--manifest", str(scenes), "--consensus", "0"])
    assert "--consensus: a positive integer" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    line = json.loads(scenes.read_text().splitlines()[0])
    line["boxes"] = [[5, 5, 2, 9]]
    bad.write_text(json.dumps(line) + "\n")
    assert "x0 < x1" in run("eval", "localization", "--checkpoint", str(loc_run), "--manifest", str(bad), "--split", "")
    line = json.loads(scenes.read_text().splitlines()[0])
    line["audio"], line["image"] = str(audio), str(image)
    for distractors, why in (("oops", "must be a list"), ([{"box": [1, 1, 5, 5]}], "needs a 'label'"),
                             ([{"label": "3", "box": [9, 1, 5, 5]}], "x0 < x1")):  # fmt: skip
        bad.write_text(json.dumps({**line, "distractors": distractors}) + "\n")
        err = run("eval", "localization", "--checkpoint", str(loc_run), "--manifest", str(bad), "--split", "")
        assert f"{bad}:1:" in err and "distractors" in err and why in err


def test_a_users_scenes_at_another_size_are_scored_in_the_towers_pixels(loc_run, scenes, tmp_path):
    """The same scenes stored at twice the size (boxes and distractors doubled) give the same boxes at the tower."""
    from PIL import Image

    from avkit.localization.protocol import encode_scenes, localization_head

    model = load_model(loc_run)
    man = read_manifest(scenes)
    (tmp_path / "images").mkdir()
    big = []
    for rec in man.records:
        img = Image.open(man.resolve(rec, "image"))
        img.resize((img.width * 2, img.height * 2)).save(tmp_path / "images" / f"{rec.id}.png")
        extra = {**rec.extra, "distractors": [{**d, "box": [2 * v for v in d["box"]]} for d in rec.extra["distractors"]]}
        big.append(replace(rec, paths={"audio": str(man.resolve(rec, "audio")), "image": f"images/{rec.id}.png"},
                           boxes=tuple(tuple(2 * v for v in b) for b in rec.boxes), extra=extra))  # fmt: skip
    write_manifest(tmp_path / "manifest.jsonl", big)
    _, head = localization_head(model)
    small, _ = encode_scenes(model, head, scenes, "test")
    large, _ = encode_scenes(model, head, tmp_path / "manifest.jsonl", "test")
    assert large.size == small.size == (64, 64)
    assert all(torch.equal(a, b) for a, b in zip(large.boxes, small.boxes))
    assert [[lab for lab, _ in d] for d in large.distractors] == [[lab for lab, _ in d] for d in small.distractors]
    assert all(torch.allclose(x, y) for d, e in zip(large.distractors, small.distractors) for (_, x), (_, y) in zip(d, e))
    report = evaluate_localization(model, tmp_path / "manifest.jsonl", "test")
    assert report.counts["scored"] == len(man.split("test"))

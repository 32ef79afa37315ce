"""Localization scenes: distinct digits, non-overlapping, box on the heard digit."""

from __future__ import annotations

import json

import pytest

from avkit.data.check import check_manifest
from avkit.data.manifest import read_manifest
from avkit.data.scenes import ScenesConfig, build_scenes, place
from avkit.errors import DatasetBuildError
from avkit.vision.io import load_image


@pytest.fixture(scope="module")
def scenes(small_digits, tmp_path_factory):
    out = tmp_path_factory.mktemp("scenes")
    build_scenes(small_digits, out, ScenesConfig(seed=0))
    return out


def overlap(a, b) -> bool:
    return not (a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1])


def test_scenes_check_and_structure(scenes):
    assert check_manifest(scenes / "manifest.jsonl").ok
    manifest = read_manifest(scenes / "manifest.jsonl")
    assert len(manifest) == 100
    for rec in manifest:
        labels = [rec.label] + [d["label"] for d in rec.extra["distractors"]]
        assert 2 <= len(labels) <= 4 and len(set(labels)) == len(labels)
        boxes = [rec.boxes[0]] + [d["box"] for d in rec.extra["distractors"]]
        assert not any(overlap(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])


def test_box_holds_the_ink_of_the_heard_digit(scenes):
    manifest = read_manifest(scenes / "manifest.jsonl")
    for rec in manifest.records[:20]:
        img = load_image(manifest.resolve(rec, "image"))[0]
        x0, y0, x1, y1 = (int(v) for v in rec.boxes[0])
        inside = img[y0:y1, x0:x1]
        assert inside.max() > 0.5  # ink is there
        assert 0.1 < float((inside > 0.2).float().mean()) < 0.95


def test_scenes_are_deterministic(small_digits, scenes, tmp_path):
    build_scenes(small_digits / "manifest.jsonl", tmp_path, ScenesConfig(seed=0))
    assert (tmp_path / "manifest.jsonl").read_text() == (scenes / "manifest.jsonl").read_text()


def test_more_training_scenes_per_record_leave_the_first_ones_as_they_were(small_digits, scenes, tmp_path):
    build_scenes(small_digits, tmp_path, ScenesConfig(seed=0, train_scenes=3))
    one, three = read_manifest(scenes / "manifest.jsonl"), read_manifest(tmp_path / "manifest.jsonl")
    n_train = len(one.split("train"))
    assert len(three.split("train")) == 3 * n_train and len(three) == len(one) + 2 * n_train
    firsts = {r.id: r for r in three if r.id == r.extra["source"]}
    for rec in one:  # every record's first scene (and every val/test scene) is the one-scene build's, pixel for pixel
        same = firsts[rec.id]
        assert (same.boxes, same.extra, same.split) == (rec.boxes, rec.extra, rec.split)
        assert (tmp_path / same.paths["image"]).read_bytes() == (scenes / rec.paths["image"]).read_bytes()
    extra = [r for r in three if r.id != r.extra["source"]]
    assert {r.split for r in extra} == {"train"}
    by_source = {}
    for rec in extra:  # each extra scene: the record's sound and label, its own picture
        src = firsts[rec.extra["source"]]
        assert rec.id.startswith(src.id + "-s") and (rec.label, rec.paths["audio"]) == (src.label, src.paths["audio"])
        by_source.setdefault(src.id, []).append(rec)
    assert all(len(v) == 2 for v in by_source.values())
    differs = [r.boxes != firsts[r.extra["source"]].boxes for r in extra]
    assert sum(differs) > 0.9 * len(extra)
    assert check_manifest(tmp_path / "manifest.jsonl").ok


def test_placement_and_bad_configs(small_digits, tmp_path):
    import numpy as np

    assert place([60, 60, 60, 60, 60], 100, np.random.default_rng(0), tries=5) is None
    with pytest.raises(DatasetBuildError, match="too large"):
        build_scenes(small_digits, tmp_path, ScenesConfig(canvas=64, scale=(20, 40)))
    with pytest.raises(DatasetBuildError, match="train_scenes must be at least 1, got 0"):
        build_scenes(small_digits, tmp_path, ScenesConfig(train_scenes=0))


def test_checking_only_the_audio_of_scenes_does_not_check_their_boxes(scenes, tmp_path):
    assert check_manifest(scenes / "manifest.jsonl", modalities=["audio"]).ok
    lines = (scenes / "manifest.jsonl").read_text().splitlines()
    rec = json.loads(lines[3])
    rec["boxes"] = [[0, 0, 500, 20], [1, 1, 5, 5], [-3, 0, 4, 4]]
    rec["image"] = str(scenes / rec["image"])
    rec["audio"] = str(scenes / rec["audio"])
    (tmp_path / "m.jsonl").write_text(json.dumps(rec) + "\n")
    for decode in (True, False):
        report = check_manifest(tmp_path / "m.jsonl", decode=decode)
        assert [str(p) for p in report.problems] == [
            f"line 1 (id {rec['id']!r}): box 0 [0.0, 0.0, 500.0, 20.0], box 2 [-3.0, 0.0, 4.0, 4.0] lie outside the 128x128 image"]
    assert check_manifest(tmp_path / "m.jsonl", modalities=["audio"]).ok


def test_a_source_whose_audio_is_not_audio_is_skipped_not_copied(small_digits, tmp_path):
    source = read_manifest(small_digits / "manifest.jsonl")
    lines = [json.loads(x) for x in (small_digits / "manifest.jsonl").read_text().splitlines()]
    (tmp_path / "fake.wav").write_text("root:x:0:0:root:/root:/bin/bash\n")
    lines[0]["audio"] = str(tmp_path / "fake.wav")
    for line in lines[1:]:
        line["audio"], line["image"] = (str(source.path.parent / line[k]) for k in ("audio", "image"))
    lines[0]["image"] = str(source.path.parent / lines[0]["image"])
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    report = build_scenes(tmp_path / "m.jsonl", tmp_path / "out", ScenesConfig(seed=0))
    assert [item["id"] for item in report.skipped] == [lines[0]["id"]]
    assert "cannot be decoded as audio" in report.skipped[0]["reason"]
    assert not list((tmp_path / "out" / "audio").glob(f"{lines[0]['id']}.*"))


def test_cli_train_scenes(small_digits, tmp_path, capsys):
    from avkit.cli import main

    assert main(["data", "scenes", "--from", str(small_digits), "--out", str(tmp_path / "a"), "--train-scenes", "2"]) == 0
    manifest = read_manifest(tmp_path / "a" / "manifest.jsonl")
    assert json.loads((tmp_path / "a" / "build.json").read_text())["config"]["train_scenes"] == 2
    assert len(manifest.split("train")) == 2 * len({r.extra["source"] for r in manifest.split("train")})
    capsys.readouterr()
    assert main(["data", "scenes", "--from", str(small_digits), "--out", str(tmp_path / "b"), "--train-scenes", "0"]) == 2
    err = capsys.readouterr().err
    assert "train_scenes must be at least 1, got 0" in err and len(err.strip().splitlines()) == 1


def test_a_failed_extra_scene_is_skipped_alone(small_digits, scenes, tmp_path, monkeypatch):
    import avkit.data.scenes as scenes_module

    records = read_manifest(small_digits / "manifest.jsonl").records
    at = next(i for i, r in enumerate(records) if r.split == "train")  # records before it have one scene each
    first_train, real, calls = records[at], scenes_module.compose_scene, []

    def fails_on_the_first_extra_scene(*args, **kwargs):
        calls.append(1)
        return None if len(calls) == at + 2 else real(*args, **kwargs)

    monkeypatch.setattr(scenes_module, "compose_scene", fails_on_the_first_extra_scene)
    report = build_scenes(small_digits, tmp_path, ScenesConfig(seed=0, train_scenes=2))
    ids = {r.id for r in read_manifest(tmp_path / "manifest.jsonl")}
    assert first_train.id in ids and f"{first_train.id}-s1" not in ids
    assert [s["id"] for s in report.skipped] == [f"{first_train.id}-s1"]
    assert "no non-overlapping placement" in report.skipped[0]["reason"]
    one = read_manifest(scenes / "manifest.jsonl")
    assert {r.id for r in one} <= ids  # every first scene is there


def _localization_experiment():
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).parents[1] / "experiments" / "localization.py"
    spec = importlib.util.spec_from_file_location("localization_experiment", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_experiment_trains_its_variants_on_each_records_first_scene(small_digits, scenes, tmp_path):
    experiment = _localization_experiment()
    build_scenes(small_digits, tmp_path / "x3", ScenesConfig(seed=0, train_scenes=3))
    assert experiment.scenes_per_record(tmp_path / "x3" / "manifest.jsonl") == 3
    build = json.loads((scenes / "build.json").read_text())
    del build["config"]["train_scenes"]  # a folder built before the option: one scene per record
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "build.json").write_text(json.dumps(build))
    assert experiment.scenes_per_record(tmp_path / "old" / "manifest.jsonl") == 1
    kept = experiment.one_scene_manifest(tmp_path / "x3" / "manifest.jsonl", tmp_path / "one.jsonl")
    one, first = read_manifest(tmp_path / "one.jsonl"), read_manifest(scenes / "manifest.jsonl")
    assert kept == len(first.split("train")) and [r.id for r in one] == [r.id for r in first]
    assert check_manifest(tmp_path / "one.jsonl").ok


def test_experiment_chooses_by_all_three_targeted_metrics_not_auc_alone():
    experiment = _localization_experiment()
    # AUC alone prefers the first (0.605 > 0.604); the mean of the three prefers the second, by its AP
    no_presence = {"adaptive/success@0.5": 0.805, "adaptive/AUC": 0.605, "AP": 0.405}
    with_presence = {"adaptive/success@0.5": 0.829, "adaptive/AUC": 0.604, "AP": 0.605}
    val = {name: {**row, "choice": experiment.choice_score(row)}
           for name, row in {"smoothness prior": no_presence, "full recipe": with_presence}.items()}  # fmt: skip
    assert experiment.choose_variant(val) == "full recipe"
    assert val["full recipe"]["choice"] == pytest.approx((0.829 + 0.604 + 0.605) / 3)
    no_negatives = {**with_presence, "AP": float("nan")}  # scenes without distractors: no AP, which then counts 0
    assert experiment.choice_score(no_negatives) == pytest.approx((0.829 + 0.604) / 3)

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


def test_placement_and_bad_configs(small_digits, tmp_path):
    import numpy as np

    assert place([60, 60, 60, 60, 60], 100, np.random.default_rng(0), tries=5) is None
    with pytest.raises(DatasetBuildError, match="too large"):
        build_scenes(small_digits, tmp_path, ScenesConfig(canvas=64, scale=(20, 40)))


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

"""AV-digits: real speech + handwritten digits, split by voice and image, deterministic."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from avkit.audio.io import load_audio
from avkit.data.digits import DigitsConfig, build_digits
from avkit.data.manifest import read_manifest
from avkit.data.speech import Utterance, synthesize
from avkit.errors import DatasetBuildError


def tree_digest(root) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != "build.json"):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def test_espeak_speaks_each_digit_in_process():
    out = synthesize([Utterance("seven", "en-us+f3"), Utterance("two", "en+m1")], seed=0)
    for samples in out:
        assert isinstance(samples, np.ndarray) and samples.dtype == np.int16
        assert 0.2 * 22050 < len(samples) < 1.5 * 22050
        assert np.abs(samples).max() > 3000  # not silence


def test_synthesis_is_deterministic_for_a_seed():
    utts = [Utterance("three", "en+f2", 150, 40), Utterance("three", "en+klatt2", 200, 60)]
    a, b = synthesize(utts, seed=5), synthesize(utts, seed=5)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_small_build_contents(small_digits):
    manifest = read_manifest(small_digits / "manifest.jsonl")
    assert len(manifest) == 100
    assert manifest.labels() == [str(d) for d in range(10)]
    wav = load_audio(manifest.resolve(manifest.records[0], "audio"))
    assert wav.shape == (16000,)
    meta = json.loads((small_digits / "build.json").read_text())
    assert meta["records"] == 100 and meta["config"]["seed"] == 0


def test_splits_are_disjoint_by_voice_and_by_image(small_digits):
    manifest = read_manifest(small_digits / "manifest.jsonl")
    voices = {s: {r.extra["voice"] for r in manifest.split(s)} for s in ("train", "val", "test")}
    images = {s: {r.extra["image_index"] for r in manifest.split(s)} for s in ("train", "val", "test")}
    for a, b in [("train", "val"), ("train", "test"), ("val", "test")]:
        assert not voices[a] & voices[b]
        assert not images[a] & images[b]
    assert all(voices.values())


def test_build_is_deterministic_and_seed_dependent(small_digits, tmp_path):
    build_digits(tmp_path / "again", DigitsConfig(size="small", seed=0))
    assert tree_digest(tmp_path / "again") == tree_digest(small_digits)
    build_digits(tmp_path / "other", DigitsConfig(size="small", seed=1))
    assert tree_digest(tmp_path / "other") != tree_digest(small_digits)


def test_bad_items_are_skipped_and_counted_or_refused(tmp_path):
    cfg = DigitsConfig(voices=["en+m1", "en-us+f2", "nosuch+voice", "en-029+m3"], takes=1)
    report = build_digits(tmp_path / "skip", cfg)
    assert report.records == 30 and len(report.skipped) == 10
    assert "unknown espeak voice 'nosuch+voice'" in report.skipped[0]["reason"]
    assert len(json.loads((tmp_path / "skip" / "build.json").read_text())["skipped"]) == 10
    cfg.strict = True
    with pytest.raises(DatasetBuildError, match="10 item"):
        build_digits(tmp_path / "strict", cfg)
    assert not (tmp_path / "strict" / "manifest.jsonl").exists()


def test_too_few_voices_is_refused(tmp_path):
    with pytest.raises(DatasetBuildError, match="at least 3 voices"):
        build_digits(tmp_path, DigitsConfig(voices=["en+m1"]))

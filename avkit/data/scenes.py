"""Localization scenes: several digits on one canvas, one of them heard.

From a labelled audio-image manifest (AV-digits, or the user's own), each
scene pastes the record's image and 1-3 images of *other* digits from the same
split at random non-overlapping positions and scales on a black canvas. The
audio is the record's clip; ``boxes`` holds the tight ink box of the heard
digit, and ``distractors`` (an extra key) the labels and boxes of the others.
``train_scenes`` composes several scenes around each training record (ids ``ID``,
``ID-s1``, ...; ``source`` names the record), more data for the same pairs.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from avkit.audio.io import load_audio
from avkit.data.build import BuildReport, finish_build
from avkit.data.manifest import Manifest, Record, read_manifest
from avkit.errors import AvkitError, DatasetBuildError
from avkit.fileio import atomic_write_bytes
from avkit.progress import progress
from avkit.vision.io import load_image, save_image


@dataclass
class ScenesConfig:
    """How to compose scenes.

    Attributes:
        canvas: side of the square scene image, pixels.
        objects: (min, max) number of digits per scene, inclusive.
        scale: (min, max) side of a pasted digit, pixels.
        seed: seed for every random choice.
        train_scenes: scenes composed per training record, each with its own distractors, scales and
            positions (the record's image and audio in each). Validation and test records get one scene
            each, whatever this is, and the first scene of every record does not depend on it.
        strict: refuse the build if any item fails, instead of skipping it.
    """

    canvas: int = 128
    objects: tuple[int, int] = (2, 4)
    scale: tuple[int, int] = (28, 56)
    seed: int = 0
    train_scenes: int = 1
    strict: bool = False


def ink_box(patch: np.ndarray, threshold: float = 0.2) -> tuple[int, int, int, int] | None:
    """Tight ``(x0, y0, x1, y1)`` box (end-exclusive) of pixels above ``threshold`` x peak."""
    ys, xs = np.nonzero(patch > threshold * max(patch.max(), 1e-6))
    if xs.size == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def place(sizes: list[int], canvas: int, rng: np.random.Generator, tries: int = 500) -> list[tuple[int, int]] | None:
    """Top-left corners for squares of ``sizes`` that do not overlap; None if none found."""
    for _ in range(tries):
        corners: list[tuple[int, int]] = []
        for s in sizes:
            for _ in range(50):
                x, y = (int(v) for v in rng.integers(0, canvas - s, size=2, endpoint=True))
                if all(x + s <= cx or cx + cs <= x or y + s <= cy or cy + cs <= y
                       for (cx, cy), cs in zip(corners, sizes)):  # fmt: skip
                    corners.append((x, y))
                    break
            else:
                break
        if len(corners) == len(sizes):
            return corners
    return None


def _grey(manifest: Manifest, rec: Record) -> np.ndarray:
    return load_image(manifest.resolve(rec, "image")).mean(dim=0).numpy()


def compose_scene(
    patches: list[np.ndarray], cfg: ScenesConfig, rng: np.random.Generator
) -> tuple[np.ndarray, list[tuple[int, int, int, int]]] | None:
    """Paste grey patches at random scales and free positions; return canvas and ink boxes."""
    sizes = [int(rng.integers(cfg.scale[0], cfg.scale[1], endpoint=True)) for _ in patches]
    corners = place(sizes, cfg.canvas, rng)
    if corners is None:
        return None
    canvas = np.zeros((cfg.canvas, cfg.canvas), dtype=np.float32)
    boxes = []
    for patch, size, (x, y) in zip(patches, sizes, corners):
        img = Image.fromarray(np.round(patch * 255).astype(np.uint8), mode="L").resize((size, size), Image.BILINEAR)
        arr = np.asarray(img, dtype=np.float32) / 255.0
        canvas[y : y + size, x : x + size] = np.maximum(canvas[y : y + size, x : x + size], arr)
        box = ink_box(arr)
        boxes.append((x + box[0], y + box[1], x + box[2], y + box[3]) if box else (x, y, x + size, y + size))
    return canvas, boxes


def _scene(
    manifest: Manifest,
    rec: Record,
    by_split_label: dict[tuple[str | None, str], list[Record]],
    cfg: ScenesConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, list[tuple[int, int, int, int]], list[str]]:
    """One scene of ``rec``: canvas, boxes (the heard digit's first) and the distractors' labels."""
    others = sorted({lab for (split, lab) in by_split_label if split == rec.split and lab != rec.label})
    want = int(rng.integers(cfg.objects[0], cfg.objects[1], endpoint=True)) - 1
    if len(others) < want:
        raise DatasetBuildError(f"split {rec.split!r} has only {len(others)} other labels, need {want}")
    labels = [str(x) for x in rng.choice(others, size=want, replace=False)]
    distractors = []
    for lab in labels:
        pool = by_split_label[(rec.split, lab)]
        distractors.append(pool[int(rng.integers(len(pool)))])
    patches = [_grey(manifest, r) for r in [rec, *distractors]]
    scene = compose_scene(patches, cfg, rng)
    if scene is None:
        raise DatasetBuildError("no non-overlapping placement found")
    canvas, boxes = scene
    return canvas, boxes, labels


def build_scenes(
    source: str | Path, out: str | Path, cfg: ScenesConfig | None = None, show_progress: bool = False
) -> BuildReport:
    """Build a localization-scenes dataset under ``out`` from a labelled manifest.

    Args:
        source: a manifest file, or a folder holding ``manifest.jsonl``.
        out: output folder (``audio/``, ``images/``, ``manifest.jsonl``, ``build.json``).
    """
    cfg = cfg or ScenesConfig()
    if not 1 <= cfg.objects[0] <= cfg.objects[1]:
        raise DatasetBuildError(f"objects must be (min, max) with 1 <= min <= max, got {cfg.objects}")
    if cfg.train_scenes < 1:
        raise DatasetBuildError(f"train_scenes must be at least 1, got {cfg.train_scenes}")
    if cfg.scale[1] * 2 > cfg.canvas:
        raise DatasetBuildError(f"scale max {cfg.scale[1]} is too large for a {cfg.canvas}px canvas")
    start = time.perf_counter()
    source = Path(source)
    manifest = read_manifest(source / "manifest.jsonl" if source.is_dir() else source)
    out = Path(out)
    rng = np.random.default_rng(cfg.seed)
    by_split_label: dict[tuple[str | None, str], list[Record]] = defaultdict(list)
    for rec in manifest:
        if rec.label is not None:
            by_split_label[(rec.split, rec.label)].append(rec)

    report = BuildReport(manifest=out / "manifest.jsonl")
    records: list[Record] = []
    extra_rng = np.random.default_rng([cfg.seed, 1])  # the extra training scenes draw apart: the first stay as they were
    taken = {rec.id for rec in manifest}
    for rec in progress(manifest.records, desc="composing scenes", enabled=show_progress, unit="record"):
        try:
            if rec.label is None:
                raise DatasetBuildError("has no label, so distinct distractor digits cannot be chosen")
            scenes = [(rec.id, _scene(manifest, rec, by_split_label, cfg, rng))]
            audio_src = manifest.resolve(rec, "audio")
            audio_rel = f"audio/{rec.id}{audio_src.suffix}"
            load_audio(audio_src, strict=cfg.strict)  # copied as is, so decoded first: a file that is not audio is skipped
            atomic_write_bytes(out / audio_rel, audio_src.read_bytes())
        except (AvkitError, OSError) as exc:
            report.skip(rec.id, str(exc))
            continue
        for k in range(1, cfg.train_scenes if rec.split == "train" else 1):  # each extra scene is skipped on its own
            scene_id = f"{rec.id}-s{k}"
            try:
                if scene_id in taken:
                    raise DatasetBuildError(f"the extra scene's id is already a record of {manifest.path}")
                scenes.append((scene_id, _scene(manifest, rec, by_split_label, cfg, extra_rng)))
            except (AvkitError, OSError) as exc:
                report.skip(scene_id, str(exc))
        for scene_id, (canvas, boxes, labels) in scenes:
            try:
                save_image(out / "images" / f"{scene_id}.png", canvas)
            except (AvkitError, OSError) as exc:
                report.skip(scene_id, str(exc))
                continue
            extra = {
                "source": rec.id,
                "distractors": [{"label": lab, "box": list(b)} for lab, b in zip(labels, boxes[1:])],
            }
            records.append(
                Record(scene_id, {"audio": audio_rel, "image": f"images/{scene_id}.png"}, rec.label, rec.split,
                       boxes=(tuple(float(v) for v in boxes[0]),), extra=extra)  # fmt: skip
            )
    meta = {"dataset": "av-digits-scenes", "source": str(manifest.path), "config": asdict(cfg)}
    return finish_build(report, records, cfg.strict, start, meta)

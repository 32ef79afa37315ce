"""The localization protocol over a manifest: the model, its controls and its baselines, in one table.

    report = evaluate_localization(model, "data/scenes/manifest.jsonl", split="test")
    report.rows["model"]["adaptive/success@0.5"], report.controls["swap/peak_on_named"]

Every scene is encoded once; the heat map of any scene with any sound is then a
dot product, so the controls cost almost nothing:

- **positives**: each scene with its own sound, scored under the three binarisation rules;
- **negatives** (SLAVC): each scene with the sound of a digit it does not show;
  negative-aware AP and max-F1 rank positives and negatives by confidence;
- **audio swap**: each scene with the sound of another digit it shows; the peak
  must move onto that digit;
- **baselines**, scored the same way: a centre Gaussian, the whole image, a random
  map, the visual-only map (the image tower's feature norm, no audio) and, when
  given, an untrained network.

Controls need to know what else a scene shows: the manifest's ``distractors`` key
(``[{"label": "3", "box": [x0, y0, x1, y1]}, ...]``, as ``avkit data scenes``
writes). Scenes without it are scored as positives, and their controls are skipped
and counted. Scenes without boxes are skipped and counted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from avkit.data.batch import Batch
from avkit.data.dataset import ManifestDataset, make_loader
from avkit.data.manifest import Record, parse_boxes
from avkit.errors import ConfigError, ManifestError, TargetError
from avkit.evaluation.localization import (
    RULES,
    MapGrid,
    confidence,
    ground_truth,
    negative_aware,
    normalize_map,
    peak_inside,
    score_maps,
    success_and_auc,
    upsample,
)
from avkit.modalities.image import check_boxes
from avkit.models import AVModel
from avkit.models.heads.localization import LocalizationHead
from avkit.progress import progress
from avkit.vision.io import image_size
from avkit.vision.transforms import denormalize

log = logging.getLogger(__name__)

#: Baselines without audio, in report order (the untrained network comes after them when given).
BASELINES = ("centre Gaussian", "whole image", "random map", "visual only")


def localization_head(model: AVModel, name: str | None = None) -> tuple[str, LocalizationHead]:
    """The model's localization head (``name``, or the only one); ConfigError naming what the model has."""
    found = {n: h for n, h in model.heads.items() if isinstance(h, LocalizationHead)}
    if name is not None and name not in found:
        raise ConfigError(f"the model has no localization head {name!r}; its heads: {dict(_kinds(model))}")
    if not found:
        raise ConfigError(f"the model has no localization head (its heads: {dict(_kinds(model))}); "
                          "train one, e.g. avkit train experiments/configs/localization.toml")  # fmt: skip
    if name is None and len(found) > 1:
        raise ConfigError(f"the model has several localization heads {sorted(found)}; name one")
    key = name or next(iter(found))
    return key, found[key]


def _kinds(model: AVModel) -> dict[str, str]:
    return {n: type(h).__name__ for n, h in model.heads.items()}


@dataclass
class EncodedScenes:
    """A split, encoded once.

    Attributes:
        records: the scored scenes' manifest records, in order.
        visual: ``(N, D, h, w)`` projected visual maps. audio: ``(N, D)`` unit-norm sound vectors.
        feature_norm: ``(N, h, w)`` the image encoder's feature norm (the visual-only map).
        size: ``(H, W)`` of the preprocessed images.
        boxes: one ``(N_i, 4)`` tensor per scene, in preprocessed pixels.
        distractors: per scene, ``[(label, (1, 4) box or None)]``, or None when unknown.
    """

    records: list[Record]
    visual: Tensor
    audio: Tensor
    feature_norm: Tensor
    size: tuple[int, int]
    boxes: list[Tensor]
    distractors: list[list[tuple[str, Tensor | None]] | None]

    def objects(self, i: int) -> int | None:
        """How many digits scene ``i`` shows (None if unknown)."""
        d = self.distractors[i]
        return None if d is None else 1 + len(d)


def encode_scenes(
    model: AVModel, head: LocalizationHead, manifest: str | Path, split: str | None, batch_size: int = 64,
    show_progress: bool = False,
) -> tuple[EncodedScenes, dict[str, int]]:  # fmt: skip
    """Encode a split's scenes that have boxes; also returns counts of what was skipped and why."""
    ds = ManifestDataset(manifest, model.pipelines(), split=split, label_names=model.config.labels)
    pipeline = ds.pipelines[head.image_tower]
    keep = [i for i, rec in enumerate(ds.records) if rec.boxes]
    skipped = {"no_boxes": len(ds.records) - len(keep), "boxes_cropped": 0, "unreadable": 0}
    if not keep:
        raise ManifestError(ds.manifest.path, None, f"no scene of split {split!r} has boxes; nothing to localise")
    visual, audio, norms, records, boxes = [], [], [], [], []
    model.eval()
    batches = [keep[i : i + batch_size] for i in range(0, len(keep), batch_size)]
    loader = make_loader(ds, batches)
    for batch in progress(loader, desc="encoding scenes", enabled=show_progress, total=len(batches)):
        skipped["unreadable"] += len(batch.skipped)
        for rid, err in batch.skipped:
            log.warning("skipped %s: %s", rid, err)
        if len(batch) == 0:
            continue
        with torch.no_grad():
            out = model.encode(batch.to(model.device))
        fmap = out[head.image_tower].feature_map
        visual.append(head.visual_map(fmap).float().cpu())
        audio.append(head.audio_embedding(out[head.audio_tower]).float().cpu())
        norms.append(fmap.float().norm(dim=1).cpu())
        size = tuple(batch.inputs[head.image_tower].shape[-2:])
        inside = [len(b) > 0 and bool(ground_truth(b.cpu(), size).sum() > 0) for b in batch.boxes[head.image_tower]]
        skipped["boxes_cropped"] += inside.count(False)
        sel = [i for i, ok in enumerate(inside) if ok]
        visual[-1], audio[-1], norms[-1] = visual[-1][sel], audio[-1][sel], norms[-1][sel]
        records += [ds.records[int(batch.index[i])] for i in sel]
        boxes += [batch.boxes[head.image_tower][i].cpu() for i in sel]
    if not records:
        raise ManifestError(ds.manifest.path, None, f"no scene of split {split!r} could be read with a box inside "
                            f"the preprocessed image ({skipped}); the log names each skipped scene")  # fmt: skip
    modality = model.towers[head.image_tower].modality
    distractors = [_distractors(ds.manifest.path, ds.manifest.resolve(rec, modality), rec, pipeline) for rec in records]
    encoded = EncodedScenes(records, torch.cat(visual), torch.cat(audio), torch.cat(norms), size, boxes, distractors)
    skipped["no_distractors"] = sum(d is None for d in distractors)
    return encoded, skipped


def _distractors(manifest: Path, path: Path, rec: Record, pipeline: Any) -> list[tuple[str, Tensor | None]] | None:
    """The record's other objects as (label, box in preprocessed pixels); None if it lists none.

    Raises:
        ManifestError: a ``distractors`` value that is not a list of ``{"label", "box"}`` objects
            with ``[x0, y0, x1, y1]`` boxes (``x0 < x1``, ``y0 < y1``), naming the line.
    """
    items = rec.extra.get("distractors")
    if items is None or not hasattr(pipeline, "evaluation_boxes"):
        return None
    if not isinstance(items, list):
        raise ManifestError(manifest, rec.line, f"record {rec.id!r}: 'distractors' must be a list, got {type(items).__name__}")
    boxes = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or "label" not in item:
            raise ManifestError(manifest, rec.line, f"record {rec.id!r}: 'distractors' item {i} needs a 'label', got {item!r}")
        try:  # the manifest's own rule for boxes
            boxes.append(parse_boxes([item["box"]]) if item.get("box") is not None else None)
        except ValueError as exc:
            raise ManifestError(manifest, rec.line, f"record {rec.id!r}: 'distractors' item {i}: {exc}") from None
    width, height = image_size(path)
    out = []
    for item, box in zip(items, boxes):
        moved = pipeline.evaluation_boxes(torch.tensor(box), height, width) if box else None
        out.append((str(item["label"]), moved if moved is not None and len(moved) else None))
    return out


@dataclass
class LocalizationReport:
    """What :func:`evaluate_localization` measured.

    Attributes:
        rows: method -> metrics (``{rule}/success@0.5``, ``{rule}/AUC``, ``AP``, ``max_F1``,
            ``swap/peak_on_named``), the model first.
        by_objects: objects in the scene -> the model's adaptive success@0.5, AUC and count.
        controls: the model's audio-swap and negative details.
        counts: scenes scored; skipped without boxes, unreadable, without distractors.
        cious: the model's adaptive cIoU per scored scene (in ``ids`` order).
        ids: the scored scenes' ids.
    """

    rows: dict[str, dict[str, float]]
    by_objects: dict[int, dict[str, float]]
    controls: dict[str, float]
    counts: dict[str, int]
    cious: np.ndarray
    ids: list[str]


    def markdown(self) -> str:
        """The table (methods x metrics), the controls and the by-objects breakdown, as Markdown."""
        cols = [("adaptive/success@0.5", "adaptive cIoU≥0.5"), ("adaptive/AUC", "adaptive AUC"),
                ("median/success@0.5", "median cIoU≥0.5"), ("median/AUC", "median AUC"),
                ("absolute/success@0.5", "absolute cIoU≥0.5"), ("absolute/AUC", "absolute AUC"),
                ("AP", "neg-aware AP"), ("max_F1", "max-F1"), ("swap/peak_on_named", "swap: peak on named")]  # fmt: skip
        lines = ["| method | " + " | ".join(c for _, c in cols) + " |", "| --- |" + " --- |" * len(cols)]
        for name, row in self.rows.items():
            lines.append(f"| {name} | " + " | ".join(_fmt(row.get(k)) for k, _ in cols) + " |")
        lines += ["", "| objects in the scene | scenes | adaptive cIoU≥0.5 | adaptive AUC |", "| --- | --- | --- | --- |"]
        for k, row in self.by_objects.items():
            lines.append(f"| {k} | {int(row['scenes'])} | {_fmt(row['success@0.5'])} | {_fmt(row['AUC'])} |")
        c = self.counts
        lines += ["", f"Scored {c['scored']} scenes; skipped {c['no_boxes']} without boxes, {c['boxes_cropped']} whose "
                  f"boxes the preprocessing cropped away and {c['unreadable']} unreadable. Controls: {int(self.controls['swap/scenes'])} audio swaps (the peak stayed on the "
                  f"originally spoken, now silent, digit in {_fmt(self.controls['swap/peak_stays_on_original'])} of them), "
                  f"{int(self.controls['negative/scenes'])} negatives; {c['no_distractors']} scenes list no "
                  "`distractors`, so their controls were skipped."]  # fmt: skip
        return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "–" if value is None or value != value else f"{value:.3f}"


def centre_gaussian(h: int, w: int, sigma: float = 0.25) -> Tensor:
    """``(h, w)`` Gaussian centred on the map, ``sigma`` as a fraction of each side."""
    ys = (torch.arange(h) + 0.5) / h - 0.5
    xs = (torch.arange(w) + 0.5) / w - 0.5
    return torch.exp(-(ys[:, None] ** 2 + xs[None, :] ** 2) / (2 * sigma**2))


def evaluate_localization(
    model: AVModel,
    manifest: str | Path,
    split: str | None = "test",
    head: str | None = None,
    consensus: int = 1,
    seed: int = 0,
    untrained: AVModel | None = None,
    show_progress: bool = False,
) -> LocalizationReport:
    """The protocol of the module docstring over ``split`` of ``manifest``.

    Args:
        consensus: boxes per pixel that count fully (2: Flickr-SoundNet's annotators; 1: union).
        seed: for the random map and the choice of swapped and negative sounds.
        untrained: a freshly initialised model of the same config, for the untrained-network row.
    """
    if consensus < 1:
        raise ConfigError(f"consensus: the number of annotators whose boxes must agree, >= 1; got {consensus}")
    name, loc = localization_head(model, head)
    enc, skipped = encode_scenes(model, loc, manifest, split, show_progress=show_progress)
    rng = np.random.default_rng(seed)
    n, (h, w) = len(enc.records), enc.visual.shape[-2:]
    gts = [ground_truth(b, enc.size, consensus) for b in enc.boxes]
    negatives, swaps = _pair_controls(enc, rng)

    with torch.no_grad():
        raw = loc.heat_map(enc.visual, enc.audio)
        maps = {"model": (raw, _paired(loc, enc.visual, enc.audio, negatives), _paired(loc, enc.visual, enc.audio, swaps))}
        fixed = {
            "centre Gaussian": centre_gaussian(h, w).expand(n, h, w),
            "whole image": torch.ones(n, h, w),
            "random map": torch.from_numpy(rng.random((n, h, w))).float(),
            "visual only": enc.feature_norm,
        }
        for label, m in fixed.items():  # no audio: the same map whatever the sound
            maps[label] = (m, m, m)
        if untrained is not None:
            _, fresh = localization_head(untrained, name)
            u_enc, _ = encode_scenes(untrained, fresh, manifest, split, show_progress=show_progress)
            if [r.id for r in u_enc.records] != [r.id for r in enc.records]:
                raise ConfigError("the untrained model read other scenes than the trained one; give it the same config")
            maps["untrained network"] = (fresh.heat_map(u_enc.visual, u_enc.audio),
                                         _paired(fresh, u_enc.visual, u_enc.audio, negatives),
                                         _paired(fresh, u_enc.visual, u_enc.audio, swaps))  # fmt: skip
    rows, model_cious = {}, np.empty(0)
    network = {"model", "visual only", "untrained network"}  # maps of the encoder: its cells sit on its grid
    for label, (m, neg, swp) in maps.items():
        rows[label], cious = _row(m, neg, swp, gts, negatives, swaps, enc, loc.grid if label in network else None)
        model_cious = cious if label == "model" else model_cious
    by_objects: dict[int, dict[str, float]] = {}
    for k in sorted({o for o in (enc.objects(i) for i in range(n)) if o is not None}):
        sel = [i for i in range(n) if enc.objects(i) == k]
        success, auc = success_and_auc(model_cious[sel])
        by_objects[k] = {"success@0.5": success, "AUC": auc, "scenes": float(len(sel))}
    controls = {"swap/scenes": float(sum(s is not None for s in swaps)),
                "negative/scenes": float(sum(s is not None for s in negatives))}  # fmt: skip
    controls["swap/peak_stays_on_original"] = rows["model"].pop("swap/peak_stays", float("nan"))
    for row in rows.values():
        row.pop("swap/peak_stays", None)
    counts = {"scored": n, **skipped}
    return LocalizationReport(rows, by_objects, controls, counts, model_cious, [r.id for r in enc.records])


def _pair_controls(enc: EncodedScenes, rng: np.random.Generator) -> tuple[list[tuple[int, Tensor | None] | None], list[tuple[int, Tensor] | None]]:
    """For each scene: a sound of a digit it does not show (negative) and of one it does (swap, with its box)."""
    by_label: dict[str, list[int]] = {}
    for i, rec in enumerate(enc.records):
        if rec.label is not None:
            by_label.setdefault(rec.label, []).append(i)
    negatives: list[tuple[int, Tensor | None] | None] = []
    swaps: list[tuple[int, Tensor] | None] = []
    for i, rec in enumerate(enc.records):
        others = enc.distractors[i]
        if others is None or rec.label is None:
            negatives.append(None)
            swaps.append(None)
            continue
        shown = {rec.label, *(lab for lab, _ in others)}
        absent = sorted(lab for lab in by_label if lab not in shown)
        negatives.append((int(rng.choice(by_label[absent[int(rng.integers(len(absent)))]])), None) if absent else None)
        candidates = [(lab, box) for lab, box in others if box is not None and lab in by_label]
        if candidates:
            lab, box = candidates[int(rng.integers(len(candidates)))]
            swaps.append((int(rng.choice(by_label[lab])), box))
        else:
            swaps.append(None)
    return negatives, swaps


def _paired(head: LocalizationHead, visual: Tensor, audio: Tensor, pairs: list[Any]) -> Tensor:
    """Maps of scene ``i`` with sound ``pairs[i][0]`` (its own sound where it has no such pair; unused)."""
    idx = torch.tensor([p[0] if p is not None else i for i, p in enumerate(pairs)])
    return head.heat_map(visual, audio[idx])


def _row(raw: Tensor, neg_raw: Tensor, swap_raw: Tensor, gts: list[Tensor], negatives: list[Any], swaps: list[Any],
         enc: EncodedScenes, grid: MapGrid | None) -> tuple[dict[str, float], np.ndarray]:  # fmt: skip
    """One method's metrics (its maps' cells on ``grid``; None: tiling the image), and its adaptive cIoU per scene."""
    row: dict[str, float] = {}
    scores = score_maps(raw, gts, grid=grid)
    for rule in RULES:
        row[f"{rule}/success@0.5"], row[f"{rule}/AUC"] = success_and_auc(scores[rule])
    has_neg = [i for i, p in enumerate(negatives) if p is not None]
    if has_neg:
        conf = torch.cat([confidence(raw[has_neg]), confidence(neg_raw[has_neg])]).numpy()
        cious = np.concatenate([scores["adaptive"][has_neg], np.full(len(has_neg), np.nan)])
        positive = np.concatenate([np.ones(len(has_neg), bool), np.zeros(len(has_neg), bool)])
        row.update(negative_aware(conf, cious, positive))
    has_swap = [i for i, p in enumerate(swaps) if p is not None]
    if has_swap:
        row["swap/peak_on_named"] = float(np.mean([peak_inside(swap_raw[i], swaps[i][1], enc.size, grid) for i in has_swap]))
        row["swap/peak_stays"] = float(np.mean([peak_inside(swap_raw[i], enc.boxes[i], enc.size, grid) for i in has_swap]))
    return row, scores["adaptive"]


@dataclass
class FileHeat:
    """One image and one sound, localised.

    Attributes:
        image: ``(3, H, W)`` the preprocessed image, un-normalised to [0, 1] for display.
        raw: ``(h, w)`` cosine map. heat: ``(H, W)`` upsampled and min-max normalised.
        confidence: SLAVC's confidence (mean of the top 25% of ``raw``).
        peak: ``(x, y)`` pixel of the heat map's maximum.
        boxes: ``(N, 4)`` given boxes, in the preprocessed image's pixels.
    """

    image: Tensor
    raw: Tensor
    heat: Tensor
    confidence: float
    peak: tuple[int, int]
    boxes: Tensor


def heat_for_files(model: AVModel, image: str | Path, audio: str | Path, boxes: list[list[float]] | None = None,
                   head: str | None = None) -> FileHeat:  # fmt: skip
    """Localise the sound of file ``audio`` in file ``image``; ``boxes`` in the image file's pixels.

    Raises:
        MediaError: a file that does not decode as its modality (a sound given as the image), naming it.
        TargetError: a box outside the image, empty or inverted.
    """
    _, loc = localization_head(model, head)
    pipes = model.pipelines()
    image_pipe, audio_pipe = pipes[loc.image_tower], pipes[loc.audio_tower]
    raw_image = image_pipe.load(Path(image))
    given = torch.zeros(0, 4)
    if boxes:
        try:  # the manifest's own rule for boxes
            given = torch.tensor(parse_boxes([list(b) for b in boxes]))
        except ValueError as exc:
            raise TargetError(str(exc)) from None
        check_boxes(given, raw_image.shape[-1], raw_image.shape[-2])
    x_img, moved = image_pipe(raw_image, None, given if boxes else None)
    x_aud = audio_pipe.load_tensor(audio)
    a_in, a_len = audio_pipe.collate([x_aud])
    model.eval()
    with torch.no_grad():
        batch = Batch({loc.image_tower: x_img[None], loc.audio_tower: a_in}, torch.full((1,), -1), torch.zeros(1, dtype=torch.long),
                      [str(image)], lengths={loc.audio_tower: a_len} if a_len is not None else {})  # fmt: skip
        out = model.encode(batch.to(model.device))
        raw = loc.own_heat_maps(out)[0].cpu()
    size = tuple(x_img.shape[-2:])
    heat = normalize_map(upsample(raw, size, loc.grid))
    flat = int(heat.flatten().argmax())
    settings = image_pipe.settings
    shown = denormalize(x_img, settings.mean, settings.std)
    return FileHeat(shown, raw, heat, float(confidence(raw[None])[0]), (flat % size[1], flat // size[1]),
                    moved if moved is not None else torch.zeros(0, 4))  # fmt: skip

"""Sound-source localization metrics: the field's protocol (LVS, EZ-VSL, SSLalignment, SLAVC), pinned.

    heat = normalize_map(upsample(raw, (H, W), grid))     # bilinear to the image, min-max to [0, 1]
    g = ground_truth(boxes, (H, W), consensus=1)          # (H, W) in [0, 1]
    a = binarize(heat, "adaptive", g)                     # (H, W) bool
    ciou(a, g)                                            # Σ a·g / (Σ g + Σ a·[g = 0])
    success_and_auc(cious)                                # success@0.5, AUC over t = 0, 0.05, …, 1

Conventions (golden-value tests in ``tests/test_localization_metrics.py`` pin each):

- A map's cells are placed on the image by a :class:`MapGrid` (the encoder's stride and
  where its first cell's receptive field is centred); without one, the cells tile the image
  (``F.interpolate(..., align_corners=False)``). A stride-8 ResNet's cell ``i`` sees pixel
  ``8i`` at its centre, not ``8i + 3.5``: tiling would draw its maps 3.5 px down and right.
- A pixel ``(i, j)`` lies in a box ``(x0, y0, x1, y1)`` when its centre
  ``(j + .5, i + .5)`` does: ``x0 <= j + .5 < x1``. Integer boxes are end-exclusive.
- ``ground_truth``: ``g(p) = min(Σ_k 1[p ∈ box_k] / consensus, 1)``. ``consensus = 1``
  is the union of the boxes (one annotator); ``consensus = 2`` is the Flickr-SoundNet
  rule for boxes from several annotators.
- Binarisation keeps a pixel *at* the threshold (``>=``):
  ``median``: the threshold is the value at sorted position ``⌊HW/2⌋`` (the top 50%);
  ``adaptive``: the K-th largest value, K = the number of pixels with ``g > 0`` (top-K);
  ``absolute``: 0.5. A flat map normalises to zeros, so it predicts the whole image
  under ``median`` and ``adaptive`` and nothing under ``absolute``.
- success@t counts ``ciou >= t``.
- Negative-aware scores (SLAVC): confidence is the mean of the top 25% of the *raw* map
  (``⌈hw/4⌉`` cells, before upsampling and normalisation, so scenes are comparable).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

#: The binarisation rules, in report order.
RULES = ("median", "adaptive", "absolute")
#: success@t thresholds for the AUC: 0, 0.05, ..., 1 (21 points).
THRESHOLDS = np.round(np.linspace(0.0, 1.0, 21), 2)


@dataclass(frozen=True)
class MapGrid:
    """Where a map's cells sit on its image: cell ``(i, j)`` is centred on the image position
    ``(centre[0] + i * stride[0], centre[1] + j * stride[1])``, in continuous pixel coordinates
    (pixel ``k`` spans ``[k, k + 1)``, so its centre is ``k + 0.5``).

    Cells that tile the image have ``centre = stride / 2``. A chain of stride-2 3x3 convolutions
    (padding 1) centres cell ``i`` on pixel ``stride * i``: ``centre = 0.5``.
    """

    stride: tuple[float, float]
    centre: tuple[float, float]

    @classmethod
    def of(cls, feature_map: Any) -> MapGrid:
        """The grid of an encoder's 2-D ``FeatureMap`` (its ``stride`` and ``centres()``)."""
        return cls(tuple(float(s) for s in feature_map.stride), tuple(feature_map.centres()))

    @classmethod
    def tiling(cls, map_size: tuple[int, int], image_size: tuple[int, int]) -> MapGrid:
        """The grid of cells that tile an image of ``image_size`` evenly (``align_corners=False``)."""
        stride = (image_size[0] / map_size[0], image_size[1] / map_size[1])
        return cls(stride, (stride[0] / 2, stride[1] / 2))

    def cell_windows(self, map_size: tuple[int, int], image_size: tuple[int, int]) -> tuple[Tensor, Tensor]:
        """``(Ay (h, H), Ax (w, W))``: the fraction of each pixel inside each cell's stride-sized window
        centred on the cell, so ``Ay @ image @ Ax.T / (stride_y * stride_x)`` averages an image over the cells."""
        def axis(cells: int, pixels: int, stride: float, centre: float) -> Tensor:
            lo = centre + torch.arange(cells)[:, None] * stride - stride / 2  # (cells, 1)
            px = torch.arange(pixels)[None, :].float()
            return (torch.minimum(px + 1, lo + stride) - torch.maximum(px, lo)).clamp(min=0)

        return (axis(map_size[0], image_size[0], self.stride[0], self.centre[0]),
                axis(map_size[1], image_size[1], self.stride[1], self.centre[1]))  # fmt: skip

    def cell_coordinates(self, image_size: tuple[int, int]) -> tuple[Tensor, Tensor]:
        """``(ys (H,), xs (W,))``: each pixel centre's position in cell units (cell ``i`` at ``i``)."""
        ys = (torch.arange(image_size[0]) + 0.5 - self.centre[0]) / self.stride[0]
        xs = (torch.arange(image_size[1]) + 0.5 - self.centre[1]) / self.stride[1]
        return ys, xs


def upsample(raw: Tensor, size: tuple[int, int], grid: MapGrid | None = None) -> Tensor:
    """``(B, h, w)`` or ``(h, w)`` maps, bilinearly resized to ``size = (H, W)``.

    Each pixel takes the bilinear interpolation of the cells around its position on ``grid``
    (clamped at the map's border); without a grid the cells tile the image, as
    ``F.interpolate(..., align_corners=False)``.
    """
    squeeze = raw.dim() == 2
    maps = raw.float().reshape(-1, 1, *raw.shape[-2:])
    if grid is None:
        out = F.interpolate(maps, size=size, mode="bilinear", align_corners=False)
    else:
        h, w = maps.shape[-2:]
        ys, xs = grid.cell_coordinates(size)
        ny = 2 * ys / (h - 1) - 1 if h > 1 else torch.zeros_like(ys)  # align_corners=True: cell 0 -> -1
        nx = 2 * xs / (w - 1) - 1 if w > 1 else torch.zeros_like(xs)
        coords = torch.stack(torch.meshgrid(nx, ny, indexing="xy"), dim=-1)  # (H, W, 2) as (x, y)
        out = F.grid_sample(maps, coords.expand(len(maps), *coords.shape).to(maps.device), mode="bilinear",
                            padding_mode="border", align_corners=True)  # fmt: skip
    return out[0, 0] if squeeze else out[:, 0]


def normalize_map(heat: Tensor) -> Tensor:
    """Min-max normalise each ``(…, H, W)`` map to [0, 1]; a flat map becomes zeros."""
    flat = heat.flatten(-2)
    low, high = flat.amin(-1, keepdim=True), flat.amax(-1, keepdim=True)
    span = high - low
    out = torch.where(span > 0, (flat - low) / span.clamp_min(torch.finfo(flat.dtype).tiny), torch.zeros_like(flat))
    return out.view_as(heat)


def box_mask(boxes: Tensor | Sequence[Sequence[float]], size: tuple[int, int]) -> Tensor:
    """``(N, H, W)`` 0/1 masks of ``N`` pixel boxes ``(x0, y0, x1, y1)`` (pixel centres inside)."""
    boxes = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    h, w = size
    ys, xs = torch.arange(h) + 0.5, torch.arange(w) + 0.5
    inside_x = (xs[None, :] >= boxes[:, 0:1]) & (xs[None, :] < boxes[:, 2:3])  # (N, W)
    inside_y = (ys[None, :] >= boxes[:, 1:2]) & (ys[None, :] < boxes[:, 3:4])  # (N, H)
    return (inside_y[:, :, None] & inside_x[:, None, :]).float()


def ground_truth(boxes: Tensor | Sequence[Sequence[float]], size: tuple[int, int], consensus: int = 1) -> Tensor:
    """``(H, W)`` ground truth ``min(Σ_k 1[p ∈ box_k] / consensus, 1)`` from pixel boxes ``(N, 4)``."""
    if consensus < 1:
        raise ValueError(f"consensus must be a number of annotators >= 1, got {consensus}")
    return (box_mask(boxes, size).sum(0) / consensus).clamp(max=1.0)


def cell_coverage(gt: Tensor, map_size: tuple[int, int], grid: MapGrid | None = None) -> Tensor:
    """``(h, w)``: the mean of a ground truth ``(H, W)`` over each cell's window on ``grid`` (default: tiling)."""
    grid = grid or MapGrid.tiling(map_size, tuple(gt.shape))
    ay, ax = grid.cell_windows(map_size, tuple(gt.shape))
    return ay.to(gt) @ gt @ ax.to(gt).T / (grid.stride[0] * grid.stride[1])


def binarize(heat: Tensor, rule: str, gt: Tensor | None = None) -> Tensor:
    """``(H, W)`` bool prediction from a normalised map by ``rule`` (``adaptive`` needs ``gt``)."""
    flat = heat.flatten()
    if rule == "median":
        threshold = flat.sort().values[flat.numel() // 2]
    elif rule == "adaptive":
        if gt is None:
            raise ValueError("the adaptive rule needs the ground truth (K = its area)")
        k = int((gt > 0).sum())
        if k == 0:
            return torch.zeros_like(heat, dtype=torch.bool)
        threshold = flat.topk(k).values[-1]
    elif rule == "absolute":
        threshold = torch.tensor(0.5)
    else:
        raise ValueError(f"unknown binarisation rule {rule!r}; rules: {list(RULES)}")
    return heat >= threshold


def ciou(pred: Tensor, gt: Tensor) -> float:
    """Consensus IoU ``Σ a·g / (Σ g + Σ a·[g = 0])`` of a bool prediction and a ground truth, both ``(H, W)``."""
    a, g = pred.float(), gt.float()
    total = float(g.sum())
    if total <= 0:
        raise ValueError("the ground truth is empty: an item without boxes cannot be scored")
    return float((a * g).sum()) / (total + float((a * (g == 0)).sum()))


def success_and_auc(cious: Sequence[float] | np.ndarray, at: float = 0.5) -> tuple[float, float]:
    """The fraction of items with ``ciou >= at``, and the trapezoid of success@t over :data:`THRESHOLDS`."""
    values = np.asarray(cious, dtype=np.float64)
    if values.size == 0:
        return math.nan, math.nan
    curve = np.array([(values >= t).mean() for t in THRESHOLDS])
    auc = float(((curve[1:] + curve[:-1]) / 2 * np.diff(THRESHOLDS)).sum())  # the trapezoid rule
    return float((values >= at).mean()), auc


def confidence(raw: Tensor) -> Tensor:
    """SLAVC's confidence of ``(B, h, w)`` raw maps: the mean of each map's top 25% cells, ``(B,)``."""
    flat = raw.float().flatten(1)
    k = max(1, math.ceil(flat.shape[1] / 4))
    return flat.topk(k, dim=1).values.mean(1)


def negative_aware(confidences: Sequence[float] | np.ndarray, cious: Sequence[float] | np.ndarray,
                   positive: Sequence[bool] | np.ndarray, at: float = 0.5) -> dict[str, float]:  # fmt: skip
    """SLAVC's AP and max-F1 over positives (the sound is in the picture) and negatives (it is not).

    Items are ranked by confidence. A true positive is a positive with ``ciou >= at``; every other
    item (a negative, or a positive localised badly) is a false positive. Recall divides by the
    number of positives. ``cious`` of negatives are ignored (pass NaN). Precision and recall are
    taken at each distinct confidence, so tied items count together whatever their order (as
    scikit-learn's ``average_precision_score``): AP = Σ (R_k − R_{k−1}) · P_k.
    """
    conf = np.asarray(confidences, dtype=np.float64)
    pos = np.asarray(positive, dtype=bool)
    hit = pos & (np.nan_to_num(np.asarray(cious, dtype=np.float64), nan=-1.0) >= at)
    n_pos = int(pos.sum())
    if n_pos == 0:
        return {"AP": math.nan, "max_F1": math.nan}
    order = np.argsort(-conf, kind="stable")
    tp = np.cumsum(hit[order])
    seen = np.arange(1, len(order) + 1)
    last = np.r_[np.diff(conf[order]) != 0, True]  # the last item of each run of tied confidences
    tp, seen = tp[last], seen[last]
    precision, recall = tp / seen, tp / n_pos
    ap = float((np.diff(np.r_[0.0, recall]) * precision).sum())
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    return {"AP": ap, "max_F1": float(f1.max())}


def score_maps(raw: Tensor, gts: Sequence[Tensor], rules: Sequence[str] = RULES,
               grid: MapGrid | None = None) -> dict[str, np.ndarray]:  # fmt: skip
    """cIoU of each of ``B`` raw maps ``(B, h, w)`` (cells on ``grid``) against its ground truth ``(H, W)``,
    per rule: rule -> ``(B,)``."""
    out = {rule: np.empty(len(gts)) for rule in rules}
    for i, gt in enumerate(gts):
        heat = normalize_map(upsample(raw[i], tuple(gt.shape), grid))
        for rule in rules:
            out[rule][i] = ciou(binarize(heat, rule, gt), gt)
    return out


def peak_inside(raw: Tensor, boxes: Tensor, size: tuple[int, int], grid: MapGrid | None = None) -> bool:
    """Whether the maximum of one raw map ``(h, w)`` (cells on ``grid``), upsampled to ``size``, falls in any
    of ``boxes (N, 4)``."""
    heat = upsample(raw, size, grid)
    flat = int(heat.flatten().argmax())
    return bool(box_mask(boxes, size).sum(0).flatten()[flat] > 0)

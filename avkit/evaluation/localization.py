"""Sound-source localization metrics: the field's protocol (LVS, EZ-VSL, SSLalignment, SLAVC), pinned.

    heat = normalize_map(upsample(raw, (H, W)))           # bilinear to the image, min-max to [0, 1]
    g = ground_truth(boxes, (H, W), consensus=1)          # (H, W) in [0, 1]
    a = binarize(heat, "adaptive", g)                     # (H, W) bool
    ciou(a, g)                                            # Σ a·g / (Σ g + Σ a·[g = 0])
    success_and_auc(cious)                                # success@0.5, AUC over t = 0, 0.05, …, 1

Conventions (golden-value tests in ``tests/test_localization_metrics.py`` pin each):

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

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

#: The binarisation rules, in report order.
RULES = ("median", "adaptive", "absolute")
#: success@t thresholds for the AUC: 0, 0.05, ..., 1 (21 points).
THRESHOLDS = np.round(np.linspace(0.0, 1.0, 21), 2)


def upsample(raw: Tensor, size: tuple[int, int]) -> Tensor:
    """``(B, h, w)`` or ``(h, w)`` maps, bilinearly resized to ``size = (H, W)`` (``align_corners=False``)."""
    squeeze = raw.dim() == 2
    out = F.interpolate(raw.float().reshape(-1, 1, *raw.shape[-2:]), size=size, mode="bilinear", align_corners=False)
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


def score_maps(raw: Tensor, gts: Sequence[Tensor], rules: Sequence[str] = RULES) -> dict[str, np.ndarray]:
    """cIoU of each of ``B`` raw maps ``(B, h, w)`` against its ground truth ``(H, W)``, per rule: rule -> ``(B,)``."""
    out = {rule: np.empty(len(gts)) for rule in rules}
    for i, gt in enumerate(gts):
        heat = normalize_map(upsample(raw[i], tuple(gt.shape)))
        for rule in rules:
            out[rule][i] = ciou(binarize(heat, rule, gt), gt)
    return out


def peak_inside(raw: Tensor, boxes: Tensor, size: tuple[int, int]) -> bool:
    """Whether the maximum of one raw map ``(h, w)``, upsampled to ``size``, falls in any of ``boxes (N, 4)``."""
    heat = upsample(raw, size)
    flat = int(heat.flatten().argmax())
    return bool(box_mask(boxes, size).sum(0).flatten()[flat] > 0)

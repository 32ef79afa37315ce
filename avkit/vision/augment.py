"""Image geometry for preprocessing and augmentation, with boxes carried along.

Coordinates are continuous pixels: pixel ``(i, j)`` covers ``[j, j+1) x [i, i+1)``
and a box ``(x0, y0, x1, y1)`` is in the same units, as in manifests.

A geometric augmentation is one 3x3 matrix ``M`` that maps output pixel
coordinates to input ones; the image is resampled once through it
(``grid_sample``), and boxes go the other way, through ``M⁻¹``: each box becomes
the bounding box of its four transformed corners, clipped to the output. Every
random choice takes a ``numpy.random.Generator``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

#: Boxes narrower or shorter than this (pixels) after a crop are dropped.
MIN_BOX_SIDE = 1.0


def translation(tx: float, ty: float) -> np.ndarray:
    return np.array([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])


def scaling(sx: float, sy: float) -> np.ndarray:
    return np.diag([sx, sy, 1.0])


def rotation(degrees: float) -> np.ndarray:
    a = math.radians(degrees)
    return np.array([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0], [0.0, 0.0, 1.0]])


def random_resized_crop(
    in_size: tuple[int, int], out_size: int, area: tuple[float, float], ratio: tuple[float, float], rng: np.random.Generator
) -> np.ndarray:
    """Output -> input matrix of a random crop of ``area`` (fraction) and aspect ``ratio`` (w/h, log-uniform),
    stretched to ``out_size`` (Inception-style, as torchvision's ``RandomResizedCrop``)."""
    h_in, w_in = in_size
    s = rng.uniform(*area) * h_in * w_in
    r = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
    w, h = min(w_in, math.sqrt(s * r)), min(h_in, math.sqrt(s / r))
    x0, y0 = rng.uniform(0, w_in - w), rng.uniform(0, h_in - h)
    return translation(x0, y0) @ scaling(w / out_size, h / out_size)


def random_affine(
    size: int, degrees: float, translate: float, scale: tuple[float, float], hflip: float, rng: np.random.Generator
) -> np.ndarray:
    """Output -> input matrix of a random rotation, scaling, translation (fraction of ``size``)
    and horizontal flip (probability ``hflip``) about the image centre."""
    c = size / 2
    k = rng.uniform(*scale)
    tx, ty = rng.uniform(-translate, translate, size=2) * size
    forward = translation(c + tx, c + ty) @ rotation(rng.uniform(-degrees, degrees)) @ scaling(k, k) @ translation(-c, -c)
    if rng.uniform() < hflip:
        forward = forward @ translation(size, 0) @ scaling(-1, 1)
    return np.linalg.inv(forward)


def warp(img: Tensor, out_to_in: np.ndarray, out_size: int) -> Tensor:
    """Resample ``(C, H, W)`` at ``out_to_in @ (x, y, 1)`` of each output pixel centre -> ``(C, out_size, out_size)``.

    Bilinear; points outside the input read 0.
    """
    _, h, w = img.shape
    centres = torch.arange(out_size, dtype=torch.float64) + 0.5
    ys, xs = torch.meshgrid(centres, centres, indexing="ij")
    pts = torch.stack([xs, ys, torch.ones_like(xs)], dim=-1) @ torch.from_numpy(out_to_in).T  # (S, S, 3)
    grid = torch.stack([pts[..., 0] / w * 2 - 1, pts[..., 1] / h * 2 - 1], dim=-1).to(img.dtype)
    return F.grid_sample(img[None], grid[None], mode="bilinear", padding_mode="zeros", align_corners=False)[0]


def transform_boxes(boxes: Tensor, in_to_out: np.ndarray, out_size: int) -> Tensor:
    """``(N, 4)`` boxes through an input -> output matrix: bounding boxes of the moved corners,
    clipped to ``[0, out_size]``; boxes left thinner than :data:`MIN_BOX_SIDE` are dropped."""
    if boxes.numel() == 0:
        return boxes.reshape(0, 4)
    x0, y0, x1, y1 = boxes.double().unbind(-1)
    corners = torch.stack([torch.stack([x, y, torch.ones_like(x)], -1) for x, y in ((x0, y0), (x1, y0), (x0, y1), (x1, y1))], 1)
    moved = corners @ torch.from_numpy(in_to_out).T  # (N, 4, 3)
    out = torch.cat([moved[..., :2].amin(1), moved[..., :2].amax(1)], dim=-1).clamp(0, out_size)
    keep = ((out[:, 2] - out[:, 0]) >= MIN_BOX_SIDE) & ((out[:, 3] - out[:, 1]) >= MIN_BOX_SIDE)
    return out[keep].to(boxes.dtype)


def jitter(img: Tensor, brightness: float, contrast: float, rng: np.random.Generator) -> Tensor:
    """Multiply by a brightness factor in ``1 ± brightness``, scale contrast about the image mean by
    ``1 ± contrast``; clip to [0, 1]. ``(C, H, W)`` in [0, 1]."""
    if brightness > 0:
        img = img * rng.uniform(1 - brightness, 1 + brightness)
    if contrast > 0:
        mean = img.mean()
        img = (img - mean) * rng.uniform(1 - contrast, 1 + contrast) + mean
    return img.clamp(0, 1)

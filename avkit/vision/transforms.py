"""Image tensor transforms on ``(3, H, W)`` or batched ``(B, 3, H, W)`` float tensors."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

#: Mean and std of AV-digits images (white ink on black), per channel.
DIGITS_MEAN = (0.17, 0.17, 0.17)
DIGITS_STD = (0.33, 0.33, 0.33)


def _batched(img: Tensor) -> tuple[Tensor, bool]:
    if img.dim() == 3:
        return img.unsqueeze(0), True
    if img.dim() == 4:
        return img, False
    raise ValueError(f"expected an image (C, H, W) or batch (B, C, H, W), got shape {tuple(img.shape)}")


def resize(img: Tensor, size: int | tuple[int, int]) -> Tensor:
    """Resize with antialiased bilinear interpolation.

    Args:
        img: ``(C, H, W)`` or ``(B, C, H, W)``.
        size: ``(h, w)``, or an int for the shorter side (aspect ratio kept).
    """
    x, single = _batched(img)
    h, w = x.shape[-2:]
    if isinstance(size, int):
        scale = size / min(h, w)
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
    out = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    return out[0] if single else out


def center_crop(img: Tensor, size: int | tuple[int, int]) -> Tensor:
    """Crop the centre ``(h, w)`` region; ``(C, H, W)`` or ``(B, C, H, W)``."""
    h, w = (size, size) if isinstance(size, int) else size
    H, W = img.shape[-2:]
    if h > H or w > W:
        raise ValueError(f"crop {h}x{w} is larger than the image {H}x{W}")
    top, left = (H - h) // 2, (W - w) // 2
    return img[..., top : top + h, left : left + w]


def normalize(img: Tensor, mean: Sequence[float] = DIGITS_MEAN, std: Sequence[float] = DIGITS_STD) -> Tensor:
    """Per-channel ``(x - mean) / std`` on ``(C, H, W)`` or ``(B, C, H, W)``."""
    m = torch.as_tensor(mean, dtype=img.dtype, device=img.device).view(-1, 1, 1)
    s = torch.as_tensor(std, dtype=img.dtype, device=img.device).view(-1, 1, 1)
    return (img - m) / s


def denormalize(img: Tensor, mean: Sequence[float] = DIGITS_MEAN, std: Sequence[float] = DIGITS_STD) -> Tensor:
    """The inverse of :func:`normalize`, clamped to pixels in [0, 1]: ``(C, H, W)`` or ``(B, C, H, W)``."""
    m = torch.as_tensor(mean, dtype=img.dtype, device=img.device).view(-1, 1, 1)
    s = torch.as_tensor(std, dtype=img.dtype, device=img.device).view(-1, 1, 1)
    return (img * s + m).clamp(0, 1)

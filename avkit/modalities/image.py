"""The ``image`` modality: RGB, resized and cropped to the tower's square size, normalised.

Per-tower settings (:class:`ImageSettings`): the side, and the normalisation.
Per-run augmentation (:class:`ImageAugment`): random resized crop, a small
affine (rotation, translation, scale, flip), brightness and contrast jitter.
Boxes, in pixels, are transformed along with the image at every step.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import Tensor

from avkit.config import require_finite
from avkit.errors import ConfigError, TargetError
from avkit.modalities.base import Modality, Pipeline, register_modality
from avkit.video.io import read_frame
from avkit.vision.augment import jitter, random_affine, random_resized_crop, transform_boxes, warp
from avkit.vision.io import IMAGE_EXPECTED, image_from_bytes, load_image
from avkit.vision.transforms import DIGITS_MEAN, DIGITS_STD, normalize, resize


@dataclass
class ImageSettings:
    """An image tower's preprocessing.

    Attributes:
        size: the side of the square input, pixels. The shorter side is resized
            to it, then the longer one cropped: centre in evaluation, random in training.
        mean, std: per-channel normalisation of values in [0, 1] (default: AV-digits statistics).
    """

    size: int = 32
    mean: tuple[float, float, float] = DIGITS_MEAN
    std: tuple[float, float, float] = DIGITS_STD

    def __post_init__(self) -> None:
        require_finite(self)
        if self.size < 1:
            raise ConfigError(f"image settings: size must be positive, got {self.size}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ConfigError(f"image settings: mean and std need 3 values, std > 0; got {self.mean}, {self.std}")


@dataclass
class ImageAugment:
    """Training augmentation of an image tower (each item draws its own values).

    Attributes:
        crop_area, crop_ratio: random resized crop: the fraction of the image
            kept, and its aspect ratio (w/h, log-uniform); (1, 1) and (1, 1): off.
        rotate_degrees, translate, scale: a small affine about the centre: up to ±
            this rotation, ± this fraction of the side, a zoom in this range.
        hflip: probability of a horizontal flip (off for digits and text).
        brightness, contrast: multiply by 1 ± this; scale contrast by 1 ± this.
    """

    crop_area: tuple[float, float] = (1.0, 1.0)
    crop_ratio: tuple[float, float] = (1.0, 1.0)
    rotate_degrees: float = 0.0
    translate: float = 0.0
    scale: tuple[float, float] = (1.0, 1.0)
    hflip: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0

    def __post_init__(self) -> None:
        require_finite(self)
        for name in ("crop_area", "crop_ratio", "scale"):
            span = getattr(self, name)
            if len(span) != 2 or not 0 < span[0] <= span[1]:
                raise ConfigError(f"{name}: a range [low, high] with 0 < low <= high, got {list(span)}")
        if self.crop_area[1] > 1:
            raise ConfigError(f"crop_area: fractions of the image, at most 1, got {list(self.crop_area)}")
        for name in ("translate", "brightness", "contrast"):  # fractions: 1 would wipe the image out
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"{name}: must lie in [0, 1), got {getattr(self, name)}")
        if not 0 <= self.hflip <= 1:
            raise ConfigError(f"hflip: a probability in [0, 1], got {self.hflip}")
        if self.rotate_degrees < 0:
            raise ConfigError(f"rotate_degrees: a maximum angle, >= 0, got {self.rotate_degrees}")

    @property
    def geometric(self) -> bool:
        return (self.crop_area, self.crop_ratio, self.rotate_degrees, self.translate, self.scale, self.hflip) != (
            (1.0, 1.0), (1.0, 1.0), 0.0, 0.0, (1.0, 1.0), 0.0)  # fmt: skip


def check_boxes(boxes: Tensor, width: int, height: int) -> None:
    """Raise TargetError, naming every offending box, unless all lie inside a ``width`` x ``height`` image."""
    bad = [f"box {i} {[x0, y0, x1, y1]}" for i, (x0, y0, x1, y1) in enumerate(boxes.tolist())
           if x0 < 0 or y0 < 0 or x1 > width or y1 > height]  # fmt: skip
    if bad:
        raise TargetError(f"{', '.join(bad)} {'lies' if len(bad) == 1 else 'lie'} outside the {width}x{height} image")


class ImagePipeline(Pipeline):
    """Image items ``(3, size, size)``, normalised; boxes ``(N, 4)`` in pixels of the output."""

    output = "image"
    takes_boxes = True
    video_uses_settings = False  # a video's frame is decoded at its own size; resizing comes later

    def __init__(self, settings: ImageSettings, augment: ImageAugment | None = None) -> None:
        self.settings, self.augment = settings, augment

    def load(self, path: Path) -> Tensor:
        return load_image(path)

    def load_bytes(self, data: bytes) -> Tensor | None:
        return image_from_bytes(data)

    def load_video(self, path: Path, t: float) -> Tensor:
        """The frame shown at ``t``, ``(3, H, W)`` in [0, 1] as :meth:`load` gives an image file."""
        return read_frame(path, t, strict=self.strict)

    def check_boxes(self, img: Tensor, boxes: Tensor) -> None:
        check_boxes(boxes, img.shape[-1], img.shape[-2])

    def evaluation_boxes(self, boxes: Tensor, height: int, width: int) -> Tensor:
        """Pixel boxes ``(N, 4)`` of a ``height`` x ``width`` image, in the evaluation output's pixels.

        The same steps as :meth:`__call__` without ``rng``: the resize, then the centre crop, which
        clips boxes and drops one left thinner than 1 px (so ``N`` may shrink).
        """
        return self._fit_boxes(boxes.float().reshape(-1, 4), *self._fit(height, width, None))

    def _fit(self, height: int, width: int, rng: np.random.Generator | None) -> tuple[float, int, int, int, int]:
        """``(k, h, w, top, left)``: the shorter side is scaled by ``k`` to the tower's size, giving
        ``h x w`` (as ``vision.transforms.resize`` rounds), then the longer one is cropped at
        ``(top, left)``: centred without ``rng``, random with it."""
        size = self.settings.size
        k = 1.0 if min(height, width) == size else size / min(height, width)
        h, w = (height, width) if k == 1.0 else (max(1, round(height * k)), max(1, round(width * k)))
        top = left = 0
        if (h, w) != (size, size):
            top = (h - size) // 2 if rng is None else int(rng.integers(0, h - size, endpoint=True))
            left = (w - size) // 2 if rng is None else int(rng.integers(0, w - size, endpoint=True))
        return k, h, w, top, left

    def _fit_boxes(self, boxes: Tensor, k: float, h: int, w: int, top: int, left: int) -> Tensor:
        """Boxes through :meth:`_fit`'s resize and crop (the crop clips them, and drops thin ones)."""
        size = self.settings.size
        if k != 1.0:
            boxes = boxes * k
        if (h, w) != (size, size):
            boxes = transform_boxes(boxes, np.array([[1.0, 0, -left], [0, 1.0, -top], [0, 0, 1.0]]), size)
        return boxes

    def __call__(self, img: Tensor, rng: np.random.Generator | None = None, boxes: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        size, aug = self.settings.size, self.augment if rng is not None else None
        if boxes is not None:
            self.check_boxes(img, boxes)
        k, h, w, top, left = self._fit(img.shape[-2], img.shape[-1], rng)
        if k != 1.0:  # the shorter side to `size`, antialiased
            img = resize(img, size)
        if (h, w) != (size, size):  # crop the longer side: centre (evaluation) or random (training)
            img = img[:, top : top + size, left : left + size]
        if boxes is not None:
            boxes = self._fit_boxes(boxes, k, h, w, top, left)
        if aug is not None and aug.geometric:
            out_to_in = random_resized_crop((size, size), size, aug.crop_area, aug.crop_ratio, rng) @ random_affine(
                size, aug.rotate_degrees, aug.translate, aug.scale, aug.hflip, rng)  # fmt: skip
            img = warp(img, out_to_in, size)
            boxes = None if boxes is None else transform_boxes(boxes, np.linalg.inv(out_to_in), size)
        if aug is not None:
            img = jitter(img, aug.brightness, aug.contrast, rng)
        return normalize(img, self.settings.mean, self.settings.std), boxes


IMAGE = register_modality(
    Modality(
        name="image",
        settings=ImageSettings,
        augment=ImageAugment,
        pipeline=ImagePipeline,
        encoders=("image_resnet", "image_hourglass"),
        metadata={"size": ImageSettings.size, "shape": "(3, size, size)"},
        describe=IMAGE_EXPECTED,
        render=lambda path: load_image(path).permute(1, 2, 0).numpy(),
    )
)

"""The ``image`` modality: RGB resized to 32 x 32 and normalised (AV-digits statistics)."""

from __future__ import annotations

from torch import Tensor

from avkit.modalities.base import Modality, register_modality
from avkit.vision.io import IMAGE_EXPECTED, load_image
from avkit.vision.transforms import normalize, resize

IMAGE_SIZE = 32


def _preprocess(img: Tensor) -> Tensor:
    if img.shape[-2:] != (IMAGE_SIZE, IMAGE_SIZE):
        img = resize(img, (IMAGE_SIZE, IMAGE_SIZE))
    return normalize(img)


IMAGE = register_modality(
    Modality(
        name="image",
        load=load_image,
        preprocess=_preprocess,
        encoders=("image_resnet",),
        metadata={"image_size": IMAGE_SIZE, "shape": "(3, H, W)"},
        describe=IMAGE_EXPECTED,
        render=lambda path: load_image(path).permute(1, 2, 0).numpy(),
    )
)

"""Pictures of translations: the attention over an image for each decoded speech unit."""

from __future__ import annotations

from pathlib import Path

import torch

from avkit.evaluation.localization import upsample
from avkit.models import AVModel
from avkit.plotting import plt, save_figure
from avkit.translation.image_to_speech import Spoken, image_to_speech_heads
from avkit.vision.transforms import denormalize


def attention_panels(image: torch.Tensor, spoken: Spoken) -> torch.Tensor:
    """Each unit's attention ``(h, w)`` upsampled (bilinear, each cell where the encoder centres it) to the
    image's size: ``(units, H, W)``."""
    if not len(spoken.units):
        return torch.zeros(0, *image.shape[-2:])
    return upsample(spoken.attention, tuple(image.shape[-2:]), spoken.grid).reshape(-1, *image.shape[-2:])


def shown_image(model: AVModel, image_file: str | Path) -> torch.Tensor:
    """The image as the caption head's tower sees it (resized, cropped), in [0, 1], grey ``(H, W)``."""
    caption, _ = image_to_speech_heads(model)
    pipe = model.pipelines()[caption.towers[0]]
    s = pipe.settings
    x = pipe.load_tensor(image_file)
    return denormalize(x, s.mean, s.std).mean(0)


def save_attention(path: str | Path, images: list[torch.Tensor], spoken: list[Spoken], titles: list[str] | None = None,
                   columns: int = 12) -> Path:  # fmt: skip
    """A row per image ``(H, W)`` in [0, 1]: the image, then the image under each decoded unit's attention."""
    width = min(columns, 1 + max(len(s.units) for s in spoken))
    fig, axes = plt.subplots(len(images), width, figsize=(1.1 * width, 1.3 * len(images)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for row, (image, said) in enumerate(zip(images, spoken, strict=True)):
        axes[row, 0].imshow(image, cmap="gray", vmin=0, vmax=1)
        axes[row, 0].set_title(titles[row] if titles else "image", fontsize=7)
        maps = attention_panels(image, said)
        for col, (unit, att) in enumerate(zip(said.units[: width - 1], maps, strict=False), 1):
            axes[row, col].imshow(image, cmap="gray", vmin=0, vmax=1)
            axes[row, col].imshow(att, cmap="inferno", alpha=0.6)
            axes[row, col].set_title(f"unit {unit}", fontsize=7)
    save_figure(fig, path)
    return Path(path)

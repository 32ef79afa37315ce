"""Image file I/O with Pillow: any common image to a float tensor ``(3, H, W)`` in [0, 1].

Mode rules (documented in docs/data.md):

- ``L``, ``1`` and 16-bit grey (``I;16*``, ``I``) are replicated to three channels;
  16-bit values are divided by 65535, 8-bit by 255, float (``F``) is clipped to [0, 1].
- ``RGBA``, ``LA`` and palette images with transparency are composited over
  ``background`` (black by default, matching the white-on-black digits).
- ``P``, ``CMYK``, ``YCbCr`` and the rest are converted to RGB.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from avkit.errors import MediaError
from avkit.fileio import atomic_open, require_file, undecodable_error

IMAGE_EXPECTED = "an image (PNG, JPEG, ...)"
#: Images larger than this many pixels are refused before decoding (a few-KB PNG can expand to
#: gigabytes; Pillow's own decompression-bomb limit only warns below about 179 M pixels).
MAX_PIXELS = 50_000_000
SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".webp": "WEBP"}


def undecodable(path: Path, exc: Exception) -> MediaError:
    """The error for a file Pillow cannot decode: what was expected, what the file is, what Pillow said."""
    said = str(exc).replace(f"{str(path)!r}", "").replace(str(path), "").strip() or type(exc).__name__
    return undecodable_error(path, "an image", IMAGE_EXPECTED, ("a PNG", "a JPEG", "a GIF", "a BMP", "a WebP"), "Pillow", said)


def too_large(path: Path, exc: Exception) -> MediaError:
    """The error for an image Pillow refuses to open as a decompression bomb."""
    return MediaError(path, f"image is larger than avkit decodes ({MAX_PIXELS:,} pixels); resize it first (Pillow: {exc})")


def _to_rgb_array(img: Image.Image, background: tuple[int, int, int]) -> np.ndarray:
    """Return an ``(H, W, 3)`` float32 array in [0, 1] for any Pillow mode."""
    mode = img.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        arr = np.asarray(img, dtype=np.float32)
        arr = np.clip(arr if mode == "F" else arr / 65535.0, 0.0, 1.0)
        return np.repeat(arr[..., None], 3, axis=2)
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        base = Image.new("RGB", img.size, background)
        base.paste(img.convert("RGBA"), mask=img.convert("RGBA").getchannel("A"))
        img = base
    elif mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.float32) / 255.0


def load_image(path: str | Path, background: tuple[int, int, int] = (0, 0, 0)) -> torch.Tensor:
    """Load an image file as a float32 tensor ``(3, H, W)`` with values in [0, 1].

    Raises:
        MediaError: missing, empty, truncated, undecodable or zero-sized image.
    """
    path = Path(path)
    require_file(path, IMAGE_EXPECTED)
    try:
        with Image.open(path) as img:
            if img.width * img.height > MAX_PIXELS:
                raise MediaError(path, f"image is {img.width}x{img.height} pixels, more than avkit decodes "
                                 f"({MAX_PIXELS:,}); resize it first")  # fmt: skip
            img.load()
            arr = _to_rgb_array(img, background)
    except Image.DecompressionBombError as exc:
        raise too_large(path, exc) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise undecodable(path, exc) from None
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise MediaError(path, f"image has zero size {arr.shape[1]}x{arr.shape[0]}")
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def image_from_bytes(data: bytes, background: tuple[int, int, int] = (0, 0, 0)) -> torch.Tensor | None:
    """:func:`load_image` of an encoded image held in memory (a tar member), or None when it is not
    plainly good (undecodable, too large, empty): load it from a file then, whose error names it."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > MAX_PIXELS or 0 in img.size:
                return None
            img.load()
            arr = _to_rgb_array(img, background)
    except (Image.DecompressionBombError, UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return None
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def image_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` read from the header, without decoding pixels."""
    path = Path(path)
    require_file(path, IMAGE_EXPECTED)
    try:
        with Image.open(path) as img:
            return img.size
    except Image.DecompressionBombError as exc:
        raise too_large(path, exc) from None
    except (UnidentifiedImageError, OSError) as exc:
        raise undecodable(path, exc) from None


def to_pil(image: torch.Tensor | np.ndarray) -> Image.Image:
    """``(3, H, W)`` or ``(1, H, W)`` or ``(H, W)`` float in [0, 1] -> 8-bit Pillow image."""
    arr = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if arr.ndim == 3:
        arr = arr.transpose(1, 2, 0)
        if arr.shape[2] == 1:
            arr = arr[..., 0]
    elif arr.ndim != 2:
        raise ValueError(f"expected (C, H, W) or (H, W), got shape {arr.shape}")
    return Image.fromarray(np.round(np.clip(arr, 0.0, 1.0) * 255).astype(np.uint8))


def save_image(path: str | Path, image: torch.Tensor | np.ndarray | Image.Image) -> None:
    """Write an image atomically; the format follows the suffix (PNG, JPEG, BMP, WEBP)."""
    path = Path(path)
    fmt = SAVE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise MediaError(path, f"unsupported image suffix {path.suffix!r}; expected one of {sorted(SAVE_FORMATS)}")
    pil = image if isinstance(image, Image.Image) else to_pil(image)
    with atomic_open(path) as handle:
        pil.save(handle, format=fmt)

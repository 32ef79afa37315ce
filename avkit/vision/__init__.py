"""Vision: image file I/O and tensor transforms."""

from avkit.vision.io import image_size, load_image, save_image, to_pil
from avkit.vision.transforms import center_crop, normalize, resize

__all__ = ["center_crop", "image_size", "load_image", "normalize", "resize", "save_image", "to_pil"]

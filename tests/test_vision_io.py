"""Image loading: every Pillow mode to (3, H, W) in [0, 1]; bad files get a MediaError."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from avkit.errors import MediaError
from avkit.vision.io import image_size, load_image, save_image
from avkit.vision.transforms import center_crop, normalize, resize


def grey_ramp() -> np.ndarray:
    return np.tile(np.arange(0, 256, 16, dtype=np.uint8), (8, 1))  # 8 x 16


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "1", "CMYK", "LA"])
def test_modes_load_to_three_channels(tmp_path, mode):
    img = Image.fromarray(grey_ramp(), mode="L").convert(mode)
    path = tmp_path / ("x.png" if mode != "CMYK" else "x.jpg")
    img.save(path)
    out = load_image(path)
    assert out.shape == (3, 8, 16)
    assert out.dtype == torch.float32
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0


def test_grey_values_are_scaled_by_255(tmp_path):
    Image.fromarray(grey_ramp(), mode="L").save(tmp_path / "g.png")
    out = load_image(tmp_path / "g.png")
    assert out[0, 0, 1].item() == pytest.approx(16 / 255)
    assert torch.equal(out[0], out[2])


def test_sixteen_bit_grey(tmp_path):
    arr = np.array([[0, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(arr).save(tmp_path / "deep.png")
    out = load_image(tmp_path / "deep.png")
    assert out.shape == (3, 1, 3)
    assert out[0, 0].tolist() == pytest.approx([0.0, 32768 / 65535, 1.0], abs=1e-6)


def test_rgba_is_composited_over_background(tmp_path):
    arr = np.zeros((2, 2, 4), dtype=np.uint8)
    arr[..., 0] = 255
    arr[0, 0, 3] = 255  # one opaque red pixel, the rest transparent
    Image.fromarray(arr, mode="RGBA").save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png")
    assert out[:, 0, 0].tolist() == [1.0, 0.0, 0.0]
    assert out[:, 1, 1].tolist() == [0.0, 0.0, 0.0]
    assert load_image(tmp_path / "a.png", background=(255, 255, 255))[:, 1, 1].tolist() == [1.0, 1.0, 1.0]


def test_missing_empty_corrupt_and_truncated(tmp_path):
    with pytest.raises(MediaError, match="nope.png: file does not exist"):
        load_image(tmp_path / "nope.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(MediaError, match="empty.png: file is empty"):
        load_image(tmp_path / "empty.png")
    (tmp_path / "junk.png").write_bytes(b"\x89PNG not really" * 20)
    with pytest.raises(MediaError, match="junk.png: cannot be decoded as an image"):
        load_image(tmp_path / "junk.png")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(tmp_path / "t.png")
    data = (tmp_path / "t.png").read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match="t.png: cannot be decoded as an image"):
        load_image(tmp_path / "t.png")


def test_save_round_trip_and_size(tmp_path):
    img = torch.rand(3, 5, 7)
    save_image(tmp_path / "r.png", img)
    back = load_image(tmp_path / "r.png")
    assert back.shape == (3, 5, 7)
    assert (back - img).abs().max() <= 0.5 / 255 + 1e-6
    assert image_size(tmp_path / "r.png") == (7, 5)
    with pytest.raises(MediaError, match="unsupported image suffix"):
        save_image(tmp_path / "r.tga", img)


def test_resize_crop_normalize():
    img = torch.rand(3, 40, 60)
    assert resize(img, 20).shape == (3, 20, 30)
    assert resize(img.unsqueeze(0), (10, 10)).shape == (1, 3, 10, 10)
    assert center_crop(img, 32).shape == (3, 32, 32)
    with pytest.raises(ValueError, match="larger than the image"):
        center_crop(img, 50)
    out = normalize(torch.full((3, 2, 2), 0.5), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    assert torch.allclose(out, torch.zeros(3, 2, 2))


def test_an_image_with_too_many_pixels_is_refused_before_decoding(tmp_path, monkeypatch):
    from PIL import Image

    from avkit.errors import MediaError
    from avkit.vision import io as vision_io

    Image.new("L", (40, 30)).save(tmp_path / "big.png")
    monkeypatch.setattr(vision_io, "MAX_PIXELS", 1000)
    with pytest.raises(MediaError, match=r"big.png: image is 40x30 pixels, more than avkit decodes \(1,000\)"):
        vision_io.load_image(tmp_path / "big.png")


def test_a_gallery_tile_that_cannot_be_read_costs_only_its_tile(tmp_path, caplog):
    from PIL import Image

    from avkit.retrieval.gallery import plot_gallery
    from avkit.retrieval.index import Hit

    Image.new("RGB", (32, 32), (200, 10, 10)).save(tmp_path / "good.png")
    (tmp_path / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    hits = [Hit("bad", 0.9, {"path": str(tmp_path / "passwd")}), Hit("good", 0.8, {"path": str(tmp_path / "good.png")})]
    plot_gallery("image", tmp_path / "good.png", "image", hits, tmp_path / "g.png")
    assert (tmp_path / "g.png").stat().st_size > 1000
    assert "cannot draw" in caplog.text and "passwd" in caplog.text


def test_a_decompression_bomb_is_refused_and_costs_only_its_gallery_tile(tmp_path):
    """A 12,000 x 12,000 PNG of a few hundred KB: refused before decoding; a gallery draws the rest."""
    from PIL import Image

    from avkit.retrieval.gallery import plot_gallery
    from avkit.retrieval.index import Hit
    from avkit.vision.io import load_image

    bomb = tmp_path / "bomb.png"
    Image.new("L", (20000, 20000)).save(bomb, optimize=True)  # over Pillow's own limit: it raises, not warns
    with pytest.raises(MediaError, match=r"bomb\.png: image is larger than avkit decodes"):
        load_image(bomb)
    good = tmp_path / "good.png"
    Image.new("RGB", (8, 8), (255, 0, 0)).save(good)
    hits = [Hit("bomb", 0.9, {"path": str(bomb)}), Hit("passwd", 0.8, {"path": "/etc/passwd"}), Hit("ok", 0.7, {"path": str(good)})]
    plot_gallery("image", good, "image", hits, tmp_path / "g.png")
    assert (tmp_path / "g.png").stat().st_size > 0

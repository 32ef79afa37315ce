"""Encoders from the registry: documented shapes, feature maps, gradients, clear errors."""

from __future__ import annotations

import pytest
import torch

from avkit.errors import ConfigError
from avkit.models import create_encoder, list_encoders
from avkit.registry import Registry


def test_registry_lists_and_creates():
    assert list_encoders() == ["image_hourglass", "image_resnet", "logmel_cnn", "soundnet"]
    assert list_encoders("*cnn") == ["logmel_cnn"]
    with pytest.raises(ConfigError, match=r"unknown encoder 'vit'; known: \['image_hourglass', 'image_resnet'"):
        create_encoder("vit")
    with pytest.raises(ConfigError, match="bad arguments"):
        create_encoder("logmel_cnn", depth=3)


def test_registry_does_not_mistake_a_bug_inside_a_factory_for_bad_arguments():
    reg: Registry[object] = Registry("thing")

    @reg.register("broken")
    def broken(size: int = 1) -> object:
        return len(size)  # a TypeError inside the factory: a bug, not the caller's arguments

    with pytest.raises(TypeError, match="has no len"):
        reg.create("broken", size=3)


def test_registry_refuses_a_second_owner_of_a_name():
    reg: Registry[object] = Registry("thing")
    reg.register("a")(dict)
    with pytest.raises(ConfigError, match="already registered"):
        reg.register("a")(list)


def test_logmel_cnn_shapes_and_feature_info():
    enc = create_encoder("logmel_cnn", width=8)
    out = enc(torch.randn(2, 1, 64, 101))
    info = enc.feature_info
    assert info.input == "logmel" and out.pooled.shape == (2, info.pooled_dim) == (2, 64)
    assert out.feature_map.shape == (2, 64, 4, 6) and info.map().channels == 64 and info.map().stride == (16, 16)
    assert enc(torch.randn(2, 64, 101)).pooled.shape == (2, 64)


def test_soundnet_exposes_pool5_with_its_stride():
    enc = create_encoder("soundnet", width_mult=0.25)
    out = enc(torch.randn(2, 16000))
    info = enc.feature_info
    assert info.input == "waveform" and out.pooled.shape == (2, info.pooled_dim) == (2, 256)
    assert out.intermediates["pool5"].shape[:2] == (2, info.map("pool5").channels) == (2, 64)
    assert info.map("pool5").stride == (2**5 * 8 * 8 * 4,) and info.map().stride == (2**7 * 8 * 8 * 4,)
    with pytest.raises(ValueError, match="pool5"):
        create_encoder("soundnet", layers=4)


def test_image_resnet_map_vector_and_stride():
    enc = create_encoder("image_resnet", width=16, stages=3)
    out = enc(torch.randn(2, 3, 32, 32))
    assert out.feature_map.shape == (2, 64, 8, 8) and enc.feature_info.map().stride == (4, 4)
    assert torch.allclose(out.pooled, out.feature_map.mean(dim=(-2, -1)))


@pytest.mark.parametrize("stem_stride", [1, 2])
def test_image_resnet_declares_where_its_cells_look(stem_stride):
    """The declared centre of cell i (0.5 + stride * i, continuous pixels) is where its receptive field's mass
    lies: with positive weights, the centroid of the input gradient of one cell."""
    enc = create_encoder("image_resnet", width=4, stages=3, stem_stride=stem_stride).eval()
    with torch.no_grad():
        for m in enc.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.abs_()  # no cancellation: the gradient is the receptive field's weight
    fmap = enc.feature_info.map()
    x = torch.rand(1, 3, 64, 64, requires_grad=True)
    out = enc(x).feature_map
    i = out.shape[-1] // 2
    out[0, :, i, i].sum().backward()
    weight = x.grad.abs().sum(1)[0]
    pos = torch.arange(64) + 0.5
    centroid = ((weight.sum(1) * pos).sum() / weight.sum(), (weight.sum(0) * pos).sum() / weight.sum())
    expected = [c + s * i for c, s in zip(fmap.centres(), fmap.stride)]
    assert fmap.centre == (0.5, 0.5)
    assert [float(c) for c in centroid] == pytest.approx(expected, abs=0.25)
    assert expected[0] != pytest.approx(fmap.stride[0] * (i + 0.5))  # not where tiling cells would put it


def test_lengths_pool_only_the_valid_cells_of_a_padded_batch():
    torch.manual_seed(0)  # the margin below depends on the initial weights (0.28-0.89 over 20 seeds)
    enc = create_encoder("logmel_cnn", width=4).eval()
    x = torch.randn(1, 64, 64)
    padded = torch.cat([x, torch.full((1, 64, 64), -100.0)], dim=-1)  # 64 valid frames, then 64 of padding
    out = enc(padded, lengths=torch.tensor([64]))
    assert out.map_lengths.tolist() == [4]  # 64 frames / stride 16
    assert torch.allclose(out.pooled, out.feature_map[..., :4].mean(dim=(-2, -1)))
    # cells next to the padding still see it through the convolutions, so the match is close, not exact
    alone = enc(x).pooled
    assert (out.pooled - alone).norm() < (enc(padded).pooled - alone).norm()


@pytest.mark.parametrize("encoder,shape", [("logmel_cnn", (2, 16000)), ("soundnet", (2, 16000)), ("image_resnet", (2, 3, 32, 32))])
def test_gradients_reach_the_towers_input(encoder, shape):
    from avkit.models import Tower, TowerConfig

    tower = Tower("image" if encoder == "image_resnet" else "audio", TowerConfig(encoder={"name": encoder}))
    x = torch.randn(*shape, requires_grad=True)  # the waveform itself for logmel_cnn: through the front-end
    tower(x).pooled.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0

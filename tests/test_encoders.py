"""Encoders from the registry: documented shapes, feature maps, gradients, clear errors."""

from __future__ import annotations

import pytest
import torch

from avkit.errors import ConfigError
from avkit.models import create_encoder, list_encoders
from avkit.registry import Registry


def test_registry_lists_and_creates():
    assert list_encoders() == ["image_resnet", "logmel_cnn", "soundnet"]
    assert list_encoders("*cnn") == ["logmel_cnn"]
    with pytest.raises(ConfigError, match=r"unknown encoder 'vit'; known: \['image_resnet'"):
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


def test_logmel_cnn_shapes():
    enc = create_encoder("logmel_cnn", width=8, input="logmel")
    out = enc(torch.randn(2, 1, 64, 101))
    assert out.pooled.shape == (2, enc.out_dim) == (2, 64)
    assert out.feature_map.shape == (2, 64, 4, 6)
    assert enc(torch.randn(2, 64, 101)).pooled.shape == (2, 64)
    from_wave = create_encoder("logmel_cnn", width=8)  # the front-end is part of the encoder
    assert from_wave(torch.randn(2, 16000)).feature_map.shape == (2, 64, 4, 6)


def test_soundnet_exposes_pool5():
    enc = create_encoder("soundnet", width_mult=0.25)
    out = enc(torch.randn(2, 16000))
    assert out.pooled.shape == (2, enc.out_dim) == (2, 256)
    assert out.intermediates["pool5"].shape[:2] == (2, 64)
    with pytest.raises(ValueError, match="pool5"):
        create_encoder("soundnet", layers=4)


def test_image_resnet_map_and_vector():
    enc = create_encoder("image_resnet", width=16, stages=3)
    out = enc(torch.randn(2, 3, 32, 32))
    assert out.feature_map.shape == (2, 64, 8, 8)
    assert torch.allclose(out.pooled, out.feature_map.mean(dim=(-2, -1)))


@pytest.mark.parametrize("name,shape", [("logmel_cnn", (2, 16000)), ("soundnet", (2, 16000)), ("image_resnet", (2, 3, 32, 32))])
def test_gradients_reach_the_input(name, shape):
    enc = create_encoder(name)
    x = torch.randn(*shape, requires_grad=True)
    enc(x).pooled.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0

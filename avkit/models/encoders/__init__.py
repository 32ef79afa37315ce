"""Encoders, registered by name: ``create_encoder("logmel_cnn")``, ``list_encoders()``."""

from avkit.models.encoders.audio import LogMelCNN, SoundNet1d
from avkit.models.encoders.base import (
    ENCODERS,
    EncoderOutput,
    FeatureInfo,
    FeatureMap,
    conv_bn_relu,
    map_lengths,
    masked_mean,
)
from avkit.models.encoders.hourglass import StackedHourglass
from avkit.models.encoders.image import ImageResNet


def create_encoder(name: str, **kwargs: object):  # noqa: ANN201 (returns the registered nn.Module)
    """Build a registered encoder by name, with keyword arguments for its constructor."""
    return ENCODERS.create(name, **kwargs)


def list_encoders(pattern: str = "*") -> list[str]:
    """Names of registered encoders matching a shell-style pattern."""
    return ENCODERS.names(pattern)


__all__ = ["ENCODERS", "EncoderOutput", "FeatureInfo", "FeatureMap", "ImageResNet", "LogMelCNN", "SoundNet1d",
           "StackedHourglass", "conv_bn_relu", "create_encoder", "list_encoders", "map_lengths", "masked_mean"]  # fmt: skip

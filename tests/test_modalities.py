"""The modality registry: built-ins, lookups, errors, and the encoders each offers."""

from __future__ import annotations

import pytest
import torch

import avkit
from avkit.errors import ConfigError, MediaError
from avkit.modalities import Modality, get_modality, list_modalities, register_modality
from avkit.modalities.base import MODALITIES
from avkit.models import Tower, TowerConfig


def test_builtins_are_registered_and_reachable_from_the_top_level():
    assert {"audio", "image"} <= set(list_modalities())
    assert avkit.list_modalities() == list_modalities()
    assert avkit.register_modality is register_modality
    assert get_modality("audio").metadata["sample_rate"] == 16000
    with pytest.raises(ConfigError, match=r"unknown modality 'smell'; known: \["):
        get_modality("smell")


def test_a_second_owner_of_a_name_is_refused_unless_replacing():
    mod = Modality("tmp_mod", load=lambda p: torch.zeros(2), preprocess=lambda x: x, encoders=("image_resnet",))
    try:
        register_modality(mod)
        with pytest.raises(ConfigError, match="already registered"):
            register_modality(Modality("tmp_mod", load=lambda p: 0, preprocess=lambda x: x, encoders=("soundnet",)))
        register_modality(Modality("tmp_mod", load=lambda p: 0, preprocess=lambda x: x, encoders=("soundnet",)), replace=True)
        assert get_modality("tmp_mod").encoders == ("soundnet",)
    finally:
        MODALITIES.unregister("tmp_mod")
    with pytest.raises(ConfigError, match="at least one encoder"):
        register_modality(Modality("tmp_mod", load=lambda p: 0, preprocess=lambda x: x, encoders=()))


def test_preprocessed_items_have_one_shape(small_digits, speechlike, tmp_path):
    from avkit.audio.io import save_audio

    short = tmp_path / "short.wav"
    save_audio(short, speechlike[:4000], 16000)
    long = tmp_path / "long.flac"
    save_audio(long, speechlike.repeat(3), 22050)  # resampled, then centre-cropped
    audio = get_modality("audio").make_pipeline()
    assert audio.load_tensor(short).shape == audio.load_tensor(long).shape == (16000,)
    img = next((small_digits / "images").iterdir())
    assert get_modality("image").make_pipeline().load_tensor(img).shape == (3, 32, 32)
    # per-tower settings: another clip length and image size, with only a config change
    assert get_modality("audio").make_pipeline({"seconds": 0.5}).load_tensor(long).shape == (8000,)
    assert get_modality("image").make_pipeline({"size": 20}).load_tensor(img).shape == (3, 20, 20)


def test_a_file_of_the_wrong_modality_is_named_in_the_error(small_digits):
    wav = next((small_digits / "audio").iterdir())
    with pytest.raises(MediaError, match=rf"{wav.name}: cannot be decoded as an image"):
        get_modality("image").make_pipeline().load_tensor(wav)
    png = next((small_digits / "images").iterdir())
    with pytest.raises(MediaError, match=rf"{png.name}: cannot be decoded as audio"):
        get_modality("audio").make_pipeline().load_tensor(png)


def test_a_tower_checks_the_modality_offers_its_encoder_and_adds_the_front_end_it_needs():
    soundnet = Tower("audio", TowerConfig(encoder={"name": "soundnet", "width_mult": 0.125}))
    assert soundnet.feature_info.pooled_dim == 128 and soundnet.frontend is None  # raw waveform in
    default = Tower("audio", TowerConfig())
    assert type(default.encoder).__name__ == "LogMelCNN" and default.frontend is not None  # log-mels from waveforms
    with pytest.raises(ConfigError, match=r"tower 'audio': encoder 'image_resnet' does not take 'audio' input; audio offers"):
        Tower("audio", TowerConfig(encoder={"name": "image_resnet"}))
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) \['preprocess.secs'\]"):
        Tower("audio", TowerConfig(preprocess={"secs": 2}))


def test_the_two_forms_of_a_modality_are_checked_when_registered():
    with pytest.raises(ConfigError, match="give either load and preprocess, or settings and pipeline"):
        register_modality(Modality("tmp_mod", encoders=("image_resnet",)))
    from dataclasses import dataclass

    from avkit.modalities import Pipeline

    @dataclass
    class Settings:
        size: int = 8

    class BoxedPipeline(Pipeline):  # takes boxes, but cannot tell whether they fit its items
        takes_boxes = True

        def __init__(self, settings: Settings, augment: None = None) -> None: ...

    with pytest.raises(ConfigError, match="tmp_mod'.*takes boxes, so it must define check_boxes"):
        register_modality(Modality("tmp_mod", settings=Settings, pipeline=BoxedPipeline, encoders=("image_resnet",)))
    assert "tmp_mod" not in list_modalities()


@pytest.mark.parametrize(("modality", "settings", "augment", "field"), [
    ("audio", {"seconds": "nan"}, None, "seconds"),
    ("audio", {}, {"shift_seconds": "nan"}, "shift_seconds"),
    ("audio", {}, {"gain_db": ["-inf", 3]}, "gain_db"),
    ("image", {}, {"crop_ratio": [1, "inf"]}, "crop_ratio"),
    ("image", {}, {"rotate_degrees": "nan"}, "rotate_degrees"),
])  # fmt: skip
def test_settings_and_augmentation_must_be_finite(modality, settings, augment, field):
    with pytest.raises(ConfigError, match=rf"{field}: must be finite"):
        get_modality(modality).make_pipeline(settings, augment)


def test_audio_settings_need_at_least_one_mel_band_and_none_empty():
    from avkit.errors import ConfigError
    from avkit.modalities import get_modality

    with pytest.raises(ConfigError, match="n_mels must be at least 1, got 0"):
        get_modality("audio").make_pipeline({"n_mels": 0})
    with pytest.raises(ConfigError, match="3 of n_mels 200 mel bands would be empty .* use fewer bands or a larger n_fft"):
        get_modality("audio").make_pipeline({"n_mels": 200})
    get_modality("audio").make_pipeline({"n_mels": 200, "n_fft": 1024, "win_length": 1024})  # finer FFT bins: fine

"""Audio loading: every bad input gets a MediaError naming the file; odd formats load correctly."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from avkit.audio.io import audio_duration, load_audio, save_audio
from avkit.errors import MediaError


def tone(sr: int, seconds: float = 0.5, f: float = 440.0) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * f * np.arange(int(sr * seconds)) / sr)).astype(np.float32)


def test_missing_file(tmp_path):
    with pytest.raises(MediaError, match="nope.wav: file does not exist"):
        load_audio(tmp_path / "nope.wav")


def test_empty_file(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(MediaError, match=r"empty.wav: file is empty \(0 bytes\)"):
        load_audio(tmp_path / "empty.wav")


def test_non_audio_bytes_under_wav_name(tmp_path):
    (tmp_path / "fake.wav").write_bytes(b"this is not a RIFF file at all" * 10)
    with pytest.raises(MediaError, match="fake.wav: cannot be decoded as audio"):
        load_audio(tmp_path / "fake.wav")


def test_truncated_header(tmp_path):
    path = tmp_path / "cut.wav"
    sf.write(path, tone(16000), 16000)
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(MediaError, match="cut.wav"):
        load_audio(path)


def test_truncated_data_loads_what_is_there(tmp_path):
    """A WAV whose data stops early (interrupted copy) yields the samples present."""
    path = tmp_path / "short.wav"
    sf.write(path, tone(16000, 1.0), 16000, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: 44 + 2 * 4000])
    wav = load_audio(path)
    assert 0 < wav.shape[0] <= 4000


def test_zero_length_audio(tmp_path):
    path = tmp_path / "zero.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(MediaError, match="zero.wav: contains no samples"):
        load_audio(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples(tmp_path, bad):
    data = tone(16000)
    data[123] = bad
    path = tmp_path / "nan.wav"
    sf.write(path, data, 16000, subtype="FLOAT")
    with pytest.raises(MediaError, match=r"nan.wav: contains 1 non-finite samples \(NaN or Inf\), the first at sample 123"):
        load_audio(path)


def test_stereo_is_mixed_down_or_refused(tmp_path):
    left, right = tone(16000), np.zeros(8000, dtype=np.float32)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    assert torch.allclose(load_audio(path), torch.from_numpy(left / 2))
    assert torch.allclose(load_audio(path, mixdown="first"), torch.from_numpy(left))
    with pytest.raises(MediaError, match="stereo.wav: has 2 channels; expected mono"):
        load_audio(path, mixdown="error")


@pytest.mark.parametrize("subtype,tol", [("PCM_U8", 1e-2), ("PCM_16", 1e-4), ("PCM_24", 1e-6), ("PCM_32", 1e-6), ("FLOAT", 1e-7)])
def test_bit_depths_decode_to_float32_in_range(tmp_path, subtype, tol):
    path = tmp_path / f"x_{subtype}.wav"
    ref = tone(16000)
    sf.write(path, ref, 16000, subtype=subtype)
    wav = load_audio(path)
    assert wav.dtype == torch.float32
    assert float(wav.abs().max()) <= 1.0
    assert np.abs(wav.numpy() - ref).max() < tol


@pytest.mark.parametrize("sr", [8000, 11025, 22050, 44100, 48000, 7919])
def test_odd_sample_rates_are_resampled(tmp_path, sr):
    path = tmp_path / f"sr{sr}.wav"
    sf.write(path, tone(sr, 0.5, f=440.0), sr)
    wav = load_audio(path, 16000)
    assert abs(wav.shape[0] - 8000) <= 1
    spectrum = np.abs(np.fft.rfft(wav.numpy()))
    assert abs(np.argmax(spectrum) * 16000 / len(wav) - 440) < 4  # the tone survives resampling


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".ogg"])
def test_save_and_load_round_trip(tmp_path, suffix):
    path = tmp_path / f"rt{suffix}"
    save_audio(path, torch.from_numpy(tone(16000)), 16000)
    wav = load_audio(path, 16000)
    assert abs(wav.shape[0] - 8000) < 200  # Vorbis may pad
    assert audio_duration(path) == pytest.approx(0.5, abs=0.02)
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_save_refuses_non_finite_and_unknown_suffix(tmp_path):
    with pytest.raises(MediaError, match="non-finite"):
        save_audio(tmp_path / "x.wav", np.array([0.0, np.nan], dtype=np.float32), 16000)
    with pytest.raises(MediaError, match="unsupported suffix '.mp3'"):
        save_audio(tmp_path / "x.mp3", tone(16000), 16000)
    assert not (tmp_path / "x.wav").exists()

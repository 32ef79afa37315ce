"""Audio loading: every bad input gets a MediaError naming the file; odd formats load correctly."""

from __future__ import annotations

import shutil

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
    with pytest.raises(MediaError, match=r"fake.wav: cannot be decoded as audio: expected a WAV, FLAC or OGG file, "
                       r"found a text file of 300 bytes \(libsndfile: Format not recognised.\)"):  # fmt: skip
        load_audio(tmp_path / "fake.wav")


@pytest.mark.parametrize("content, found", [
    (b"\x89PNG\r\n\x1a\n" + bytes(200), "a PNG image of 208 bytes"),
    (b"PK\x03\x04" + bytes(60), "a ZIP archive of 64 bytes"),
    (bytes(range(256)), r"a file of unrecognised format starting with b'\\x00\\x01"),
    (b"fLaC" + bytes(100), "a FLAC file of 104 bytes that is damaged or truncated"),
])  # fmt: skip
def test_an_undecodable_file_is_described_not_just_refused(tmp_path, content, found):
    """libsndfile's own words (``System error.``, ``Format not recognised.``) say little; the message says what was found."""
    (tmp_path / "x.wav").write_bytes(content)
    with pytest.raises(MediaError, match=rf"x.wav: cannot be decoded as audio: expected a WAV, FLAC or OGG file, found {found}"):
        load_audio(tmp_path / "x.wav")


def test_truncated_header(tmp_path):
    path = tmp_path / "cut.wav"
    sf.write(path, tone(16000), 16000)
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(MediaError, match="cut.wav"):
        load_audio(path)


def test_truncated_data_loads_what_is_there_with_a_warning_and_strict_refuses_it(tmp_path, caplog):
    """A WAV whose data stops early (interrupted copy) yields the samples present."""
    path = tmp_path / "short.wav"
    sf.write(path, tone(16000, 1.0), 16000, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: 44 + 2 * 4000])
    with caplog.at_level("WARNING", logger="avkit.audio.io"):
        wav = load_audio(path)
    assert wav.shape[0] == 4000
    assert ("short.wav: is truncated: its header promises 16,000 frames (1.00 s) but the file holds 4,000 (0.25 s); "
            "using the 4,000 frames it holds") in caplog.text
    with pytest.raises(MediaError, match=r"short.wav: is truncated: its header promises 16,000 frames .* refused in strict"):
        load_audio(path, strict=True)


def test_a_header_of_unknown_length_is_not_called_truncated(tmp_path, caplog):
    """Streaming writers put 0xFFFFFFFF in the data size when they cannot know it; that is not truncation."""
    path = tmp_path / "stream.wav"
    sf.write(path, tone(16000, 0.25), 16000, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    at = data.index(b"data") + 4
    data[at : at + 4] = b"\xff\xff\xff\xff"
    path.write_bytes(bytes(data))
    with caplog.at_level("WARNING", logger="avkit.audio.io"):
        assert load_audio(path, strict=True).shape[0] == 4000
    assert "truncated" not in caplog.text


def test_strict_datasets_and_checks_refuse_a_truncated_wav(small_digits, tmp_path):
    from avkit.data.check import check_manifest
    from avkit.data.dataset import ManifestDataset
    from avkit.modalities import get_modality

    data = tmp_path / "data"
    shutil.copytree(small_digits, data)
    victim = sorted((data / "audio").iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:-1000])
    report = check_manifest(data / "manifest.jsonl", modalities=["audio"])
    assert any(victim.name in p.message and "is truncated: its header promises" in p.message for p in report.problems)
    pipes = {"audio": get_modality("audio").make_pipeline()}
    with pytest.raises(MediaError, match=rf"{victim.name}: is truncated"):
        ManifestDataset(data / "manifest.jsonl", pipes, in_memory=True, strict=True)
    loose = ManifestDataset(data / "manifest.jsonl", pipes, in_memory=True)  # warned, and used
    assert not loose.skipped and not pipes["audio"].strict


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


@pytest.mark.parametrize("file_rate, rate, channels", [(16000, 16000, 1), (44100, 16000, 2), (22050, 16000, 1), (8000, 16000, 1)])
def test_audio_read_in_blocks_equals_the_whole_file(tmp_path, file_rate, rate, channels):
    """Blocks (resampled one by one, with context) concatenate to what load_audio gives for the whole file."""
    from avkit.audio.io import AudioBlocks

    x = 0.3 * np.random.default_rng(0).standard_normal((file_rate * 3 + 123, channels)).astype(np.float32)
    sf.write(tmp_path / "a.wav", x, file_rate, subtype="FLOAT")
    whole = load_audio(tmp_path / "a.wav", rate)
    blocks = AudioBlocks(tmp_path / "a.wav", rate, block_seconds=0.7)
    got = torch.cat(list(blocks))
    assert blocks.num_samples == whole.shape[0] == got.shape[0] and len(list(blocks)) == 5
    assert float((got - whole).abs().max()) < 1e-5


def test_audio_blocks_warn_about_truncation_and_name_bad_files(tmp_path, caplog):
    from avkit.audio.io import AudioBlocks

    sf.write(tmp_path / "a.wav", tone(16000, 1.0), 16000, subtype="PCM_16")
    (tmp_path / "a.wav").write_bytes((tmp_path / "a.wav").read_bytes()[: 44 + 2 * 4000])
    with caplog.at_level("WARNING", logger="avkit.audio.io"):
        assert AudioBlocks(tmp_path / "a.wav").num_samples == 4000
    assert "a.wav: is truncated: its header promises 16,000 frames" in caplog.text
    with pytest.raises(MediaError, match="refused in strict mode"):
        AudioBlocks(tmp_path / "a.wav", strict=True)
    (tmp_path / "b.wav").write_text("not audio")
    with pytest.raises(MediaError, match="b.wav: cannot be decoded as audio: expected a WAV, FLAC or OGG file, found a text"):
        AudioBlocks(tmp_path / "b.wav")

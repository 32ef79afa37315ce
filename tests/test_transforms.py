"""Front-end parity with librosa and scipy at matched settings, edge frames included."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import scipy.signal
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from avkit.audio.transforms import (
    AmplitudeToDB,
    LogMelSpectrogram,
    PowerSpectrum,
    Spectrogram,
    make_window,
)


def rel_err(ours: np.ndarray, ref: np.ndarray) -> float:
    """Max absolute difference relative to the reference's peak."""
    return float(np.abs(ours - ref).max() / np.abs(ref).max())


@pytest.mark.parametrize("pad_mode", ["constant", "reflect"])
@pytest.mark.parametrize("win,hop,n_fft", [(400, 160, 512), (256, 64, 256), (512, 128, 1024)])
def test_power_spectrogram_matches_librosa(speechlike, pad_mode, win, hop, n_fft):
    ours = Spectrogram(win, hop, n_fft, pad_mode=pad_mode)(torch.from_numpy(speechlike)).numpy()
    ref = np.abs(librosa.stft(speechlike, n_fft=n_fft, hop_length=hop, win_length=win, window="hamming",
                              center=True, pad_mode=pad_mode)) ** 2  # fmt: skip
    assert ours.shape == ref.shape
    assert rel_err(ours, ref) < 1e-4
    # The edge frames (where padding matters) match on their own scale too.
    for t in (0, 1, -2, -1):
        assert rel_err(ours[:, t], ref[:, t]) < 1e-4


def test_librosa_default_zero_padding_differs_from_reflect(speechlike):
    """Guard for the parity test: the pad mode really changes the edge frames."""
    x = torch.from_numpy(speechlike)
    a = Spectrogram(400, 160, 512, pad_mode="reflect")(x).numpy()
    b = Spectrogram(400, 160, 512, pad_mode="constant")(x).numpy()
    assert rel_err(a[:, 0], b[:, 0]) > 1e-2
    assert rel_err(a[:, 50], b[:, 50]) < 1e-6


def test_magnitude_spectrogram_matches_librosa(speechlike):
    ours = Spectrogram(400, 160, 512, pad_mode="constant", power=1.0)(torch.from_numpy(speechlike)).numpy()
    ref = np.abs(librosa.stft(speechlike, n_fft=512, hop_length=160, win_length=400, window="hamming"))
    assert rel_err(ours, ref) < 1e-4


def test_spectrum_scaling_matches_scipy_stft(speechlike):
    ours = Spectrogram(400, 160, 512, pad_mode="constant", scaling="spectrum")(torch.from_numpy(speechlike)).numpy()
    _, _, z = scipy.signal.stft(speechlike, fs=16000, window="hamming", nperseg=400, noverlap=240, nfft=512,
                                boundary="zeros", padded=True, scaling="spectrum")  # fmt: skip
    ref = np.abs(z) ** 2
    n = min(ours.shape[1], ref.shape[1])
    assert n >= 100
    assert rel_err(ours[:, :n], ref[:, :n]) < 1e-4
    assert rel_err(ours[:, 0], ref[:, 0]) < 1e-4


def test_logmel_matches_librosa_in_db(speechlike):
    ours = LogMelSpectrogram(pad_mode="constant")(torch.from_numpy(speechlike)).numpy()
    mel = librosa.feature.melspectrogram(y=speechlike, sr=16000, n_fft=512, hop_length=160, win_length=400,
                                         window="hamming", n_mels=64, pad_mode="constant")  # fmt: skip
    ref = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)
    assert ours.shape == ref.shape == (64, 101)
    assert np.abs(ours - ref).max() < 1e-3  # dB


def test_htk_mel_matches_torchaudio(speechlike):
    import torchaudio

    x = torch.from_numpy(speechlike)
    ours = LogMelSpectrogram(mel_scale="htk", norm=None)(x)
    ta = torchaudio.transforms.MelSpectrogram(16000, n_fft=512, win_length=400, hop_length=160, n_mels=64,
                                              window_fn=torch.hamming_window)  # fmt: skip
    ref = torchaudio.transforms.AmplitudeToDB("power")(ta(x))
    assert torch.allclose(ours, ref, atol=1e-3)


def test_power_spectrum_of_one_window_matches_numpy():
    rng = np.random.default_rng(1)
    seg = rng.standard_normal(400).astype(np.float32)
    ours = PowerSpectrum(400, 512)(torch.from_numpy(seg)).numpy()
    w = scipy.signal.get_window("hamming", 400)  # periodic
    padded = np.zeros(512)
    padded[56:456] = seg * w  # centred in the FFT frame, as torch.stft does
    ref = np.abs(np.fft.rfft(padded)) ** 2
    assert ours.shape == (257,)
    assert rel_err(ours, ref) < 1e-5


def test_power_spectrum_finds_a_tone():
    sr, f = 16000, 1000.0
    tone = torch.sin(2 * torch.pi * f * torch.arange(400) / sr)
    power = PowerSpectrum(400, 512, scaling="spectrum")(tone)
    assert abs(int(power.argmax()) * sr / 512 - f) <= sr / 512
    # Spectrum scaling reads a sine of amplitude 1 as peak |X| of about 1/2.
    assert 0.2 < float(power.max()) < 0.26


def test_windows_periodic_and_symmetric():
    assert np.allclose(make_window("hamming", 400, periodic=True).numpy(), scipy.signal.get_window("hamming", 400))
    assert np.allclose(make_window("hamming", 400, periodic=False).numpy(), np.hamming(400))
    with pytest.raises(ValueError, match="unknown window"):
        make_window("kaiser", 10)  # type: ignore[arg-type]


def test_hamming_reduces_leakage_against_rectangular():
    """The reason for the window: an off-bin tone leaks far less energy into distant bins."""
    sr, n = 16000, 512
    tone = torch.sin(2 * torch.pi * 1015.6 * torch.arange(n) / sr)
    far = slice(100, 257)
    ham = PowerSpectrum(n, window="hamming")(tone)
    rect = PowerSpectrum(n, window="rectangular")(tone)
    # Measured: about 70x less relative leakage beyond 60 bins; require at least 20x.
    assert (ham[far].max() / ham.max()) < (rect[far].max() / rect.max()) / 20


def test_shapes_batches_and_frames():
    spec = Spectrogram(400, 160, 512)
    x = torch.randn(2, 3, 16000)
    out = spec(x)
    assert out.shape == (2, 3, 257, 101)
    assert spec.num_frames(16000) == 101
    assert torch.allclose(out[1, 2], spec(x[1, 2]), atol=1e-5)
    no_center = Spectrogram(400, 160, 512, center=False)
    assert no_center(x).shape[-1] == no_center.num_frames(16000) == 1 + (16000 - 512) // 160


def test_cpu_chunking_gives_the_same_result():
    x = torch.randn(70, 4000)
    chunked = LogMelSpectrogram(cpu_chunk=16)(x)
    whole = LogMelSpectrogram(cpu_chunk=None)(x)
    assert torch.allclose(chunked, whole, atol=1e-4)


def test_short_input_is_zero_padded_to_n_fft():
    spec = Spectrogram(400, 160, 512)
    short = torch.randn(100)
    out = spec(short)
    assert out.shape == (257, spec.num_frames(100)) == (257, 4)
    padded = torch.nn.functional.pad(short, (0, 412))
    assert torch.allclose(out, spec(padded))
    assert spec(torch.randn(1)).shape[-1] >= 1


def test_gradients_flow_and_module_moves():
    x = torch.randn(2, 4000, requires_grad=True)
    frontend = LogMelSpectrogram()
    frontend(x).mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert frontend.to(torch.float64)(x.double()).dtype == torch.float64


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="n_fft"):
        Spectrogram(win_length=512, n_fft=256)
    with pytest.raises(ValueError, match="hop_length"):
        Spectrogram(hop_length=0)
    with pytest.raises(ValueError, match="f_max"):
        LogMelSpectrogram(f_max=9000)
    with pytest.raises(ValueError, match="expects frames"):
        PowerSpectrum(400, 512)(torch.randn(300))
    with pytest.raises(TypeError, match="floating-point"):
        Spectrogram()(torch.zeros(1000, dtype=torch.int16))


def test_amplitude_to_db_top_db_is_per_item():
    x = torch.stack([torch.full((2, 3), 1.0), torch.full((2, 3), 1e-6)])
    x[0, 0, 0] = 1e-12
    db = AmplitudeToDB(top_db=80)(x)
    assert float(db[0].min()) == pytest.approx(-80.0)
    assert float(db[1].min()) == pytest.approx(-60.0)


def reference_power(x: np.ndarray, win: int, hop: int, n_fft: int, pad_mode: str) -> np.ndarray:
    """The textbook definition in float64: pad the whole signal, frame, window (centred), |rfft|^2."""
    padded = np.pad(x.astype(np.float64), n_fft // 2, mode=pad_mode)
    window = np.zeros(n_fft)
    left = (n_fft - win) // 2
    window[left : left + win] = scipy.signal.get_window("hamming", win)
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    return (np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2).T


def test_librosa_reflect_tail_frame_departs_from_the_definition():
    """Why the property test below uses its own reference for reflect padding.

    librosa 0.11 pads the tail of the signal separately; with reflect padding its
    last frame can differ from the reflect-padded definition (6% here), while
    avkit and torch.stft both follow the definition.
    """
    x = np.random.default_rng(451).standard_normal(451).astype(np.float32)
    ref = reference_power(x, 16, 11, 16, "reflect")
    ours = Spectrogram(16, 11, 16, pad_mode="reflect")(torch.from_numpy(x)).numpy()
    lib = np.abs(librosa.stft(x, n_fft=16, hop_length=11, win_length=16, window="hamming", pad_mode="reflect")) ** 2
    assert rel_err(ours, ref) < 1e-5
    assert rel_err(lib[:, -1], ref[:, -1]) > 1e-2


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=3000),
    win=st.integers(min_value=16, max_value=512),
    hop_frac=st.floats(min_value=0.1, max_value=1.0),
    extra_fft=st.integers(min_value=0, max_value=256),
    pad_mode=st.sampled_from(["constant", "reflect"]),
)
def test_any_shape_matches_the_definition(n, win, hop_frac, extra_fft, pad_mode):
    """Property: for any length, window, hop and n_fft, frame count and values match the definition."""
    hop = max(1, int(win * hop_frac))
    n_fft = win + extra_fft
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    ours = Spectrogram(win, hop, n_fft, pad_mode=pad_mode)
    out = ours(torch.from_numpy(x)).numpy()
    # Rule: shorter than n_fft -> zero-padded on the right to n_fft first.
    ref = reference_power(np.pad(x, (0, max(0, n_fft - n))), win, hop, n_fft, pad_mode)
    assert out.shape == ref.shape
    assert out.shape[-1] == ours.num_frames(n)
    assert rel_err(out, ref) < 1e-4
    if pad_mode == "constant" and n >= n_fft:
        lib = np.abs(librosa.stft(x, n_fft=n_fft, hop_length=hop, win_length=win, window="hamming",
                                  pad_mode="constant")) ** 2  # fmt: skip
        assert rel_err(out, lib) < 1e-4


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=6000),
    win=st.integers(min_value=16, max_value=512),
    hop_frac=st.floats(min_value=0.1, max_value=1.5),
    extra_fft=st.integers(min_value=0, max_value=256),
    block=st.integers(min_value=1, max_value=2500),
    center=st.booleans(),
)
def test_a_spectrogram_streamed_in_blocks_equals_the_whole(n, win, hop_frac, extra_fft, block, center):
    """Property: any signal cut into blocks of any size gives, piece by piece, the spectrogram of the whole."""
    sp = Spectrogram(win, max(1, int(win * hop_frac)), win + extra_fft, center=center)
    x = torch.from_numpy(np.random.default_rng(n).standard_normal(n).astype(np.float32))
    whole = sp(x)
    streamed = torch.cat(list(sp.stream(x.split(block))), dim=-1)
    assert streamed.shape == whole.shape
    assert torch.allclose(streamed, whole, rtol=1e-5, atol=1e-6 * float(whole.abs().max()))

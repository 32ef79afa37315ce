"""The three views of a sound, computed block by block at the resolution they are drawn."""

from __future__ import annotations

import numpy as np
import soundfile as sf
import torch

from avkit.audio.io import AudioBlocks, load_audio
from avkit.audio.plot import COLUMNS, audio_overview, loudest_window, plot_three_views
from avkit.audio.transforms import Spectrogram


def _signal(seconds: float, sr: int = 8000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    loud = (t > seconds * 0.6) & (t < seconds * 0.6 + 0.05)  # one burst: the loudest window is there
    return (0.1 * np.sin(2 * np.pi * 440 * t) + 0.8 * loud * np.sin(2 * np.pi * 1500 * t)).astype(np.float32)


def test_a_short_sound_is_drawn_sample_by_sample_and_frame_by_frame(tmp_path):
    wav = torch.from_numpy(_signal(0.15))  # 1,200 samples: fewer than the columns
    view = audio_overview([wav], wav.shape[0], 8000)
    assert view.samples_per_column == 1 and np.array_equal(view.envelope[:, 0], wav.numpy())
    assert view.frames_per_column == 1 and torch.allclose(view.spectrogram, Spectrogram(400, 160, 512)(wav))
    assert view.window_start == loudest_window(wav, 400) and torch.equal(view.window, wav[view.window_start:][:400])


def test_a_long_file_in_blocks_gives_what_the_whole_signal_gives_at_bounded_columns(tmp_path):
    sf.write(tmp_path / "long.wav", _signal(150.0), 8000, subtype="PCM_16")
    blocks = AudioBlocks(tmp_path / "long.wav", 8000, block_seconds=7.0)
    whole = load_audio(tmp_path / "long.wav", 8000)
    streamed, at_once = audio_overview(blocks, blocks.num_samples, 8000), audio_overview([whole], whole.shape[0], 8000)
    assert streamed.envelope.shape[0] <= COLUMNS and streamed.spectrogram.shape[-1] <= COLUMNS
    assert streamed.samples_per_column > 1 and streamed.frames_per_column > 1
    assert np.allclose(streamed.envelope, at_once.envelope)
    assert torch.allclose(streamed.spectrogram, at_once.spectrogram, rtol=1e-4, atol=1e-9)
    assert streamed.window_start == at_once.window_start == loudest_window(whole, 400)
    assert abs(streamed.window_start / 8000 - 90.0) < 0.05  # the burst at 60% of 150 s
    fig = plot_three_views(blocks, title="long.wav")
    assert "mean of" in fig.axes[2].get_title() and fig.axes[0].get_xlim()[1] == 150.0

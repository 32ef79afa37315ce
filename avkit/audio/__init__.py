"""Audio: file I/O, the spectrogram front-end and plots."""

from avkit.audio.io import AudioBlocks, audio_duration, load_audio, read_audio, save_audio
from avkit.audio.transforms import (
    AmplitudeToDB,
    LogMelSpectrogram,
    MelScale,
    PowerSpectrum,
    Spectrogram,
    make_window,
)

__all__ = [
    "AudioBlocks",
    "AmplitudeToDB",
    "LogMelSpectrogram",
    "MelScale",
    "PowerSpectrum",
    "Spectrogram",
    "audio_duration",
    "load_audio",
    "make_window",
    "read_audio",
    "save_audio",
]

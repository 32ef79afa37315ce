"""The ``audio`` modality: a mono waveform, cut or padded to the tower's clip length.

Per-tower settings (:class:`AudioSettings`) fix the sample rate, the clip length
and the log-mel front-end; per-run augmentation (:class:`AudioAugment`) adds
random shifts, gain, noise, speed perturbation and SpecAugment in training.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from avkit.audio.augment import SpecAugment, add_noise, change_speed, crop_or_pad, random_shift
from avkit.audio.io import AUDIO_EXPECTED, AudioBlocks, audio_from_bytes, load_audio
from avkit.audio.transforms import LogMelSpectrogram
from avkit.config import require_finite
from avkit.errors import ConfigError
from avkit.modalities.base import Modality, Pipeline, register_modality
from avkit.video.io import read_audio_at


@dataclass
class AudioSettings:
    """An audio tower's preprocessing.

    Attributes:
        sample_rate: every file is resampled to this rate, Hz.
        seconds: clip length: longer clips are cropped (centre in evaluation,
            random in training), shorter ones zero-padded at the end. None keeps
            every clip whole; batches are then padded and carry lengths.
        win_length, hop_length, n_fft, n_mels, top_db: the log-mel front-end
            (Hamming window A, hop B), used when the encoder takes log-mels.
    """

    sample_rate: int = 16000
    seconds: float | None = 1.0
    win_length: int = 400
    hop_length: int = 160
    n_fft: int = 512
    n_mels: int = 64
    top_db: float | None = 80.0

    def __post_init__(self) -> None:
        require_finite(self)
        if self.sample_rate <= 0 or (self.seconds is not None and self.seconds <= 0):
            raise ConfigError(f"audio settings: sample_rate and seconds must be positive, got {self.sample_rate}, {self.seconds}")
        if self.n_mels < 1:
            raise ConfigError(f"audio settings: n_mels must be at least 1, got {self.n_mels}")
        if not 0 < self.win_length <= self.n_fft or self.hop_length <= 0:
            raise ConfigError(f"audio settings: need 0 < win_length <= n_fft and hop_length > 0, got "
                              f"win {self.win_length}, n_fft {self.n_fft}, hop {self.hop_length}")  # fmt: skip
        with warnings.catch_warnings():  # torchaudio warns about empty bands; the error below says it better
            warnings.simplefilter("ignore")
            empty = int((self.frontend().mel.fb_t.amax(1) == 0).sum())
        if empty:
            raise ConfigError(f"audio settings: {empty} of n_mels {self.n_mels} mel bands would be empty (narrower "
                              f"than one of the {self.n_fft // 2 + 1} FFT bins); use fewer bands or a larger n_fft")  # fmt: skip

    @property
    def num_samples(self) -> int | None:
        return None if self.seconds is None else round(self.seconds * self.sample_rate)

    def frontend(self) -> LogMelSpectrogram:
        return LogMelSpectrogram(self.sample_rate, self.n_fft, self.win_length, self.hop_length, self.n_mels, top_db=self.top_db)


@dataclass
class AudioAugment:
    """Training augmentation of an audio tower (each item draws its own values).

    Attributes:
        shift_seconds: move the content by up to ± this, filling with silence.
        speed: speed-perturbation factors, one drawn per item (tempo and pitch
            together, as Kaldi's ``0.9, 1.0, 1.1``); empty: off.
        gain_db: a gain drawn from this range.
        noise_snr_db: add white, pink or brown noise at an SNR drawn from this range; None: off.
        noise_p: the probability that an item gets noise.
        time_masks, time_mask_frames, freq_masks, freq_mask_bins: SpecAugment
            on the log-mel (masks per item, and each mask's maximum width).
    """

    shift_seconds: float = 0.0
    speed: list[float] = field(default_factory=list)
    gain_db: tuple[float, float] = (0.0, 0.0)
    noise_snr_db: tuple[float, float] | None = None
    noise_p: float = 1.0
    time_masks: int = 0
    time_mask_frames: int = 0
    freq_masks: int = 0
    freq_mask_bins: int = 0

    def __post_init__(self) -> None:
        require_finite(self)
        if any(f <= 0 for f in self.speed):
            raise ConfigError(f"speed: factors must be positive, got {self.speed}")
        for name in ("gain_db", "noise_snr_db"):
            span = getattr(self, name)
            if span is not None and (len(span) != 2 or span[0] > span[1]):
                raise ConfigError(f"{name}: a range [low, high] with low <= high, got {list(span)}")
        if not 0 <= self.noise_p <= 1 or self.shift_seconds < 0:
            raise ConfigError(f"noise_p must lie in [0, 1] and shift_seconds be >= 0, got "
                              f"{self.noise_p}, {self.shift_seconds}")  # fmt: skip
        for count, width in (("time_masks", "time_mask_frames"), ("freq_masks", "freq_mask_bins")):
            if getattr(self, count) < 0 or getattr(self, width) < 0 or (getattr(self, count) > 0) != (getattr(self, width) > 0):
                raise ConfigError(f"{count} and {width}: both positive (masks on) or both 0, got "
                                  f"{getattr(self, count)} and {getattr(self, width)}")  # fmt: skip


class AudioPipeline(Pipeline):
    """Waveform items ``(T,)``; a log-mel front-end on the device when the encoder takes log-mels."""

    output = "waveform"

    def __init__(self, settings: AudioSettings, augment: AudioAugment | None = None) -> None:
        self.settings, self.augment = settings, augment
        self._logmel: LogMelSpectrogram | None = None  # built on first use (cache reads and writes)

    @property
    def logmel(self) -> LogMelSpectrogram:
        if self._logmel is None:
            self._logmel = self.settings.frontend().eval()
        return self._logmel

    # -- items ---------------------------------------------------------------------------------
    def load(self, path: Path) -> Tensor:
        return load_audio(path, self.settings.sample_rate, strict=self.strict)

    def load_bytes(self, data: bytes) -> Tensor | None:
        return audio_from_bytes(data, self.settings.sample_rate)

    def load_video(self, path: Path, t: float) -> Tensor:
        """The video's sound track around ``t``, one clip long (``seconds``; longer with speed perturbation,
        which shortens it again), at ``sample_rate``."""
        s, aug = self.settings, self.augment
        if s.seconds is None:
            raise ConfigError(f"{path}: reading audio from a video needs a clip length; set the audio tower's "
                              "preprocess.seconds")  # fmt: skip
        seconds = s.seconds * max([1.0, *(aug.speed if aug is not None else [])])
        return read_audio_at(path, t, seconds, s.sample_rate, strict=self.strict)

    def __call__(self, wav: Tensor, rng: np.random.Generator | None = None, boxes: Tensor | None = None) -> tuple[Tensor, None]:
        s, aug = self.settings, self.augment if rng is not None else None
        if aug is not None and aug.speed:
            wav = change_speed(wav, s.sample_rate, float(rng.choice(aug.speed)))
        if s.num_samples is not None:
            wav = crop_or_pad(wav, s.num_samples, rng)
        if aug is None:
            return wav.to(torch.float32), None
        wav = random_shift(wav, round(aug.shift_seconds * s.sample_rate), rng)
        if aug.gain_db != (0.0, 0.0):
            wav = wav * 10 ** (rng.uniform(*aug.gain_db) / 20)
        if aug.noise_snr_db is not None and rng.uniform() < aug.noise_p:
            wav = add_noise(wav, rng.uniform(*aug.noise_snr_db), rng, float(rng.choice([0.0, 1.0, 2.0])))
        return wav.to(torch.float32), None

    def collate(self, items: Sequence[Tensor]) -> tuple[Tensor, Tensor | None]:
        """Fixed-length clips stack; whole clips are padded at the end (waveforms with zeros,
        cached log-mels with the value of silence) and get their lengths."""
        lengths = torch.tensor([t.shape[-1] for t in items])
        if bool((lengths == lengths[0]).all()):
            return torch.stack(list(items)), None
        out = items[0].new_zeros(len(items), *items[0].shape[:-1], int(lengths.max()))
        for i, t in enumerate(items):
            if t.dim() > 1:  # a log-mel from a cache
                out[i] = self.silence_db(t)
            out[i, ..., : t.shape[-1]] = t
        return out, lengths

    # -- on the device -------------------------------------------------------------------------
    def frontend(self, encoder_input: str | None) -> nn.Module | None:
        if encoder_input in (None, "waveform"):
            return None
        if encoder_input == "logmel":
            return self.settings.frontend()
        raise ConfigError(f"the audio modality gives waveforms or log-mels, but the encoder takes {encoder_input!r}")

    def batch_augment(self) -> nn.Module | None:
        a = self.augment
        if a is None or not (a.time_masks or a.freq_masks):
            return None
        if self.encoder_input not in (None, "logmel"):
            raise ConfigError(f"SpecAugment (time_masks, freq_masks) masks log-mels, but the tower's encoder takes "
                              f"{self.encoder_input!r}; leave them out for this tower")  # fmt: skip
        return SpecAugment(a.time_masks, a.time_mask_frames, a.freq_masks, a.freq_mask_bins)

    # -- log-mel caches ------------------------------------------------------------------------
    def cache_settings(self) -> dict[str, Any]:
        s = asdict(self.settings)
        s.pop("seconds")  # caches hold whole clips; the crop happens when an item is read
        return s

    def cache_refusal(self) -> str | None:
        if self.encoder_input not in (None, "logmel"):
            return f"it holds log-mels, but the tower's encoder takes {self.encoder_input!r}"
        a = self.augment
        if a is not None and (a.speed or a.noise_snr_db is not None):
            return "speed perturbation and added noise work on waveforms"
        return None

    def features(self, wav: Tensor) -> Tensor:
        """The log-mel ``(n_mels, frames)`` of a whole clip."""
        with torch.inference_mode():
            return self.logmel(wav)

    def silence_db(self, logmel: Tensor) -> float:
        """What the front-end gives silence (zero padding) in a clip whose log-mel is ``logmel``."""
        return self.logmel.to_db.silence(float(logmel.amax()))

    def from_features(self, logmel: Tensor, rng: np.random.Generator | None = None) -> Tensor:
        """A cached whole-clip log-mel -> the clip's log-mel after the crop/pad rule (in frames)
        and, in training, the shift and gain. Padding takes the value of silence
        (:meth:`silence_db`), as when the tower zero-pads the waveform."""
        s, aug = self.settings, self.augment if rng is not None else None
        floor = self.silence_db(logmel)
        if s.num_samples is not None:
            logmel = crop_or_pad(logmel, self.logmel.num_frames(s.num_samples), rng, pad_value=floor)
        if aug is not None:
            logmel = random_shift(logmel, round(aug.shift_seconds * s.sample_rate / s.hop_length), rng, pad_value=floor)
            if aug.gain_db != (0.0, 0.0):
                logmel = logmel + rng.uniform(*aug.gain_db)  # a gain of g dB adds g to every log-mel cell
        return logmel


#: A gallery tile shows at most this much of a clip: a long file costs its first block, not all of it.
RENDER_SECONDS = 10.0


def _render(path: Path) -> np.ndarray:
    """The clip's first ``RENDER_SECONDS`` as a log-mel spectrogram ``(n_mels, frames)`` in dB, low frequencies first."""
    s = AudioSettings()
    return s.frontend()(next(iter(AudioBlocks(path, s.sample_rate, block_seconds=RENDER_SECONDS)))).numpy()


AUDIO = register_modality(
    Modality(
        name="audio",
        settings=AudioSettings,
        augment=AudioAugment,
        pipeline=AudioPipeline,
        encoders=("logmel_cnn", "soundnet"),
        metadata={"sample_rate": AudioSettings.sample_rate, "seconds": AudioSettings.seconds, "shape": "(T,)"},
        describe=AUDIO_EXPECTED,
        render=_render,
    )
)

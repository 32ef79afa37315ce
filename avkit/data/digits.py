"""AV-digits: spoken digit words paired with real handwritten digit images.

- **Speech**: the words "zero" to "nine" spoken by libespeak-ng (through
  :mod:`avkit.data.speech`) in many voices: English accents x voice variants,
  each clip with its own rate and pitch, random leading silence and coloured
  background noise at a random SNR; 16 kHz mono, fixed length.
- **Images**: scikit-learn's bundled handwritten digits (1,797 8x8 images by
  43 writers), upsampled and lightly augmented (rotation, scale, shift,
  contrast); white ink on black, saved as 8-bit greyscale PNG.
- **Splits**: by voice (a test voice is never heard in training) and by image
  (a test image is never seen in training), 70/15/15.

Deterministic for a seed. Items that fail to synthesize are reported and
skipped, or refused with ``strict``.
"""

from __future__ import annotations

import logging
import math
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torchaudio.functional as AF
from PIL import Image

from avkit.audio.augment import colored_noise
from avkit.audio.io import save_audio
from avkit.data.build import BuildReport, finish_build
from avkit.data.manifest import Record
from avkit.data.speech import ESPEAK_SAMPLE_RATE, Utterance, synthesize
from avkit.errors import DatasetBuildError
from avkit.progress import progress
from avkit.vision.io import save_image

log = logging.getLogger(__name__)

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
#: English accents shipped with espeak-ng.
ACCENTS = ("en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-us-nyc")
#: espeak-ng voice variants (male, female, Klatt-synthesis and textured voices).
VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5",
    "klatt", "klatt2", "klatt4", "croak",
)  # fmt: skip
SPLITS = ("train", "val", "test")

Size = Literal["small", "default"]


@dataclass
class DigitsConfig:
    """How to build AV-digits. ``size`` picks a preset for ``voices`` and ``takes``.

    Attributes:
        size: ``small`` (10 voices x 10 digits, seconds) or ``default`` (128 voices x 10 digits x 2 takes).
        seed: seed for every random choice.
        sample_rate: output rate of the clips, Hz.
        clip_seconds: fixed clip length; speech longer than this is cut at the end.
        image_size: side of the square output images, pixels.
        snr_db: range of the background noise's signal-to-noise ratio, dB.
        max_lead_seconds: leading silence is drawn from [0, max_lead_seconds].
        rate_wpm, pitch: ranges of espeak's speaking rate and base pitch.
        voices: explicit voice list (``language+variant``), overriding ``size``.
        takes: clips per (voice, digit), overriding ``size``.
        strict: refuse the build if any item fails, instead of skipping it.
    """

    size: Size = "default"
    seed: int = 0
    sample_rate: int = 16000
    clip_seconds: float = 1.0
    image_size: int = 32
    snr_db: tuple[float, float] = (5.0, 30.0)
    max_lead_seconds: float = 0.25
    rate_wpm: tuple[int, int] = (130, 220)
    pitch: tuple[int, int] = (25, 75)
    voices: list[str] | None = None
    takes: int | None = None
    strict: bool = False

    def resolved_voices(self) -> list[str]:
        if self.voices is not None:
            return list(self.voices)
        every = [f"{a}+{v}" for a in ACCENTS for v in VARIANTS]
        if self.size == "default":
            return every
        if self.size == "small":
            rng = np.random.default_rng(self.seed)
            return [every[i] for i in sorted(rng.choice(len(every), size=10, replace=False))]
        raise DatasetBuildError(f"unknown size {self.size!r}; expected 'small' or 'default'")

    def resolved_takes(self) -> int:
        return self.takes if self.takes is not None else (2 if self.size == "default" else 1)


def split_voices(voices: list[str], seed: int) -> dict[str, str]:
    """Assign each voice to train/val/test (about 70/15/15, at least one voice each)."""
    if len(voices) < 3:
        raise DatasetBuildError(f"need at least 3 voices to make train/val/test splits, got {len(voices)}")
    order = np.random.default_rng(seed + 1).permutation(len(voices))
    n_val = max(1, round(0.15 * len(voices)))
    n_test = max(1, round(0.15 * len(voices)))
    out = {}
    for rank, idx in enumerate(order):
        out[voices[idx]] = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
    return out


def split_images(targets: np.ndarray, seed: int) -> dict[str, dict[int, np.ndarray]]:
    """Stratified 70/15/15 split of image indices: split -> digit -> indices."""
    rng = np.random.default_rng(seed + 2)
    out: dict[str, dict[int, list[int]]] = {s: {} for s in SPLITS}
    for digit in range(10):
        idx = rng.permutation(np.flatnonzero(targets == digit))
        n_test, n_val = round(0.15 * len(idx)), round(0.15 * len(idx))
        parts = {"test": idx[:n_test], "val": idx[n_test : n_test + n_val], "train": idx[n_test + n_val :]}
        for split, part in parts.items():
            out[split][digit] = part
    return out  # type: ignore[return-value]


def render_digit(pixels: np.ndarray, size: int, rng: np.random.Generator, augment: bool = True) -> Image.Image:
    """Pad an 8x8 digit (values 0..16) by 2 pixels, upsample it to ``size`` x ``size``, with light augmentation."""
    # A 2-pixel margin keeps strokes that touch the 8x8 border off the edge after augmentation.
    padded = np.pad(pixels, 2)
    base = Image.fromarray(np.round(padded / 16.0 * 255).astype(np.uint8), mode="L")
    img = base.resize((size, size), Image.BICUBIC)
    if not augment:
        return img
    angle = rng.uniform(-10, 10)
    scale = rng.uniform(0.9, 1.1)
    dx, dy = rng.uniform(-0.06, 0.06, size=2) * size
    # Inverse affine map about the centre: rotation by angle, scaling, then shift.
    a = math.radians(angle)
    cos, sin = math.cos(a) / scale, math.sin(a) / scale
    c = size / 2
    coeffs = (cos, sin, c - cos * (c + dx) - sin * (c + dy), -sin, cos, c + sin * (c + dx) - cos * (c + dy))
    img = img.transform((size, size), Image.AFFINE, coeffs, resample=Image.BILINEAR, fillcolor=0)
    gain = rng.uniform(0.8, 1.0)
    return img.point(lambda v: int(round(v * gain)))


def trim_silence(samples: np.ndarray, threshold: float = 0.01) -> np.ndarray:
    """Cut leading and trailing samples quieter than ``threshold`` x peak."""
    mag = np.abs(samples)
    loud = np.flatnonzero(mag > threshold * mag.max())
    return samples[loud[0] : loud[-1] + 1] if loud.size else samples


def make_clip(
    speech: np.ndarray, cfg: DigitsConfig, rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, float]]:
    """Turn espeak's int16 output into a fixed-length noisy clip at ``cfg.sample_rate``."""
    wav = torch.from_numpy(trim_silence(speech.astype(np.float32) / 32768.0))
    wav = AF.resample(wav, ESPEAK_SAMPLE_RATE, cfg.sample_rate).numpy()
    n = round(cfg.clip_seconds * cfg.sample_rate)
    wav = wav[:n]
    lead = min(int(rng.uniform(0, cfg.max_lead_seconds) * cfg.sample_rate), n - len(wav))
    clip = np.zeros(n, dtype=np.float32)
    clip[lead : lead + len(wav)] = wav / (np.abs(wav).max() + 1e-9) * rng.uniform(0.3, 0.8)
    snr = rng.uniform(*cfg.snr_db)
    speech_rms = float(np.sqrt(np.mean(clip[lead : lead + len(wav)] ** 2)))
    exponent = float(rng.choice([0.0, 1.0, 2.0]))
    clip += colored_noise(n, exponent, rng) * speech_rms * 10 ** (-snr / 20)
    peak = np.abs(clip).max()
    if peak > 0.99:
        clip *= 0.99 / peak
    return clip, {"snr_db": round(snr, 2), "lead_s": round(lead / cfg.sample_rate, 4), "noise_exponent": exponent}


def _slug(voice: str) -> str:
    return voice.replace("+", "-")


def build_digits(out: str | Path, cfg: DigitsConfig | None = None, show_progress: bool = False) -> BuildReport:
    """Generate AV-digits under ``out``: ``audio/``, ``images/``, ``manifest.jsonl``, ``build.json``.

    Raises:
        DatasetBuildError: in strict mode when any item fails, or when nothing could be built.
    """
    from sklearn.datasets import load_digits  # heavy import, only needed here

    cfg = cfg or DigitsConfig()
    out = Path(out)
    start = time.perf_counter()
    voices = cfg.resolved_voices()
    takes = cfg.resolved_takes()
    voice_split = split_voices(voices, cfg.seed)
    digits = load_digits()
    image_pool = split_images(digits.target, cfg.seed)
    rng = np.random.default_rng(cfg.seed)

    plan = []  # (voice, digit, take, Utterance)
    for voice in voices:
        for digit in range(10):
            for take in range(takes):
                utt = Utterance(
                    DIGIT_WORDS[digit], voice, int(rng.integers(*cfg.rate_wpm, endpoint=True)),
                    int(rng.integers(*cfg.pitch, endpoint=True)),
                )  # fmt: skip
                plan.append((voice, digit, take, utt))
    log.info("synthesizing %d utterances in %d voices", len(plan), len(voices))
    audio = synthesize([p[3] for p in plan], seed=cfg.seed)

    # Each split's images of a digit are used in a shuffled cycle, so all get used evenly.
    cursors = {(s, d): 0 for s in SPLITS for d in range(10)}
    report = BuildReport(manifest=out / "manifest.jsonl")
    records: list[Record] = []
    for (voice, digit, take, utt), samples in progress(
        list(zip(plan, audio)), desc="writing AV-digits", enabled=show_progress, unit="clip"
    ):
        rid = f"{digit}-{_slug(voice)}-t{take}"
        if isinstance(samples, str):
            report.skip(rid, samples)
            continue
        split = voice_split[voice]
        pool = image_pool[split][digit]
        image_index = int(pool[cursors[(split, digit)] % len(pool)])
        cursors[(split, digit)] += 1
        clip, info = make_clip(samples, cfg, rng)
        save_audio(out / "audio" / f"{rid}.wav", clip, cfg.sample_rate)
        save_image(out / "images" / f"{rid}.png", render_digit(digits.images[image_index], cfg.image_size, rng))
        extra = {"voice": voice, "image_index": image_index, "rate_wpm": utt.rate, "pitch": utt.pitch, **info}
        records.append(
            Record(rid, {"audio": f"audio/{rid}.wav", "image": f"images/{rid}.png"}, str(digit), split, extra=extra)
        )

    meta = {
        "dataset": "av-digits",
        "config": asdict(cfg),
        "voices": {v: voice_split[v] for v in voices},
        "python": platform.python_version(),
    }
    return finish_build(report, records, cfg.strict, start, meta)

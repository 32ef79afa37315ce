"""Log-mel front-end throughput: avkit vs torchaudio vs librosa vs scipy, one batch, one run.

    python benchmarks/frontend.py [--batch 256] [--repeats 15] [--threads 2] [--markdown]

Every library computes the same thing on the same batch of ``--batch`` one-second
clips at 16 kHz: a Hamming-window (periodic, 400 samples) power spectrogram with
hop 160 and n_fft 512, 64 Slaney mel bands, in dB. Each is warmed up first
(librosa's numba compilation included), then the libraries are timed in turn,
round-robin, ``--repeats`` times; the median is reported, with the ratio to the fastest other library. The outputs
are checked against avkit's before timing so that no row is measuring
something else.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import librosa
import numpy as np
import scipy.signal
import torch
import torchaudio

from avkit.audio.transforms import LogMelSpectrogram

SR, N_FFT, WIN, HOP, N_MELS = 16000, 512, 400, 160, 64


def make_batch(batch: int, seed: int = 0) -> np.ndarray:
    """Speech-like test clips: harmonic tones with vibrato plus noise, float32 ``(B, 16000)``."""
    rng = np.random.default_rng(seed)
    t = np.arange(SR) / SR
    f0 = rng.uniform(90, 250, size=(batch, 1))
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.05 * np.sin(2 * np.pi * 5 * t)), axis=1) / SR
    clips = sum(np.sin(k * phase) / k for k in range(1, 8)) * 0.2 + 0.01 * rng.standard_normal((batch, SR))
    return clips.astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=256, help="clips per batch (default 256)")
    parser.add_argument("--repeats", type=int, default=21, help="timed repeats per library (default 21)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: all cores)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    x_np = make_batch(args.batch)
    x = torch.from_numpy(x_np)

    ours = LogMelSpectrogram(SR, N_FFT, WIN, HOP, N_MELS, pad_mode="reflect").eval()
    ours_whole = LogMelSpectrogram(SR, N_FFT, WIN, HOP, N_MELS, pad_mode="reflect", cpu_chunk=None).eval()
    ta = torchaudio.transforms.MelSpectrogram(
        SR, n_fft=N_FFT, win_length=WIN, hop_length=HOP, n_mels=N_MELS, window_fn=torch.hamming_window,
        power=2.0, center=True, pad_mode="reflect", norm="slaney", mel_scale="slaney",
    )  # fmt: skip
    ta_db = torchaudio.transforms.AmplitudeToDB("power", top_db=None)
    fb = librosa.filters.mel(sr=SR, n_fft=N_FFT, n_mels=N_MELS)  # Slaney scale and norm
    win = scipy.signal.get_window("hamming", WIN)  # periodic

    def run_ours() -> np.ndarray:
        with torch.inference_mode():
            return ours(x).numpy()

    def run_ours_whole() -> np.ndarray:
        with torch.inference_mode():
            return ours_whole(x).numpy()

    def run_torchaudio() -> np.ndarray:
        with torch.inference_mode():
            return ta_db(ta(x)).numpy()

    def run_librosa() -> np.ndarray:
        mel = librosa.feature.melspectrogram(
            y=x_np, sr=SR, n_fft=N_FFT, hop_length=HOP, win_length=WIN, window="hamming",
            center=True, pad_mode="reflect", power=2.0, n_mels=N_MELS,
        )  # fmt: skip
        return librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)

    def run_scipy() -> np.ndarray:
        # scipy puts the window at the start of each segment; pad by WIN // 2 (not N_FFT // 2)
        # so that frame t is centred on sample t * HOP, as torch and librosa centre it.
        padded = np.pad(x_np, ((0, 0), (WIN // 2, WIN // 2)), mode="reflect")
        _, _, z = scipy.signal.stft(
            padded, fs=SR, window=win, nperseg=WIN, noverlap=WIN - HOP, nfft=N_FFT,
            boundary=None, padded=False, scaling="spectrum",
        )  # fmt: skip
        power = np.abs(z * win.sum()) ** 2
        return 10 * np.log10(np.maximum(fb @ power, 1e-10))

    ref = run_ours()
    rows = [("avkit LogMelSpectrogram", run_ours),
            ("(ablation) avkit, whole batch at once (cpu_chunk=None)", run_ours_whole),
            ("torchaudio MelSpectrogram + AmplitudeToDB", run_torchaudio),
            ("librosa melspectrogram + power_to_db", run_librosa), ("scipy.signal.stft + mel matmul", run_scipy)]  # fmt: skip
    agree = {}
    for name, fn in rows:
        out = fn()
        n = min(out.shape[-1], ref.shape[-1])
        agree[name] = float(np.abs(out[..., :n] - ref[..., :n]).max())

    # Round-robin: every repeat times each library once, so a slow moment of the
    # machine hits all of them alike; report the median per library.
    for _, fn in rows:
        for _ in range(3):
            fn()
    times: dict[str, list[float]] = {name: [] for name, _ in rows}
    for _ in range(args.repeats):
        for name, fn in rows:
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    results = [(name, statistics.median(times[name])) for name, _ in rows]
    best_other = min(t for name, t in results if not name.startswith(("avkit", "(ablation)")))
    audio_seconds = args.batch * 1.0
    print(f"front-end benchmark: {args.batch} x 1 s clips at {SR} Hz, n_fft {N_FFT}, Hamming win {WIN}, "
          f"hop {HOP}, {N_MELS} mels, dB")  # fmt: skip
    print(f"torch threads {torch.get_num_threads()}, cores {os.cpu_count()}, {platform.processor() or platform.machine()}, "
          f"torch {torch.__version__}, torchaudio {torchaudio.__version__}, librosa {librosa.__version__}, "
          f"scipy {scipy.__version__}, python {sys.version.split()[0]}; median of {args.repeats}")  # fmt: skip
    print()
    print("| front-end | ms / batch | clips / s | x real-time | time / fastest other | max abs diff vs avkit (dB) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, t in results:
        print(f"| {name} | {t * 1e3:.1f} | {args.batch / t:,.0f} | {audio_seconds / t:,.0f} | "
              f"{t / best_other:.2f} | {agree[name]:.1e} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

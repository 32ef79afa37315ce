"""`avkit plot-audio` on a long file: wall time and peak memory, beside the same command on a short one.

    python benchmarks/plot_audio_long.py [--minutes 60] [--repeats 3]

Writes a 16 kHz 16-bit mono WAV of ``--minutes`` (60: 115 MB, a chirp gated on
and off, plus noise) and one of 5 seconds, then runs ``avkit plot-audio`` on
each in a fresh process, alternately, ``--repeats`` times. Peak memory is the
child's maximum resident set size (``getrusage``). The short file's figures are
the command's fixed cost (importing torch alone is about 630 MB resident with
the CUDA build of torch 2.11); the difference is what the long file adds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf


def write_wav(path: Path, seconds: int, sr: int = 16000) -> None:
    rng = np.random.default_rng(0)
    with sf.SoundFile(str(path), "w", sr, 1, "PCM_16") as handle:
        for minute_start in range(0, seconds, 60):
            t = np.arange(sr * min(60, seconds - minute_start)) / sr + minute_start
            chirp = 0.3 * np.sin(2 * np.pi * (200 + t / 3) * t) * (np.sin(2 * np.pi * t / 20) > 0)
            handle.write((chirp + 0.01 * rng.standard_normal(t.shape)).astype(np.float32))


def run(wav: Path, out: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one `avkit plot-audio` process."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "avkit", "-q", "plot-audio", str(wav), "--out", str(out)],
                            stdout=subprocess.DEVNULL)  # fmt: skip
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak, not the largest child's so far
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"avkit plot-audio {wav} failed")
    return seconds, usage.ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=int, default=60, help="length of the long file (default 60)")
    p.add_argument("--repeats", type=int, default=3, help="runs of each (default 3)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        files = {"5 s": Path(tmp) / "short.wav", f"{args.minutes} min": Path(tmp) / "long.wav"}
        write_wav(files["5 s"], 5)
        write_wav(files[f"{args.minutes} min"], args.minutes * 60)
        times: dict[str, list[float]] = {k: [] for k in files}
        peaks: dict[str, list[float]] = {k: [] for k in files}
        for _ in range(args.repeats):
            for name, wav in files.items():
                seconds, peak = run(wav, Path(tmp) / f"{wav.stem}.png")
                times[name].append(seconds)
                peaks[name].append(peak)
        sizes = {k: f.stat().st_size / 1e6 for k, f in files.items()}
    print("| file | size | wall time, s | peak RSS, MB |")
    print("| --- | ---: | ---: | ---: |")
    for name in files:
        t, m = times[name], peaks[name]
        print(f"| {name} | {sizes[name]:.1f} MB | {statistics.median(t):.2f} ({min(t):.2f}–{max(t):.2f}) | "
              f"{statistics.median(m):.0f} ({min(m):.0f}–{max(m):.0f}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

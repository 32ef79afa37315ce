"""Translation at inference: sampling the test split with DDIM, and units -> speech against real time.

    python benchmarks/translation.py [--runs runs/translation] [--repeats 1]

Needs the runs of ``python experiments/translation.py``. In one process, one after the other:

- **speech -> image on the test split** (380 sounds): the voice encoder and a decoder, in
  batches of 128, as ``experiments/translation.py`` judges them. DDIM at the settings the
  experiment chose on validation (its ``results.json``), at half the steps, and the deconv
  decoder beside them. Seconds per split, and images per second.
- **units -> speech** on the test split's real unit sequences: each vocoder speaks them one
  at a time (predicted durations, frames, Griffin-Lim at its configured iterations). The real-time
  factor is seconds of speech made per second of wall time.

Each measurement is repeated ``--repeats`` times; the table gives the median (min–max). Run
the script 3 times on an idle machine and quote the median of the medians.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from avkit.cli_matching import positive_int
from avkit.data.dataset import ManifestDataset, ordered_loader
from avkit.data.manifest import read_manifest
from avkit.errors import AvkitError
from avkit.models import AVModel, load_model
from avkit.translation import speech_to_image


def timed(fn: Callable[[], object], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def fmt(values: list[float], digits: int = 1) -> str:
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def sample_split(model: AVModel, manifest: Path, decoder: str, **options: float) -> int:
    """Images for every sound of the test split; returns how many."""
    ds = ManifestDataset(manifest, model.pipelines(), split="test", label_names=model.config.labels)
    generator, count = torch.Generator().manual_seed(0), 0
    for batch in ordered_loader(ds, 128):
        count += len(speech_to_image(model, batch, decoder, generator, **options))
    return count


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=Path, default=Path("runs/translation"), help="experiments/translation.py's --out")
    p.add_argument("--data", type=Path, default=Path("data/digits/manifest.jsonl"), help="AV-digits manifest")
    p.add_argument("--repeats", type=positive_int, default=1, help="timings of each measurement (default 1)")
    args = p.parse_args(argv)
    try:
        results = json.loads((args.runs / "results.json").read_text())
        chosen = results["speech-to-image"]["sampling"]
        model = load_model(args.runs / "speech-to-image")
        units_manifest = args.runs / "units.jsonl"
        vocoders = {f: load_model(args.runs / f"vocoder-{f}").heads["vocoder"] for f in ("linear", "mel")}
        n_test = len(read_manifest(args.data).split("test"))
        records = [r for r in read_manifest(units_manifest).split("test") if r.extra.get("units")]
    except (OSError, KeyError, AvkitError) as exc:
        print(f"translation benchmark: needs the runs of experiments/translation.py in {args.runs}: {exc}", file=sys.stderr)
        return 2
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    settings = {
        f"diffusion, DDIM {chosen['steps']} steps, guidance {chosen['guidance']:g}, eta {chosen['eta']:g}": ("diffusion", chosen),
        f"diffusion, DDIM {chosen['steps'] // 2} steps, same guidance and eta": ("diffusion", {**chosen, "steps": chosen["steps"] // 2}),
        "deconv": ("deconv", {}),
    }  # fmt: skip
    print(f"\nspeech -> image, the test split ({n_test} sounds, batches of 128; target: DDIM at ≤ 120 s)\n")
    print("| decoder | seconds per split | images / s |\n| --- | ---: | ---: |")
    for name, (decoder, options) in settings.items():
        times = timed(lambda: sample_split(model, args.data, decoder, **options), args.repeats)  # noqa: B023 - called at once
        print(f"| {name} | {fmt(times)} | {fmt([n_test / t for t in times])} |", flush=True)

    sequences = [r.extra["units"] for r in records]
    print(f"\nunits -> speech, the test split's {len(sequences)} real unit sequences, one at a time (target: ≥ 10× real time)\n")
    print("| vocoder | Griffin-Lim iterations | seconds of speech | wall seconds | × real time |\n| --- | ---: | ---: | ---: | ---: |")
    for frames, head in vocoders.items():
        made: list[float] = []

        def speak_all(head=head, made=made) -> None:
            made.append(sum(len(head.speak(seq)) for seq in sequences) / head.sample_rate)

        times = timed(speak_all, args.repeats)
        print(f"| {frames} | {head.griffin_lim.n_iter} | {made[0]:.0f} | {fmt(times)} | "
              f"{fmt([m / t for m, t in zip(made, times, strict=True)])} |", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

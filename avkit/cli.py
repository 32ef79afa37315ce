"""The ``avkit`` command line (also ``python -m avkit``). The only module that prints."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import textwrap
import traceback
from collections.abc import Sequence
from pathlib import Path

from avkit import __version__
from avkit.cli_data import add_commands as add_data_commands
from avkit.cli_localization import add_commands as add_localization_commands
from avkit.cli_matching import add_commands, positive_int
from avkit.cli_translation import add_commands as add_translation_commands
from avkit.errors import AvkitError, ConfigError
from avkit.fileio import refuse_overwriting
from avkit.plugins import load_plugins

EPILOG = textwrap.dedent(
    """\
    a first session:
      avkit data digits --out data/digits --size small   # speech + handwritten digits, seconds
      avkit data check data/digits/manifest.jsonl        # validate it, counts per split/label
      avkit plot-audio data/digits/audio/7-en-m3-t0.wav --out seven.png
      avkit data scenes --from data/digits --out data/scenes
      avkit features data/digits/manifest.jsonl --out data/digits/logmel.safetensors
      avkit train experiments/configs/contrastive.toml     # audio <-> image matching, a few minutes
      avkit embed --checkpoint runs/contrastive --manifest data/digits/manifest.jsonl \
                  --modality image --split test --out runs/test-images.safetensors
      avkit index build --embeddings runs/test-images.safetensors --out runs/image-index
      avkit query --index runs/image-index --checkpoint runs/contrastive --audio data/digits/audio/7-en-m3-t0.wav
      avkit train experiments/configs/localization.toml   # where in a scene is the sound? (boxes unused)
      avkit eval localization --checkpoint runs/localization --manifest data/scenes/manifest.jsonl

    every command that takes data takes a manifest (JSONL, one pair per line):
      {"id": "a1", "audio": "audio/a1.wav", "image": "images/a1.png", "label": "7", "split": "train"}
    see docs/data.md for the contract.
    """
)


def _cmd_digits(args: argparse.Namespace) -> int:
    from avkit.data.digits import DigitsConfig, build_digits

    cfg = DigitsConfig(size=args.size, seed=args.seed, strict=args.strict)
    report = build_digits(args.out, cfg, show_progress=True)
    print(f"wrote {report.records} pairs to {report.manifest} in {report.seconds:.1f} s")
    print("  per split: " + ", ".join(f"{k}={v}" for k, v in sorted(report.per_split.items())))
    if report.skipped:
        print(f"  skipped {len(report.skipped)} item(s); see {Path(args.out) / 'build.json'}")
    return 0


def _cmd_scenes(args: argparse.Namespace) -> int:
    from avkit.data.scenes import ScenesConfig, build_scenes

    cfg = ScenesConfig(canvas=args.canvas, seed=args.seed, train_scenes=args.train_scenes, strict=args.strict)
    source = Path(args.source)
    refuse_overwriting(args.out, [source if source.is_dir() else source.parent], "--out (the scenes' folder)")
    report = build_scenes(args.source, args.out, cfg, show_progress=True)
    print(f"wrote {report.records} scenes to {report.manifest} in {report.seconds:.1f} s")
    if report.skipped:
        print(f"  skipped {len(report.skipped)} item(s); see {Path(args.out) / 'build.json'}")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from avkit.data.check import check_manifest

    modalities = tuple(m.strip() for m in args.modalities.split(",") if m.strip())
    report = check_manifest(args.manifest, modalities, decode=not args.no_decode, show_progress=True)
    print(report.summary())
    print("OK" if report.ok else f"FAILED: {len(report.problems)} problem(s)")
    return 0 if report.ok else 1


def _cmd_features(args: argparse.Namespace) -> int:
    from avkit.data.features import compute_features
    from avkit.modalities import get_modality

    if args.config is not None:
        from avkit.models import Tower
        from avkit.train import load_run_config

        towers = load_run_config(args.config).model.towers
        if args.tower not in towers:
            raise ConfigError(f"{args.config}: no tower {args.tower!r}; towers: {list(towers)}")
        tower = Tower(args.tower, towers[args.tower])
        if tower.frontend is None or tower.pipeline.cache_refusal():
            raise ConfigError(f"{args.config}: tower {args.tower!r} would not use a feature cache (its encoder takes "
                              f"{tower.pipeline.encoder_input!r} input); train it from the media")  # fmt: skip
        modality, pipeline = tower.modality, tower.pipeline
    else:
        modality = "audio"
        settings = {"sample_rate": args.sample_rate, "win_length": args.win, "hop_length": args.hop, "n_fft": args.n_fft,
                    "n_mels": args.n_mels, "top_db": None if args.top_db <= 0 else args.top_db}  # fmt: skip
        pipeline = get_modality(modality).make_pipeline(settings)
    refuse_overwriting(args.out, [args.config] if args.config else [])  # compute_features checks the manifest's files
    summary = compute_features(args.manifest, args.out, pipeline, show_progress=True, strict=args.strict)
    print(f"wrote {summary['count']} {modality} features of shape {summary['shape']} (longest) to {args.out}")
    for item in summary["skipped"]:
        print(f"  skipped {item['id']}: {item['reason']}")
    return 0


def _fixed_mmap_threshold(size: int = 1 << 20) -> None:
    """Have glibc serve allocations of ``size`` bytes or more by mmap, returned to the system when freed.

    glibc raises its mmap threshold whenever a large block is freed, after which same-sized
    blocks come from the heap and fragment it: reading an hour of audio block by block then
    kept 160 MB more resident than one block needs. A fixed threshold keeps it at a few MB
    (``benchmarks/plot_audio_long.py``). Only this command's process is changed; elsewhere a no-op.
    """
    import ctypes
    import ctypes.util

    with contextlib.suppress(OSError, AttributeError, TypeError):
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt(-3, size)  # M_MMAP_THRESHOLD


def _cmd_plot_audio(args: argparse.Namespace) -> int:
    from avkit.audio.io import AudioBlocks
    from avkit.audio.plot import plot_three_views, save_figure
    from avkit.plotting import check_picture_path

    check_picture_path(args.out)
    refuse_overwriting(args.out, [args.file])
    if args.win > args.n_fft:
        raise ConfigError(f"--win {args.win} is longer than --n-fft {args.n_fft}; the window must fit the FFT")
    _fixed_mmap_threshold()
    audio = AudioBlocks(args.file, args.sample_rate)  # read block by block: any length, bounded memory
    fig = plot_three_views(audio, None, args.win, args.hop, args.n_fft, title=Path(args.file).name)
    save_figure(fig, args.out)
    print(f"wrote {args.out}")
    return 0


def _add_frontend_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sample-rate", type=positive_int, default=16000, help="resample to this rate, Hz (default 16000)")
    p.add_argument("--win", type=positive_int, default=400, help="Hamming window length A, samples (default 400 = 25 ms)")
    p.add_argument("--hop", type=positive_int, default=160, help="hop B between windows, samples (default 160 = 10 ms)")
    p.add_argument("--n-fft", type=positive_int, default=512, help="FFT size, >= --win (default 512)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="avkit",
        description="avkit: audio-visual research toolkit (front-ends, datasets, encoders, retrieval).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"avkit {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("-q", "--quiet", action="store_true", help="log only errors")
    parser.add_argument("--debug", action="store_true", help="on an unexpected error, show the Python traceback")
    parser.add_argument("--plugin", action="append", default=[], metavar="FILE_OR_MODULE",
                        help="a .py file or module to import first: it may register modalities, encoders and "
                        "heads (repeatable; also $AVKIT_PLUGINS, separated by ':')")  # fmt: skip
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    data = sub.add_parser("data", help="build and check datasets", description="Build and check datasets.")
    dsub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)

    p = dsub.add_parser(
        "digits",
        help="generate AV-digits (spoken digit words + handwritten digit images)",
        description="Generate AV-digits: the ten digit words spoken by espeak-ng in many voices, "
        "paired with scikit-learn's handwritten digit images. Splits go by voice and by image. "
        "Deterministic for a seed; no network needed.",
    )
    p.add_argument("--out", required=True, type=Path, help="output folder (manifest.jsonl, audio/, images/)")
    p.add_argument("--size", choices=["small", "default"], default="default",
                   help="small: 100 pairs in seconds (tests); default: 2,560 pairs, about 20 s")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--strict", action="store_true", help="refuse to build if any item fails, instead of skipping it")
    p.set_defaults(func=_cmd_digits)

    p = dsub.add_parser(
        "scenes",
        help="compose localization scenes (2-4 digits on a canvas, one heard)",
        description="From a labelled manifest, paste 2-4 distinct digits at random non-overlapping "
        "positions and scales; the audio is one of them spoken, and 'boxes' holds its box.",
    )
    p.add_argument("--from", dest="source", required=True, type=Path, help="source dataset folder or manifest")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--canvas", type=int, default=128, help="scene side in pixels (default 128)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--train-scenes", type=int, default=1, metavar="N",
                   help="scenes per training record, each with other distractors and positions (default 1; "
                        "validation and test records always get one)")  # fmt: skip
    p.add_argument("--strict", action="store_true", help="refuse to build if any item fails")
    p.set_defaults(func=_cmd_scenes)

    p = dsub.add_parser(
        "check",
        help="validate a manifest and every file it names",
        description="Report every problem by line: invalid JSON, missing fields, duplicate ids, "
        "missing or unreadable media, boxes outside the image. Prints counts per split and label. "
        "Exits 1 if any problem is found.",
    )
    p.add_argument("manifest", type=Path, help="manifest.jsonl")
    p.add_argument("--modalities", default="audio,image", help="comma-separated path fields required (default audio,image)")
    p.add_argument("--no-decode", action="store_true",
                   help="check that files exist, without decoding them (files with boxes are still decoded, to check the boxes)")  # fmt: skip
    p.set_defaults(func=_cmd_check)
    add_data_commands(dsub)

    p = sub.add_parser(
        "features",
        help="cache log-mel spectrograms of a manifest's clips, for training",
        description="Compute the Hamming-window log-mel of every whole clip once and cache it in one "
        "safetensors file. Training reads it instead of the audio (data.feature_cache.TOWER = FILE) when its "
        "settings equal the tower's; the tower's clip length and crop rule apply when an item is read. "
        "Take the settings from a run config (--config, --tower) or from the flags below, whose defaults "
        "are the audio tower's.",
        epilog="example:\n  avkit features data/digits/manifest.jsonl --out data/digits/logmel.safetensors "
        "--config experiments/configs/contrastive.toml\n  avkit train experiments/configs/contrastive.toml "
        "--set data.feature_cache.audio=data/digits/logmel.safetensors",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("manifest", type=Path, help="manifest.jsonl")
    p.add_argument("--out", required=True, type=Path, help="output .safetensors file")
    p.add_argument("--config", type=Path, help="take the settings of a tower of this run config")
    p.add_argument("--tower", default="audio", help="the tower of --config (default audio)")
    _add_frontend_args(p)
    p.add_argument("--n-mels", type=positive_int, default=64, help="mel bands (default 64)")
    p.add_argument("--top-db", type=float, default=80.0, help="floor at this many dB below each clip's peak; 0: none (default 80)")
    p.add_argument("--strict", action="store_true", help="fail on the first unreadable clip instead of skipping it")
    p.set_defaults(func=_cmd_features)

    p = sub.add_parser(
        "plot-audio",
        help="plot a sound's waveform, power spectrum and spectrogram",
        description="Three views side by side: the waveform (time vs amplitude), the power spectrum "
        "of the loudest Hamming window (frequency vs dB), and the spectrogram (window A, hop B).",
    )
    p.add_argument("file", type=Path, help="audio file (WAV, FLAC, OGG)")
    p.add_argument("--out", required=True, type=Path, help="output image (.png, .svg, .pdf)")
    _add_frontend_args(p)
    p.set_defaults(func=_cmd_plot_audio)
    add_commands(sub)
    add_localization_commands(sub)
    add_translation_commands(sub)
    return parser


def _plugins_in(argv: Sequence[str]) -> list[str]:
    """The ``--plugin`` values before the command, and ``$AVKIT_PLUGINS``."""
    found = [p for p in os.environ.get("AVKIT_PLUGINS", "").split(":") if p]
    for i, arg in enumerate(argv):
        if arg == "--plugin" and i + 1 < len(argv):
            found.append(argv[i + 1])
        elif arg.startswith("--plugin="):
            found.append(arg.split("=", 1)[1])
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code (0 ok, 1 check failed, 2 bad input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:  # plugins first: they may add modalities, whose options (--depth FILE) the parser offers
        load_plugins(_plugins_in(argv))
    except AvkitError as exc:
        if "--debug" in argv and exc.__cause__ is not None:
            traceback.print_exception(exc.__cause__)
        print(f"avkit: error: {exc}" + (" (run with --debug for the traceback)" if exc.__cause__ else ""), file=sys.stderr)
        return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.ERROR if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # its CPU-feature probing is noise
    try:
        return int(args.func(args))
    except AvkitError as exc:
        print(f"avkit: error: {exc}", file=sys.stderr)
        return 2
    except FloatingPointError as exc:  # a diverged training run: say so, without a traceback
        print(f"avkit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("avkit: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # anything else is a bug or an environment problem: one line, unless --debug
        if args.debug:
            raise
        what = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"avkit: error: {type(exc).__name__}: {what} (run with --debug for the traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""CLI commands for data at scale: ``avkit data from-videos`` and ``avkit data shard``."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from avkit.cli_matching import float_type, positive_int
from avkit.errors import ConfigError
from avkit.fileio import refuse_overwriting

FROM_VIDEOS_EPILOG = """\
examples:
  avkit data from-videos clips/ --out data/clips                     # a line at each video's middle
  avkit data from-videos clips/ --out data/clips --every 2           # a line every 2 s
  avkit data from-videos clips/ --out data/clips --label-from labels.csv --extract
  avkit data check data/clips/manifest.jsonl                         # opens each video, checks streams and t

labels: 'parent-dir' takes a video's folder name (clips/dog/x.mp4 -> dog); a CSV has a header
with the columns file,label and optionally split (file relative to the folder). Without a split
column, each video's split is drawn from a hash of its path (--val, --test): all of a video's
lines share one split.
"""

SHARD_EPILOG = """\
examples:
  avkit data shard data/digits/manifest.jsonl --out data/digits-shards --shard-size 1000
  avkit data shard data/digits/manifest.jsonl --out data/digits-arrays --content arrays \\
        --config experiments/configs/contrastive.toml
  avkit train experiments/configs/contrastive.toml --set data.shards=data/digits-shards --set data.workers=2

media: each item's encoded files as the manifest names them (a video line's frame and clip as PNG
and WAV); training decodes them. arrays: what each tower's pipeline decodes (resampled waveform,
image as floats), made with the settings of --config; nothing is decoded in training, but the
shards are larger. Training streams the training split from the shards and validates on the
manifest's validation split. docs/data.md explains how shards are split across processes and
workers, and what a resumed run re-reads.
"""


def _cmd_from_videos(args: argparse.Namespace) -> int:
    from avkit.data.videos import VideosConfig, build_from_videos

    refuse_overwriting(args.out / "manifest.jsonl", [args.folder])
    if args.out.resolve() == args.folder.resolve():
        raise ConfigError(f"--out {args.out} is the videos' folder; write the manifest into another folder")
    cfg = VideosConfig(every=args.every, label_from=args.label_from, val_fraction=args.val, test_fraction=args.test,
                       extract=args.extract, seconds=args.seconds, sample_rate=args.sample_rate, strict=args.strict)  # fmt: skip
    report = build_from_videos(args.folder, args.out, cfg, show_progress=True)
    print(f"wrote {report.records} lines to {report.manifest} in {report.seconds:.1f} s")
    print("  per split: " + ", ".join(f"{k}={v}" for k, v in sorted(report.per_split.items())))
    for item in report.skipped:
        print(f"  skipped {item['id']}: {item['reason']}")
    return 0


def _cmd_digit_videos(args: argparse.Namespace) -> int:
    from avkit.data.videos import videos_from_pairs

    source = args.source / "manifest.jsonl" if args.source.is_dir() else args.source
    refuse_overwriting(args.out / "labels.csv", [source])
    written = videos_from_pairs(source, args.out, per_video=args.per_video, seconds=args.seconds, size=args.size,
                                limit=args.limit, show_progress=True)  # fmt: skip
    print(f"wrote {len(written)} videos and {args.out / 'labels.csv'}")
    return 0


def _shard_pipelines(args: argparse.Namespace) -> dict:
    from avkit.modalities import get_modality

    modalities = [m.strip() for m in args.modalities.split(",") if m.strip()]
    if args.config is None:
        if args.content == "arrays":
            raise ConfigError("--content arrays: give --config RUN_CONFIG, whose towers' settings make the arrays")
        return {m: get_modality(m).make_pipeline() for m in modalities}
    from avkit.models import Tower
    from avkit.train import load_run_config

    pipes: dict = {}
    for name, tower_cfg in load_run_config(args.config).model.towers.items():
        tower = Tower(name, tower_cfg)
        other = pipes.get(tower.modality)
        if other is not None and getattr(other, "settings", None) != getattr(tower.pipeline, "settings", None):
            raise ConfigError(f"{args.config}: two {tower.modality} towers with different settings; arrays fit one")
        pipes[tower.modality] = tower.pipeline
    return pipes


def _cmd_shard(args: argparse.Namespace) -> int:
    from avkit.data.shards import write_shards

    pipes = _shard_pipelines(args)
    split = None if args.split == "all" else args.split
    summary = write_shards(args.manifest, args.out, pipes, split=split, shard_size=args.shard_size,
                           content=args.content, shuffle_seed=None if args.keep_order else args.seed,
                           strict=args.strict, show_progress=True)  # fmt: skip
    print(f"wrote {summary['items']} items in {summary['shards']} shards ({summary['bytes'] / 1e6:.1f} MB) "
          f"to {args.out} in {summary['seconds']:.1f} s")  # fmt: skip
    for item in summary["skipped"]:
        print(f"  skipped {item['id']}: {item['reason']}")
    return 0


_positive_seconds = float_type(lambda v: 0 < v < math.inf, "expected a positive number of seconds")


def add_commands(dsub: argparse._SubParsersAction) -> None:
    """Add ``digit-videos``, ``from-videos`` and ``shard`` to ``avkit data``."""
    p = dsub.add_parser(
        "digit-videos",
        help="make a folder of test videos from an audio-image dataset (AV-digits)",
        description="String pairs of one label and split together into MP4 videos (H.264 + AAC): each pair's "
        "image is on screen while its sound plays. Writes LABEL/NAME.mp4 and labels.csv (file,label,split), "
        "so that 'avkit data from-videos OUT --every SECONDS --label-from OUT/labels.csv' gives back one "
        "line per pair, in its split.",
    )
    p.add_argument("--from", dest="source", required=True, type=Path, help="dataset folder or manifest (audio + image)")
    p.add_argument("--out", required=True, type=Path, help="output folder of videos")
    p.add_argument("--per-video", type=positive_int, default=3, help="pairs per video (default 3)")
    p.add_argument("--seconds", type=_positive_seconds, default=1.0, help="seconds per pair (default 1)")
    p.add_argument("--size", type=positive_int, default=64, help="frame side in pixels, even (default 64)")
    p.add_argument("--limit", type=positive_int, help="at most this many videos")
    p.set_defaults(func=_cmd_digit_videos)

    p = dsub.add_parser(
        "from-videos",
        help="write a manifest over a folder of videos (frame at t, audio around t)",
        description="Probe every video under FOLDER (.mp4, .mkv, .webm, .avi, .mov) and write manifest lines "
        '{"id", "video", "t", "label", "split"}: the image is the frame shown at t, the audio the track '
        "around t, at each tower's clip length. Videos without a picture or a sound track are skipped "
        "and reported.",
        epilog=FROM_VIDEOS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("folder", type=Path, help="a folder of videos (searched at any depth)")
    p.add_argument("--out", required=True, type=Path, help="output folder (manifest.jsonl, build.json)")
    p.add_argument("--every", type=_positive_seconds, help="a line every SECONDS of each video (default: one, at its middle)")
    p.add_argument("--label-from", default="parent-dir", metavar="parent-dir|none|CSV",
                   help="labels from the parent folder's name (default), none, or a CSV file,label[,split]")  # fmt: skip
    p.add_argument("--val", type=float, default=0.1, help="share of videos in the val split, by hash (default 0.1)")
    p.add_argument("--test", type=float, default=0.1, help="share of videos in the test split, by hash (default 0.1)")
    p.add_argument("--extract", action="store_true",
                   help="decode each line's frame and clip once to images/ and audio/ (faster training)")  # fmt: skip
    p.add_argument("--seconds", type=_positive_seconds, default=1.0, help="with --extract: clip length (default 1)")
    p.add_argument("--sample-rate", type=positive_int, default=16000, help="with --extract: clip rate, Hz (default 16000)")
    p.add_argument("--strict", action="store_true", help="refuse the build if any video is unusable")
    p.set_defaults(func=_cmd_from_videos)

    p = dsub.add_parser(
        "shard",
        help="write a manifest's split as WebDataset tar shards, for streaming training",
        description="Write the items of one split as WebDataset tar shards (shard-000000.tar, ...) and "
        "shards.json (items and SHA-256 of each shard, labels, split). Bad items are reported and skipped.",
        epilog=SHARD_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("manifest", type=Path, help="manifest.jsonl")
    p.add_argument("--out", required=True, type=Path, help="a new folder for the shards")
    p.add_argument("--shard-size", type=positive_int, default=1000, help="items per shard (default 1000)")
    p.add_argument("--split", default="train", help="the split to write, or 'all' (default train)")
    p.add_argument("--content", choices=["media", "arrays"], default="media",
                   help="encoded files (default), or decoded arrays made with --config's settings")  # fmt: skip
    p.add_argument("--config", type=Path, help="a run config: its towers' settings (needed for --content arrays)")
    p.add_argument("--modalities", default="audio,image", help="without --config: the modalities to store (default audio,image)")
    p.add_argument("--seed", type=int, default=0, help="the items are written in an order drawn from this seed (default 0)")
    p.add_argument("--keep-order", action="store_true", help="write the items in the manifest's order instead")
    p.add_argument("--strict", action="store_true", help="fail on the first unreadable item instead of skipping it")
    p.set_defaults(func=_cmd_shard)

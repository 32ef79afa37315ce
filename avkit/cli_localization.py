"""CLI commands for sound-source localization: ``avkit localize`` and ``avkit eval localization``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from avkit.cli_matching import positive_int
from avkit.fileio import refuse_overwriting

LOCALIZE_EPILOG = """\
examples:
  avkit localize --checkpoint runs/localization --image data/scenes/images/7-en-m3-t0.png \\
                 --audio data/scenes/audio/7-en-m3-t0.wav --out heat.png
  avkit localize ... --box 40,12,66,50            # draw the true box (image pixels) and score it
  avkit eval localization --checkpoint runs/localization --manifest data/scenes/manifest.jsonl --split test

the map is the cosine of the sound's embedding with each cell of the image tower's map,
upsampled (bilinear) to the image and min-max normalised. docs/localization.md explains
the metrics, their binarisation rules and where they break.
"""


def _box(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 4:
        raise argparse.ArgumentTypeError(f"a box is x0,y0,x1,y1 in pixels, got {text!r}")
    return values


def _cmd_localize(args: argparse.Namespace) -> int:
    from avkit.evaluation.localization import binarize, ciou, ground_truth
    from avkit.localization import heat_for_files, save_overlay
    from avkit.models import load_model
    from avkit.plotting import check_picture_path

    check_picture_path(args.out)
    refuse_overwriting(args.out, [args.image, args.audio, args.checkpoint])
    model = load_model(args.checkpoint)
    fh = heat_for_files(model, args.image, args.audio, args.box, args.head)
    title = f"{Path(args.audio).name} in {Path(args.image).name}"
    line = f"peak at x={fh.peak[0]}, y={fh.peak[1]} of {fh.heat.shape[1]}x{fh.heat.shape[0]}; confidence {fh.confidence:.3f}"
    if args.box and not len(fh.boxes):
        line += "; the given boxes lie outside the centre crop the model sees, so no cIoU"
    if len(fh.boxes):
        gt = ground_truth(fh.boxes, tuple(fh.heat.shape))
        score = ciou(binarize(fh.heat, "adaptive", gt), gt)
        title += f"\nadaptive cIoU {score:.2f}"
        line += f"; adaptive cIoU {score:.3f} against the box"
    save_overlay(args.out, fh.image, fh.heat, fh.boxes if len(fh.boxes) else None, title)
    print(line)
    print(f"wrote {args.out}")
    return 0


def _cmd_eval_localization(args: argparse.Namespace) -> int:
    from avkit.fileio import atomic_write_text
    from avkit.localization import evaluate_localization, save_best_and_worst
    from avkit.models import load_model, resolve_checkpoint

    path = resolve_checkpoint(args.checkpoint)
    model = load_model(path)
    untrained = None
    if args.untrained:  # the network as its training started: fresh weights, plus the config's inits
        import torch

        from avkit.models import create_model

        torch.manual_seed(args.seed)
        untrained = create_model(model.config).eval()
    report = evaluate_localization(model, args.manifest, args.split or None, args.head, args.consensus, args.seed, untrained,
                                   show_progress=True)  # fmt: skip
    print(report.markdown())
    run_dir = args.checkpoint if args.checkpoint.is_dir() else path.parent
    out = args.out or run_dir / f"localization-{args.split or 'all'}"
    out.mkdir(parents=True, exist_ok=True)
    saved = {"checkpoint": str(path), "manifest": str(args.manifest), "split": args.split, "consensus": args.consensus,
             "seed": args.seed, "rows": report.rows, "by_objects": report.by_objects, "controls": report.controls,
             "counts": report.counts}  # fmt: skip
    atomic_write_text(out / "localization.json", json.dumps(_no_nan(saved), indent=2))
    grid = save_best_and_worst(out / "cases.png", report, model, args.manifest, k=args.cases, head=args.head)
    print(f"wrote {out / 'localization.json'} and {grid}")
    return 0


def _no_nan(value: object) -> object:
    """``value`` with every NaN float replaced by None (JSON has no NaN)."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    return value


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``localize`` and ``eval localization`` on the top-level parser."""
    raw = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("localize", help="where in an image is a sound? draw the heat map",
                       description="Localise the sound of an audio file in an image with a trained localization "
                       "model; save the heat map over the image (with the box, if given) and print its peak.",
                       epilog=LOCALIZE_EPILOG, formatter_class=raw)  # fmt: skip
    p.add_argument("--checkpoint", required=True, type=Path, help="run directory (its best checkpoint) or .safetensors")
    p.add_argument("--image", required=True, type=Path, help="the scene (PNG, JPEG, ...)")
    p.add_argument("--audio", required=True, type=Path, help="the sound (WAV, FLAC, OGG)")
    p.add_argument("--out", required=True, type=Path, help="output picture (.png, .svg, .pdf)")
    p.add_argument("--box", type=_box, action="append", metavar="X0,Y0,X1,Y1",
                   help="the sounding object's box in the image file's pixels (repeatable)")  # fmt: skip
    p.add_argument("--head", help="which localization head (default: the model's only one)")
    p.set_defaults(func=_cmd_localize)

    p = sub.add_parser("eval", help="evaluate a trained model on a manifest (localization)",
                       description="Evaluate a trained model.", epilog=LOCALIZE_EPILOG, formatter_class=raw)  # fmt: skip
    esub = p.add_subparsers(dest="eval_command", metavar="SUBCOMMAND", required=True)
    e = esub.add_parser("localization", help="cIoU/AUC under three rules, negatives, audio swap, baselines",
                        description="Score a localization model on a split's scenes: cIoU success@0.5 and AUC under "
                        "the median, adaptive and absolute rules; negative-aware AP and max-F1; the audio-swap "
                        "control; baselines (centre Gaussian, whole image, random map, visual only). Prints the "
                        "table; writes localization.json and a picture of the best and worst scenes.",
                        epilog=LOCALIZE_EPILOG, formatter_class=raw)  # fmt: skip
    e.add_argument("--checkpoint", required=True, type=Path, help="run directory (its best checkpoint) or .safetensors")
    e.add_argument("--manifest", required=True, type=Path, help="scenes manifest with boxes (and distractors, for controls)")
    e.add_argument("--split", default="test", help="the split to score (default test; '' for every record)")
    e.add_argument("--out", type=Path, help="output folder (default: the run directory's localization-SPLIT)")
    e.add_argument("--consensus", type=positive_int, default=1,
                   help="boxes from several annotators: a pixel counts fully where this many agree (Flickr: 2)")  # fmt: skip
    e.add_argument("--seed", type=int, default=0, help="random map, swapped and negative sounds (default 0)")
    e.add_argument("--untrained", action="store_true", help="add the untrained network's row (same config, fresh weights)")
    e.add_argument("--cases", type=positive_int, default=6, help="best and worst scenes to draw (default 6 each)")
    e.add_argument("--head", help="which localization head (default: the model's only one)")
    e.set_defaults(func=_cmd_eval_localization)

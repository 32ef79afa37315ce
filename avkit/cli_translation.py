"""CLI commands for cross-modal translation: ``avkit translate`` (both ways) and ``avkit units fit|encode``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from avkit.cli_matching import float_type, positive_float, positive_int
from avkit.fileio import refuse_overwriting

TRANSLATE_EPILOG = """\
examples:
  avkit translate --checkpoint runs/speech-to-image --audio data/digits/audio/3-en-m1-t0.wav --out three.png
  avkit translate ... --decoder diffusion --steps 50 --guidance 3 --seed 1
  avkit translate ... --samples 8 --out threes.png      # 8 draws side by side (diffusion)
  avkit translate --checkpoint runs/image-to-speech --image data/digits/images/3-en-m1-t0.png \
                  --out three.wav --beam 5 --length-penalty 3 --attention attention.png
  avkit translate ... --image ... --out three.wav --beam 5 --rescore-with runs/speech-to-image

speech -> image: the voice encoder predicts the frozen image tower's embedding of the
picture that goes with the sound; an image decoder renders it. image -> speech: a
Show-Attend-Tell decoder reads speech units off the image (beam search), and a unit
vocoder speaks them; --rescore-with speaks every hypothesis of the beam and keeps the one
that a matching model (a speech-to-image or contrastive run) places nearest the image. Train with experiments/translation.py (or the configs it names);
docs/translation.md explains both.
"""


def _cmd_translate(args: argparse.Namespace) -> int:
    from avkit.errors import ConfigError

    if (args.audio is None) == (args.image is None):
        raise ConfigError("give --audio (speech -> image) or --image (image -> speech), one of them")
    if args.audio is not None:
        if args.rescore_with is not None:
            raise ConfigError("--rescore-with chooses among spoken hypotheses: it goes with --image (image -> speech)")
        return _speech_to_image(args)
    return _image_to_speech(args)


def _speech_to_image(args: argparse.Namespace) -> int:
    import torch
    import torch.nn.functional as F

    from avkit.errors import ConfigError
    from avkit.models import load_model
    from avkit.translation import speech_to_image_files
    from avkit.vision.io import SAVE_FORMATS, save_image

    if args.out.suffix.lower() not in SAVE_FORMATS:
        raise ConfigError(f"--out {args.out}: an image file ({', '.join(sorted(SAVE_FORMATS))}), not {args.out.suffix or 'no suffix'!r}")
    refuse_overwriting(args.out, [args.audio, args.checkpoint])
    model = load_model(args.checkpoint)
    options = {k: v for k, v in (("steps", args.steps), ("guidance", args.guidance), ("eta", args.eta)) if v is not None}
    images = speech_to_image_files(model, [args.audio] * args.samples, args.decoder, args.seed, **options)
    row = torch.cat(list(images), dim=-1)  # the draws side by side
    save_image(args.out, F.interpolate(row[None], scale_factor=args.zoom, mode="nearest")[0])
    h, w = images.shape[-2:]
    print(f"wrote {args.out}: {args.samples} image{'s' * (args.samples > 1)} of {w}x{h}, shown {args.zoom}x")
    return 0


def _image_to_speech(args: argparse.Namespace) -> int:
    from avkit.audio.io import WRITE_FORMATS
    from avkit.errors import ConfigError
    from avkit.models import load_model
    from avkit.translation import image_to_speech_files, save_speech

    if args.out.suffix.lower() not in WRITE_FORMATS:
        raise ConfigError(f"--out {args.out}: an audio file ({', '.join(sorted(WRITE_FORMATS))}), not {args.out.suffix or 'no suffix'!r}")
    if args.attention is not None:
        from avkit.plotting import check_picture_path

        check_picture_path(args.attention, "--attention")
    refuse_overwriting(args.out, [args.image, args.checkpoint])
    model = load_model(args.checkpoint)
    matcher = load_model(args.rescore_with) if args.rescore_with is not None else None
    decoding = {k: v for k, v in (("beam", args.beam), ("length_penalty", args.length_penalty)) if v is not None}
    spoken = image_to_speech_files(model, [args.image], matcher, **decoding)[0]
    if not spoken.units:
        print(f"translate: the decoder emitted no units for {args.image} (the end token ranked first), so there is "
              f"no speech to write; {args.out} was not written. Try another --beam.", file=sys.stderr)  # fmt: skip
        return 1
    save_speech(args.out, spoken)
    print(f"units: {' '.join(map(str, spoken.units))}")
    if spoken.match is not None:
        print(f"chosen by {args.rescore_with} among the beam's hypotheses: cosine {spoken.match:.3f} to the image")
    print(f"wrote {args.out}: {len(spoken.waveform) / spoken.sample_rate:.2f} s from {len(spoken.units)} units")
    if args.attention is not None:
        from avkit.translation.plots import save_attention, shown_image

        save_attention(args.attention, [shown_image(model, args.image)], [spoken], [args.image.name])
        print(f"wrote {args.attention}")
    return 0


UNITS_EPILOG = """\
examples:
  avkit units fit data/digits/manifest.jsonl --out runs/units.safetensors --k 50
  avkit units fit data/digits/manifest.jsonl --out runs/tower-units.safetensors --checkpoint runs/contrastive
  avkit units encode data/digits/manifest.jsonl --units runs/units.safetensors --out runs/units.jsonl

units are k-means clusters (faiss) of speech frames: log-mel frames by default, or a trained audio
tower's temporal map (--checkpoint). encode writes the manifest again with three fields per line:
"units" (consecutive repeats collapsed) and "unit_durations" (frames each unit lasted), which a
unit_vocoder head trains on, and "spoken_units", the units between the clip's leading and
trailing silence (frames more than --trim-db below the loudest), which a caption head decodes
from a picture: the silence's units say what the background noise was, not what was said.
"""


non_negative_float = float_type(lambda v: v >= 0, "a number >= 0")


def _cmd_units_fit(args: argparse.Namespace) -> int:
    from avkit.models import load_model, resolve_checkpoint
    from avkit.translation.units import fit_units

    refuse_overwriting(args.out, [args.manifest])
    model = load_model(args.checkpoint) if args.checkpoint else None
    checkpoint = str(resolve_checkpoint(args.checkpoint)) if args.checkpoint else ""
    units = fit_units(args.manifest, args.k, args.split or None, model=model, tower=args.tower, checkpoint=checkpoint,
                      seed=args.seed, show_progress=True)  # fmt: skip
    units.save(args.out)
    f = units.fitted_on
    print(f"wrote {args.out}: {units.k} units of {units.features['kind']} frames ({units.frames_per_second:g} per "
          f"second), fitted on {f['frames']} frames of {f['clips']} clips" + (f"; {f['skipped']} skipped" if f["skipped"] else ""))
    return 0


def _cmd_units_encode(args: argparse.Namespace) -> int:
    from avkit.models import load_model
    from avkit.translation.units import SpeechUnits, encode_manifest

    model = load_model(args.checkpoint) if args.checkpoint else None
    units = SpeechUnits.load(args.units, model)
    summary = encode_manifest(units, args.manifest, args.out, args.trim_db, show_progress=True, strict=args.strict)
    for s in summary["skipped"]:
        print(f"skipped {s['id']}: {s['reason']}")
    print(f"wrote {args.out}: {summary['count']} clips as units, {summary['mean_length']:.1f} units per clip on average, "
          f"{summary['mean_spoken_length']:.1f} between the silences")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``translate`` and ``units`` on the top-level parser."""
    p = sub.add_parser("translate", help="speech -> image, or image -> speech, with a trained model",
                       description="Translate a sound into an image (--audio: a speech-to-image model's voice encoder "
                       "predicts an image embedding; an image decoder, deconv or diffusion, renders it), or an image "
                       "into speech (--image: an image-to-speech model decodes speech units and speaks them).",
                       epilog=TRANSLATE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--checkpoint", required=True, type=Path, help="run directory (its best checkpoint) or .safetensors")
    p.add_argument("--audio", type=Path, help="speech -> image: the sound (WAV, FLAC, OGG)")
    p.add_argument("--image", type=Path, help="image -> speech: the picture (PNG, JPEG, ...)")
    p.add_argument("--out", required=True, type=Path, help="output: a picture (.png) for --audio, a sound (.wav) for --image")
    p.add_argument("--decoder", help="the image decoder, by head name or kind (deconv, diffusion; default: the only one)")
    p.add_argument("--steps", type=positive_int, help="diffusion: DDIM steps (default: the decoder's, 50)")
    p.add_argument("--guidance", type=float, help="diffusion: classifier-free guidance scale (default: the decoder's, 3)")
    p.add_argument("--eta", type=float, help="diffusion: DDIM eta, 0 deterministic to 1 DDPM-like (default: the decoder's, 0)")
    p.add_argument("--samples", type=positive_int, default=1, help="images to draw, side by side (default 1)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the diffusion sampler (default 0)")
    p.add_argument("--zoom", type=positive_int, default=4, help="enlarge the picture this many times, nearest pixel (default 4)")
    p.add_argument("--beam", type=positive_int, help="image -> speech: beam width (1: greedy; default: the caption head's)")
    p.add_argument("--length-penalty", type=non_negative_float, metavar="A",
                   help="image -> speech: rank the beam's hypotheses by log p / length^A; larger A favours longer "
                   "ones (default: the caption head's, 1; experiments/translation.py chooses it on validation)")  # fmt: skip
    p.add_argument("--attention", type=Path, help="image -> speech: also draw the attention over the image for each unit")
    p.add_argument("--rescore-with", type=Path, metavar="RUN",
                   help="image -> speech: speak every hypothesis of the beam and keep the one this matching run "
                   "(speech-to-image or contrastive) embeds nearest the image")  # fmt: skip
    p.set_defaults(func=_cmd_translate)

    p = sub.add_parser("units", help="discrete speech units: fit k-means on speech frames, encode clips",
                       description="Discrete speech units (fairseq's speech2unit, with faiss k-means).",
                       epilog=UNITS_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    usub = p.add_subparsers(dest="units_command", metavar="SUBCOMMAND", required=True)
    f = usub.add_parser("fit", help="cluster a split's speech frames into k units",
                        description="Cluster the frames of a split's speech into k units and save the centroids with "
                        "the feature config.", epilog=UNITS_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    f.add_argument("manifest", type=Path, help="manifest.jsonl with audio")
    f.add_argument("--out", required=True, type=Path, help="the unit file to write (.safetensors)")
    f.add_argument("--k", type=positive_int, default=50, help="number of units (default 50; 50-100 is usual)")
    f.add_argument("--split", default="train", help="the split to fit on (default train; '' for every record)")
    f.add_argument("--checkpoint", type=Path, help="cluster this run's audio tower's temporal map instead of log-mel frames")
    f.add_argument("--tower", default="audio", help="the tower of --checkpoint (default audio)")
    f.add_argument("--seed", type=int, default=0, help="k-means seed (default 0)")
    f.set_defaults(func=_cmd_units_fit)
    e = usub.add_parser("encode", help="write a manifest with each clip's unit sequence and durations",
                        description="Encode every clip of a manifest as units; write the manifest again with the fields "
                        "'units', 'unit_durations' and 'spoken_units' (media paths made absolute).", epilog=UNITS_EPILOG,
                        formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    e.add_argument("manifest", type=Path, help="manifest.jsonl with audio")
    e.add_argument("--units", required=True, type=Path, help="a unit file from 'avkit units fit'")
    e.add_argument("--out", required=True, type=Path, help="the manifest to write")
    e.add_argument("--checkpoint", type=Path, help="the run whose tower the units cluster (tower units only)")
    e.add_argument("--trim-db", type=positive_float, default=15.0, metavar="DB",
                   help="spoken_units: a frame more than DB below the clip's loudest is silence (default 15; "
                   "a large value such as 80 keeps every unit)")
    e.add_argument("--strict", action="store_true", help="fail on the first clip that does not decode, instead of skipping it")
    e.set_defaults(func=_cmd_units_encode)

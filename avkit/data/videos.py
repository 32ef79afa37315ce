"""A manifest over a folder of videos (``avkit data from-videos``).

    report = build_from_videos("clips/", "data/clips", VideosConfig(every=2.0))

Every video under the folder (``.mp4``, ``.mkv``, ``.webm``, ...) is probed
(its header only). Each usable one gives manifest lines ``{"id", "video", "t",
"label", "split"}``: one at its middle, or one every ``every`` seconds (at the
centre of each window). Labels come from the parent folder's name
(``dog/x.mp4``: ``dog``) or a CSV with columns ``file,label[,split]``. Without
a split in the CSV, a video's split is drawn from a hash of its path, so all of
a video's lines share one split and a re-run gives the same splits.

With ``extract``, each line's frame and audio clip are decoded once and written
as ``images/ID.png`` and ``audio/ID.wav``, and the manifest names those files
instead: reading them in training is much faster than seeking in a video.

A video without a picture or a sound stream, or that cannot be opened, is
reported and skipped (``strict``: refused).
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from avkit.audio.io import load_audio, save_audio
from avkit.data.build import BuildReport, finish_build
from avkit.data.manifest import Record, read_manifest, unsafe_id
from avkit.errors import ConfigError, MediaError
from avkit.fileio import atomic_write_text
from avkit.progress import progress
from avkit.video.io import VIDEO_SUFFIXES, probe_video, read_audio_at, read_frame, save_video
from avkit.vision.io import load_image, save_image

log = logging.getLogger(__name__)


@dataclass
class VideosConfig:
    """How ``avkit data from-videos`` reads a folder.

    Attributes:
        every: a line every this many seconds of each video; None: one line, at its middle.
        label_from: ``"parent-dir"``, ``"none"``, or the path of a CSV (``file,label[,split]``;
            ``file`` relative to the folder).
        val_fraction, test_fraction: the share of videos (by a hash of the path) in each split,
            when the CSV gives none.
        extract: decode each line's frame and clip to ``images/`` and ``audio/`` files.
        seconds, sample_rate: the extracted clips' length and rate.
        strict: refuse the build if any video is unusable, instead of skipping it.
    """

    every: float | None = None
    label_from: str = "parent-dir"
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    extract: bool = False
    seconds: float = 1.0
    sample_rate: int = 16000
    strict: bool = False

    def __post_init__(self) -> None:
        if self.every is not None and not self.every > 0:
            raise ConfigError(f"--every must be a positive number of seconds, got {self.every}")
        if not (0 <= self.val_fraction and 0 <= self.test_fraction and self.val_fraction + self.test_fraction < 1):
            raise ConfigError(f"val and test fractions must be >= 0 and sum below 1, got {self.val_fraction}, {self.test_fraction}")
        if not self.seconds > 0 or self.sample_rate <= 0:
            raise ConfigError(f"clip seconds and sample rate must be positive, got {self.seconds}, {self.sample_rate}")


def find_videos(folder: Path) -> list[Path]:
    """Video files under ``folder`` (any depth), sorted; hidden files and folders are left out."""
    if not folder.is_dir():
        raise ConfigError(f"{folder}: not a folder of videos")
    found = [p for p in folder.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()
             and not any(part.startswith(".") for part in p.relative_to(folder).parts)]  # fmt: skip
    return sorted(found)


def read_label_csv(path: Path) -> dict[str, tuple[str | None, str | None]]:
    """``file -> (label, split)`` from a CSV with a header naming ``file`` and ``label`` (and optionally ``split``)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"{path}: cannot be read as a label CSV ({exc})") from None
    if not rows or not {"file", "label"} <= set(rows[0]):
        raise ConfigError(f"{path}: a label CSV needs a header with the columns file,label (and optionally split)")
    return {r["file"]: (r["label"] or None, r.get("split") or None) for r in rows}


def hashed_split(key: str, val_fraction: float, test_fraction: float) -> str:
    """``train``, ``val`` or ``test`` for ``key``, by a hash (the same on every machine and run)."""
    u = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64
    return "test" if u < test_fraction else "val" if u < test_fraction + val_fraction else "train"


def line_times(duration: float, every: float | None) -> list[float]:
    """The times of a video's lines: its middle, or the centre of each ``every``-second window."""
    if every is None or duration < every:
        return [round(duration / 2, 3)]
    return [round(every / 2 + i * every, 3) for i in range(int(duration // every))]


def build_from_videos(folder: str | Path, out: str | Path, cfg: VideosConfig | None = None,
                      show_progress: bool = False) -> BuildReport:  # fmt: skip
    """Write ``out/manifest.jsonl`` (and ``build.json``) over the videos in ``folder``; see the module docstring."""
    cfg = cfg or VideosConfig()
    folder, out = Path(folder), Path(out)
    started = time.perf_counter()
    csv_labels = None if cfg.label_from in ("parent-dir", "none") else read_label_csv(Path(cfg.label_from))
    videos = find_videos(folder)
    if not videos:
        raise ConfigError(f"{folder}: holds no video files ({', '.join(VIDEO_SUFFIXES)})")
    report = BuildReport(manifest=out / "manifest.jsonl")
    out.mkdir(parents=True, exist_ok=True)
    records: list[Record] = []
    ids: dict[str, str] = {}  # line id -> its video (a/b.mp4 and a__b.mp4 would share ids)
    for path in progress(videos, "reading videos", enabled=show_progress, unit="video"):
        rel = path.relative_to(folder).as_posix()
        try:
            info = probe_video(path)
            if not (info.has_video and info.has_audio):
                raise MediaError(path, f"has no {'video' if not info.has_video else 'audio'} stream; "
                                 "a line needs both a picture and a sound track")  # fmt: skip
        except MediaError as exc:
            report.skip(rel, exc.reason)
            continue
        label, split = _label_and_split(rel, cfg, csv_labels)
        if csv_labels is not None and rel not in csv_labels:
            report.skip(rel, f"not listed in {cfg.label_from}")
            continue
        for t in line_times(info.usable_duration, cfg.every):
            rid = f"{rel.replace('/', '__')}-t{t:.2f}"
            if unsafe_id(rid) or rid in ids:
                why = f"not a safe file name ({unsafe_id(rid)})" if unsafe_id(rid) else f"also the id of a line of {ids[rid]}"
                report.skip(rel, f"its line id {rid!r} is {why}; rename the file")
                break
            ids[rid] = rel
            video = os.path.relpath(path, out)
            if cfg.extract:
                try:
                    records.append(_extract(path, out, rid, t, cfg, label, split))
                except MediaError as exc:
                    report.skip(rid, exc.reason)
                continue
            records.append(Record(id=rid, paths={"audio": video, "image": video}, label=label, split=split,
                                  video=video, t=t))  # fmt: skip
    meta = {"dataset": "from-videos", "source": str(folder), "videos": len(videos), "config": asdict(cfg)}
    return finish_build(report, records, cfg.strict, started, meta)


def _label_and_split(rel: str, cfg: VideosConfig, csv_labels: dict[str, tuple[str | None, str | None]] | None
                     ) -> tuple[str | None, str]:  # fmt: skip
    label, split = None, None
    if csv_labels is not None:
        label, split = csv_labels.get(rel, (None, None))
    elif cfg.label_from == "parent-dir":
        parent = Path(rel).parent.name
        label = parent or None
    return label, split or hashed_split(rel, cfg.val_fraction, cfg.test_fraction)


def _extract(path: Path, out: Path, rid: str, t: float, cfg: VideosConfig, label: str | None, split: str) -> Record:
    """Decode one line's frame and clip to files; the record names them."""
    image, audio = f"images/{rid}.png", f"audio/{rid}.wav"
    save_image(out / image, read_frame(path, t))
    save_audio(out / audio, read_audio_at(path, t, cfg.seconds, cfg.sample_rate), cfg.sample_rate)
    return Record(id=rid, paths={"audio": audio, "image": image}, label=label, split=split)


def videos_from_pairs(manifest: str | Path, out: str | Path, per_video: int = 3, seconds: float = 1.0,
                      size: int = 64, fps: int = 10, limit: int | None = None, show_progress: bool = False
                      ) -> list[Path]:  # fmt: skip
    """Make a folder of test videos from an audio-image manifest (such as AV-digits): each video strings
    ``per_video`` pairs of one label and split together, ``seconds`` each (the image on screen while
    its sound plays), as ``out/LABEL/NAME.mp4``, with ``out/labels.csv`` (file, label, split).
    ``avkit data from-videos out --every SECONDS --label-from out/labels.csv`` then gives one line per
    pair, in its original split. ``limit``: at most this many videos."""
    import torch.nn.functional as F  # noqa: N812

    if size % 2 or size < 2:
        raise ConfigError(f"--size must be an even number of pixels (H.264 halves the colour planes), got {size}")
    man = read_manifest(manifest)
    out = Path(out)
    groups: dict[tuple[str, str], list[Record]] = {}
    for rec in man.records:
        groups.setdefault((rec.label or "none", rec.split or "train"), []).append(rec)
    plan = [(i, key, recs[i : i + per_video]) for key, recs in sorted(groups.items()) for i in range(0, len(recs), per_video)]
    plan = [(key, recs) for _, key, recs in sorted(plan, key=lambda p: p[0])][:limit]  # every label and split early
    rows, written = ["file,label,split"], []
    for (label, split), recs in progress(plan, "writing videos", enabled=show_progress, unit="video"):
        frames, audio = [], []
        for rec in recs:
            img = load_image(man.resolve(rec, "image"))
            img = F.interpolate(img[None], size=(size, size), mode="bilinear", align_corners=False)[0]
            frame = (img.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
            frames += [frame] * round(seconds * fps)
            wav = load_audio(man.resolve(rec, "audio"), 16000)[: round(seconds * 16000)]
            audio.append(F.pad(wav, (0, round(seconds * 16000) - len(wav))))
        name = f"{label}/{recs[0].id}.mp4"
        save_video(out / name, frames, fps, torch.cat(audio).numpy(), 16000)
        rows.append(f"{name},{label},{split}")
        written.append(out / name)
    atomic_write_text(out / "labels.csv", "\n".join(rows) + "\n")
    return written

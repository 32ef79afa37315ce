"""Validate a manifest and its media, reporting every problem by line.

Used by ``avkit data check``; also the gate of the demo pipeline.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from avkit.data.manifest import AV_MODALITIES, Record, iter_lines, parse_record, read_item
from avkit.errors import AvkitError, ManifestError, MediaError, TargetError
from avkit.modalities import get_modality
from avkit.progress import progress
from avkit.video.io import VideoInfo, probe_video

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Problem:
    """One problem: where (line, id) and what."""

    line: int | None
    id: str | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line is not None else "manifest"
        who = f" (id {self.id!r})" if self.id else ""
        return f"{where}{who}: {self.message}"


@dataclass
class CheckReport:
    """Result of :func:`check_manifest`."""

    path: Path
    records: int = 0
    problems: list[Problem] = field(default_factory=list)
    splits: Counter = field(default_factory=Counter)
    labels: dict[str, Counter] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """Human-readable report: problems, then counts per split and label."""
        lines = [f"{self.path}: {self.records} records, {len(self.problems)} problems"]
        lines += [f"  {p}" for p in self.problems]
        for split in sorted(self.splits, key=str):
            labels = self.labels.get(split, Counter())
            per_label = ", ".join(f"{k}:{v}" for k, v in sorted(labels.items(), key=lambda kv: str(kv[0])))
            lines.append(f"  split {split}: {self.splits[split]} records" + (f" [{per_label}]" if per_label else ""))
        return "\n".join(lines)


def check_manifest(
    path: str | Path,
    modalities: Sequence[str] = AV_MODALITIES,
    decode: bool = True,
    show_progress: bool = False,
) -> CheckReport:
    """Check a manifest line by line, and every file it names.

    Finds: lines that are not JSON or lack a field, duplicate ids, missing
    files, unreadable media (fully decoded by each registered modality's loader
    when ``decode``), and boxes outside their item (checked when a modality that
    takes boxes, such as ``image``, is among ``modalities``; its files are then
    decoded even without ``decode``). Never raises for a bad line; raises
    ManifestError only if the manifest itself cannot be opened, and ConfigError
    for an unregistered modality.
    """
    pipelines = {name: get_modality(name).make_pipeline().strictly() for name in modalities}  # truncation is a problem
    boxed = next((name for name, pipe in pipelines.items() if pipe.takes_boxes), None)
    path = Path(path)
    report = CheckReport(path=path)
    root = path.parent
    seen: dict[str, int] = {}
    records: list[Record] = []
    for number, text in iter_lines(path):
        try:
            rec = parse_record(text, path, number, modalities)
        except ManifestError as exc:
            report.problems.append(Problem(number, None, exc.reason))
            continue
        if rec.id in seen:
            report.problems.append(Problem(number, rec.id, f"duplicate id (first on line {seen[rec.id]})"))
            continue
        seen[rec.id] = number
        records.append(rec)
    if not records and not report.problems:
        report.problems.append(Problem(None, None, "manifest has no records"))

    videos: dict[Path, VideoInfo | str] = {}  # each video probed once, however many lines name it
    for rec in progress(records, desc="checking media", enabled=show_progress):
        failed: set[str] = set()  # modalities already reported for this line
        box_problems: list[str] = []
        if rec.video is not None:
            problem = _video_problem(root / rec.video, rec, modalities, videos)
            if problem:
                report.problems.append(Problem(rec.line, rec.id, f"video {rec.video!r}: {problem}"))
                continue
        for name in modalities:
            file = root / rec.paths[name]
            if not file.exists():
                report.problems.append(Problem(rec.line, rec.id, f"{name} file {rec.paths[name]!r} does not exist"))
                failed.add(name)
                continue
            has_boxes = name == boxed and bool(rec.boxes)
            if decode or has_boxes:
                try:
                    raw = read_item(rec, file, pipelines[name])
                    if has_boxes:
                        pipelines[name].check_boxes(raw, torch.tensor(rec.boxes, dtype=torch.float32))
                except TargetError as exc:
                    box_problems.append(str(exc))
                except AvkitError as exc:
                    reason = exc.reason if isinstance(exc, MediaError) else str(exc)
                    report.problems.append(Problem(rec.line, rec.id, f"{name} file {rec.paths[name]!r}: {reason}"))
                    failed.add(name)
        report.problems += [Problem(rec.line, rec.id, msg) for msg in box_problems]
        if not failed and not box_problems:
            report.records += 1
            split = rec.split or "(none)"
            report.splits[split] += 1
            report.labels.setdefault(split, Counter())[rec.label or "(none)"] += 1
    log.info("checked %s: %d usable records, %d problems", path, report.records, len(report.problems))
    return report


#: The stream a modality takes from a video; other modalities are checked by decoding.
_VIDEO_STREAMS = {"audio": "has_audio", "image": "has_video"}


def _video_problem(file: Path, rec: Record, modalities: Sequence[str], probed: dict[Path, VideoInfo | str]) -> str | None:
    """Why ``rec``'s video cannot serve it (no file, not a video, a stream missing, ``t`` outside), or None."""
    if file not in probed:
        try:
            probed[file] = probe_video(file)
        except MediaError as exc:
            probed[file] = exc.reason
    info = probed[file]
    if isinstance(info, str):
        return info
    lacking = [name for name in modalities if not getattr(info, _VIDEO_STREAMS.get(name, "has_video"))]
    if lacking:
        return f"has no {' or '.join(_VIDEO_STREAMS.get(n, n).removeprefix('has_') for n in lacking)} stream " \
               f"(needed for {', '.join(lacking)})"
    spans = {"audio": info.audio_duration, "image": info.video_duration}
    for name in modalities:
        span = spans.get(name) or info.duration
        if rec.t is not None and span and rec.t > span + 0.1:
            which = "video" if span == info.duration else f"{_VIDEO_STREAMS[name].removeprefix('has_')} stream"
            return f"t={rec.t:g} s is past the end of the {which} ({span:.3f} s)"
    return None

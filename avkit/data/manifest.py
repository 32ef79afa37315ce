"""The manifest contract: a JSONL file, one multi-modal item per line.

    {"id": "a1", "audio": "audio/a1.wav", "image": "images/a1.png", "label": "7", "split": "train"}
    {"id": "x-3.5", "video": "clips/x.mp4", "t": 3.5, "label": "dog", "split": "train"}

- ``id`` (string, unique, a safe file name: no ``/`` or ``\\``, not ``.`` or ``..``, no
  control characters; builders name files after it) and one path field per modality (``audio``, ``image``,
  or any registered modality name) are required; paths are relative to the
  manifest's folder (absolute paths are allowed).
- A line may instead name a ``video`` and a time ``t`` (seconds, >= 0), and no
  modality's file: every modality then reads the video at ``t`` (the image is the
  frame shown at ``t``, the audio is the track around ``t``; see :mod:`avkit.video.io`).
  On a line that names files, ``video`` and ``t`` are metadata like any other key.
- ``label`` and ``split`` may be absent or null.
- ``boxes``: optional ``[[x0, y0, x1, y1], ...]`` pixel boxes of the sounding
  object in the image (``x0 < x1``, ``y0 < y1``, at least one box; inside the
  image, which ``avkit data check`` and training verify).
- Any other key is kept in :attr:`Record.extra` (for example ``voice``).

See docs/data.md for the full contract.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from avkit.errors import ManifestError
from avkit.fileio import atomic_write_text

if TYPE_CHECKING:
    from avkit.modalities import Pipeline

#: Keys with a fixed meaning; every other key is a modality path or extra metadata.
RESERVED_KEYS = ("id", "label", "split", "boxes")
#: The modalities an audio-visual manifest must have.
AV_MODALITIES: tuple[str, ...] = ("audio", "image")

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Record:
    """One manifest line.

    Attributes:
        id: unique identifier.
        paths: modality name -> path as written in the manifest (for a video line, the video's path
            for every modality).
        label: class label as a string, or None.
        split: split name (``train``, ``val``, ``test``, ...), or None.
        boxes: pixel boxes ``(x0, y0, x1, y1)`` of the sounding object, or None.
        extra: any other keys of the line.
        line: 1-based line number in the manifest (0 for records built in code).
        video: the video file of a video line, as written; None for a line of separate files.
        t: the time in the video, seconds (with ``video``).
    """

    id: str
    paths: dict[str, str]
    label: str | None = None
    split: str | None = None
    boxes: tuple[Box, ...] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    line: int = 0
    video: str | None = None
    t: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The manifest line as a dict (key order: id, paths or video and t, label, split, boxes, extra)."""
        media = {"video": self.video, "t": self.t} if self.video is not None else self.paths
        out: dict[str, Any] = {"id": self.id, **media}
        if self.label is not None:
            out["label"] = self.label
        if self.split is not None:
            out["split"] = self.split
        if self.boxes is not None:
            out["boxes"] = [list(b) for b in self.boxes]
        out.update(self.extra)
        return out


def parse_boxes(value: Any) -> tuple[Box, ...]:
    """``[[x0, y0, x1, y1], ...]`` as float boxes; ValueError saying what is wrong (the manifest's
    ``boxes`` rule: a non-empty list of 4 finite numbers each, ``x0 < x1``, ``y0 < y1``)."""
    if not isinstance(value, list):
        raise ValueError("'boxes' must be a list of [x0, y0, x1, y1] boxes")
    if not value:
        raise ValueError("'boxes' is an empty list; leave the key out (or null) for an item without boxes")
    boxes = []
    for i, box in enumerate(value):
        if (
            not isinstance(box, list)
            or len(box) != 4
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box)
        ):
            raise ValueError(f"box {i} must be 4 numbers [x0, y0, x1, y1], got {box!r}")
        x0, y0, x1, y1 = (float(v) for v in box)
        if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
            raise ValueError(f"box {i} has a non-finite coordinate: {box!r}")
        if not (x0 < x1 and y0 < y1):
            raise ValueError(f"box {i} must have x0 < x1 and y0 < y1, got {box!r}")
        boxes.append((x0, y0, x1, y1))
    return tuple(boxes)


#: Longest id, in UTF-8 bytes: a file name (255 bytes on common file systems) less room for ``.png``, ``.wav``.
MAX_ID_BYTES = 240


def unsafe_id(rid: str) -> str | None:
    """Why ``rid`` cannot be a file name inside a folder (a path separator, ``..``, a control
    character), or None if it can."""
    if "/" in rid or "\\" in rid:
        return "it holds a path separator"
    if rid in (".", ".."):
        return "it names a folder"
    if any(ord(c) < 32 or ord(c) == 127 for c in rid):
        return "it holds a control character"
    if len(rid.encode("utf-8")) > MAX_ID_BYTES:
        return f"it is {len(rid.encode('utf-8'))} bytes long; file names allow {MAX_ID_BYTES} (with room for a suffix)"
    return None


def parse_record(
    text: str, path: str | Path, line: int, modalities: Sequence[str] = AV_MODALITIES
) -> Record:
    """Parse one manifest line.

    Raises:
        ManifestError: naming ``path:line``, for invalid JSON, a non-object, a
            missing or mistyped field, or a malformed box.
    """
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(path, line, f"not valid JSON ({exc.msg} at character {exc.pos + 1})") from None
    if not isinstance(obj, dict):
        raise ManifestError(path, line, f"expected a JSON object, got {type(obj).__name__}")
    rid = obj.get("id")
    if rid is None:
        raise ManifestError(path, line, "missing field 'id' (a non-empty string)")
    if not isinstance(rid, str) or not rid:
        raise ManifestError(path, line, f"'id' must be a non-empty string, got {rid!r}")
    why = unsafe_id(rid)
    if why:
        raise ManifestError(path, line, f"id {rid!r} is not a safe name ({why}): builders make file names of ids, "
                            "so an id has no '/' or '\\', is not '.' or '..', and has no control characters")  # fmt: skip
    paths: dict[str, str] = {}
    files = any(name in obj for name in modalities)  # then 'video' and 't', if present, are metadata
    video, t = (None, None) if files else (obj.get("video"), obj.get("t"))
    if video is not None:
        if not isinstance(video, str) or not video:
            raise ManifestError(path, line, f"'video' must be a path relative to the manifest, got {video!r}")
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t < 0:
            raise ManifestError(path, line, f"a video line needs 't', the time in seconds (a number >= 0), got {t!r}")
        t = float(t)
    for name in modalities:
        value = video if video is not None else obj.get(name)
        if not isinstance(value, str) or not value:
            raise ManifestError(path, line, f"missing field {name!r} (a path relative to the manifest), "
                                "or 'video' and 't'")  # fmt: skip
        paths[name] = value
    label = obj.get("label")
    if label is not None and not isinstance(label, (str, int)) or isinstance(label, bool):
        raise ManifestError(path, line, f"'label' must be a string, integer or null, got {label!r}")
    split = obj.get("split")
    if split is not None and not isinstance(split, str):
        raise ManifestError(path, line, f"'split' must be a string or null, got {split!r}")
    boxes = None
    if obj.get("boxes") is not None:
        try:
            boxes = parse_boxes(obj["boxes"])
        except ValueError as exc:
            raise ManifestError(path, line, str(exc)) from None
    media = ("video", "t") if video is not None else ()
    extra = {k: v for k, v in obj.items() if k not in RESERVED_KEYS and k not in paths and k not in media}
    return Record(
        id=rid,
        paths=paths,
        label=None if label is None else str(label),
        split=split,
        boxes=boxes,
        extra=extra,
        line=line,
        video=video,
        t=t if video is not None else None,
    )


def iter_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` for each non-blank line of a manifest."""
    path = Path(path)
    if not path.exists():
        raise ManifestError(path, None, "manifest does not exist")
    if not path.is_file():
        raise ManifestError(path, None, "manifest is not a regular file")
    try:
        with path.open("r", encoding="utf-8-sig") as handle:
            for number, text in enumerate(handle, start=1):
                if text.strip():
                    yield number, text
    except UnicodeDecodeError as exc:
        raise ManifestError(path, None, f"not UTF-8 text ({exc.reason}); expected JSON lines") from None


class Manifest:
    """A parsed manifest: its records, and paths resolved against its folder.

    Build one with :func:`read_manifest`.
    """

    def __init__(self, path: str | Path, records: list[Record]) -> None:
        self.path = Path(path)
        self.root = self.path.parent
        self.records = records
        self._by_id = {r.id: r for r in records}

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records)

    def __getitem__(self, rid: str) -> Record:
        return self._by_id[rid]

    def resolve(self, record: Record, modality: str) -> Path:
        """Absolute path of ``record``'s file for ``modality`` (its video, for a video line)."""
        return self.root / record.paths[modality]

    def load(self, record: Record, pipeline: Pipeline) -> Any:
        """``record``'s raw item for ``pipeline`` (its ``modality`` field): see :func:`read_item`."""
        return read_item(record, self.resolve(record, pipeline.modality), pipeline)

    def shard(self, index: int, count: int, split: str | None = None) -> Manifest:
        """The ``index``-th of ``count`` interleaved parts of ``split``'s records (every ``count``-th, from ``index``),
        as a manifest of the same folder: ``count`` processes that each take one see every record once."""
        if not 0 <= index < count:
            raise ValueError(f"shard {index} of {count} does not exist")
        return Manifest(self.path, self.split(split)[index::count])

    def split(self, name: str | None) -> list[Record]:
        """Records whose split is ``name`` (None: every record)."""
        return self.records if name is None else [r for r in self.records if r.split == name]

    def labels(self) -> list[str]:
        """Sorted distinct labels (numeric labels sort numerically)."""
        found = {r.label for r in self.records if r.label is not None}
        return sorted(found, key=lambda s: (0, int(s), s) if s.lstrip("-").isdigit() else (1, 0, s))


def read_item(record: Record, path: Path, pipeline: Pipeline) -> Any:
    """``pipeline``'s raw item of ``record``, whose file for that modality is ``path``: the decoded file,
    or what the video holds at ``record.t``. Raises MediaError naming the file."""
    return pipeline.load(path) if record.video is None else pipeline.load_video(path, record.t or 0.0)


def read_manifest(path: str | Path, modalities: Sequence[str] = AV_MODALITIES) -> Manifest:
    """Read and validate a manifest's structure (not its media; see :func:`avkit.data.check`).

    Raises:
        ManifestError: on the first bad line, a duplicate id, or an empty manifest.
    """
    records: list[Record] = []
    seen: dict[str, int] = {}
    for number, text in iter_lines(path):
        rec = parse_record(text, path, number, modalities)
        if rec.id in seen:
            raise ManifestError(path, number, f"duplicate id {rec.id!r} (first on line {seen[rec.id]})")
        seen[rec.id] = number
        records.append(rec)
    if not records:
        raise ManifestError(path, None, "manifest has no records")
    return Manifest(path, records)


def write_manifest(path: str | Path, records: Iterable[Record]) -> None:
    """Write records as JSONL, atomically."""
    lines = [json.dumps(r.to_json(), ensure_ascii=False) for r in records]
    atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))

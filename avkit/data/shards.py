"""WebDataset tar shards: written from a manifest, streamed in training (``avkit data shard``).

    write_shards("data/digits/manifest.jsonl", "data/shards", pipelines, split="train", shard_size=1000)
    stream = ShardStream(ShardSet.load("data/shards"), pipelines, batch_size=64, seed=0)
    for batch in stream.loader(epoch=0, workers=2): ...           # avkit.data.batch.Batch

A shard folder holds ``shard-000000.tar``, ... and ``shards.json`` (the items of
each shard, its SHA-256, the labels, the split, and what the shards hold). Each
item is one tar sample keyed by its number in the set (ids may hold dots,
which WebDataset's key rule would split): ``N.json`` (id, label, split, boxes,
other fields) and one member per modality:

- ``content="media"``: the encoded file as the manifest names it
  (``N.audio.wav``, ``N.image.png``); a video line's frame and clip are
  encoded as PNG and WAV;
- ``content="arrays"``: what each tower's pipeline loads (the decoded,
  resampled waveform; the image as floats), as ``N.audio.npy``: no decoding
  when training, at the price of larger shards.

Reading (:class:`ShardStream`). An epoch puts the shards in an order drawn from
``(seed, epoch)`` and reads them as one sequence of items. Each process (rank)
takes a contiguous part of it, so every item is read once per epoch across
processes, and every process takes the same number of steps. A process splits
its part among its DataLoader workers by batches (worker ``w`` makes the
process's batches ``w, w + W, ...``, which the DataLoader hands out in that
order), and each worker mixes its items in a shuffle buffer seeded by
``(seed, epoch, rank, worker)``. Shards are read whole and in sequence (a
process's first and last shards only in part): no random access.

Resume is exact: a resumed epoch draws the same shard order and buffers, and
each worker re-reads, without decoding or training on them, the items of the
batches the run had already taken. That needs the same shards, processes,
workers and shuffle buffer: the engine refuses a resume with any of them
changed (the run config, and the digest of ``shards.json`` in the checkpoint).

A shard that is damaged or cut short is named in a warning; the items read
before the damage are used, and each of the rest is a skipped item named by
its shard and number (in ``Batch.skipped``, like an unreadable item of a
manifest), so batches keep their planned sizes.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import random
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from avkit.data.batch import Batch
from avkit.data.dataset import ItemReader, Skipped, background_worker
from avkit.data.manifest import Manifest, Record, read_manifest
from avkit.errors import AvkitError, ConfigError, DatasetBuildError, MediaError
from avkit.fileio import (
    atomic_open,
    atomic_write_json,
    file_sha256,
    folder_lock,
    refuse_overwriting,
)
from avkit.modalities import Pipeline
from avkit.progress import progress

log = logging.getLogger(__name__)

INDEX = "shards.json"
#: Present while ``write_shards`` writes a folder: its ``shard-*.tar`` files are then avkit's.
WRITING = ".avkit-writing-shards"
FORMAT = 1
CONTENTS = ("media", "arrays")
#: Encoded formats for a video line's frame and clip, by modality.
_VIDEO_MEDIA = {"audio": ".wav", "image": ".png"}


@dataclass(frozen=True)
class Shard:
    name: str
    items: int
    sha256: str


@dataclass(frozen=True)
class ShardSet:
    """A shard folder, as ``shards.json`` describes it."""

    folder: Path
    shards: tuple[Shard, ...]
    content: str
    modalities: tuple[str, ...]
    split: str | None
    labels: tuple[str, ...]
    settings: dict[str, Any]
    source: str

    @property
    def items(self) -> int:
        return sum(s.items for s in self.shards)

    @property
    def digest(self) -> str:
        """SHA-256 of the shards' names, sizes and checksums: which shards these are."""
        text = json.dumps([(s.name, s.items, s.sha256) for s in self.shards])
        return hashlib.sha256(text.encode()).hexdigest()

    @classmethod
    def load(cls, folder: str | Path) -> ShardSet:
        """Read ``folder/shards.json``; ConfigError naming the file if it is missing or malformed."""
        folder = Path(folder)
        path = folder / INDEX
        if not path.is_file():
            raise ConfigError(f"{folder}: not a shard folder (no {INDEX}); write one with avkit data shard")
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
            shards = tuple(Shard(str(s["name"]), int(s["items"]), str(s["sha256"])) for s in info["shards"])
            out = cls(folder, shards, str(info["content"]), tuple(info["modalities"]), info.get("split"),
                      tuple(info.get("labels", ())), dict(info.get("settings", {})), str(info.get("source", "")))  # fmt: skip
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: cannot be read as a shard index ({type(exc).__name__}: {exc})") from None
        if info.get("format") != FORMAT or out.content not in CONTENTS or not shards:
            raise ConfigError(f"{path}: not a shard index this avkit reads (format {info.get('format')!r}, "
                              f"content {out.content!r}, {len(shards)} shards)")  # fmt: skip
        for shard in shards:
            if "/" in shard.name or shard.name.startswith("."):
                raise ConfigError(f"{path}: shard name {shard.name!r} must be a file in the folder")
        return out

    def verify(self, show_progress: bool = False) -> list[str]:
        """Problems found by hashing every shard against its recorded SHA-256 (empty: all intact)."""
        problems = []
        for shard in progress(self.shards, "verifying shards", enabled=show_progress, unit="shard"):
            path = self.folder / shard.name
            if not path.is_file():
                problems.append(f"{path}: missing")
            elif file_sha256(path) != shard.sha256:
                problems.append(f"{path}: its SHA-256 differs from {INDEX}'s (damaged, or rewritten since)")
        return problems


# -- writing ---------------------------------------------------------------------------------------
def write_shards(
    manifest: Manifest | str | Path,
    out: str | Path,
    pipelines: Mapping[str, Pipeline],
    split: str | None = "train",
    shard_size: int = 1000,
    content: str = "media",
    shuffle_seed: int | None = 0,
    strict: bool = False,
    show_progress: bool = False,
) -> dict[str, Any]:
    """Write the records of ``split`` (None: all) as tar shards of ``shard_size`` items, and ``shards.json``.

    The records are written in an order drawn from ``shuffle_seed`` (None: the manifest's), so
    that a shard is a mix of the split, as WebDataset expects: manifests are often sorted (by
    class, by source), and a stream mixes only within its shuffle buffer.

    ``pipelines``: modality -> pipeline; with ``content="arrays"`` their ``load`` (for example the
    sample rate) makes the arrays, and their settings are recorded. Each shard is written to a
    temporary file and renamed when complete, and ``shards.json`` last: a folder without it is an
    interrupted write, whose shards a new write replaces. The folder is locked while writing. An
    unreadable item is reported and skipped (``strict``: raised).

    Returns:
        ``{"items", "shards", "skipped": [{"id", "reason"}], "bytes", "seconds"}``.
    """
    if content not in CONTENTS:
        raise ConfigError(f"content must be one of {CONTENTS}, got {content!r}")
    if shard_size < 1:
        raise ConfigError(f"--shard-size must be at least 1, got {shard_size}")
    started = time.perf_counter()
    modalities = sorted(pipelines)
    manifest = manifest if isinstance(manifest, Manifest) else read_manifest(manifest, modalities=modalities)
    records = manifest.split(split)
    if not records:
        raise DatasetBuildError(f"{manifest.path} has no records in split {split!r}")
    if shuffle_seed is not None:
        records = [records[i] for i in np.random.default_rng(shuffle_seed).permutation(len(records))]
    out = Path(out)
    refuse_overwriting(out / INDEX, [manifest.path])
    with folder_lock(out, "shard folder"):
        if (out / INDEX).exists():
            raise ConfigError(f"{out} already holds shards; write into a new folder")
        marker = out / WRITING
        if any(out.glob("shard-*.tar")) and not marker.exists():
            raise ConfigError(f"{out} holds shard-*.tar files that avkit did not write; write into a new folder")
        for stale in [*out.glob("shard-*.tar"), *out.glob(".shard-*.tar.*.tar")]:  # an interrupted write's
            log.warning("removing %s, left by an interrupted write (no %s)", stale, INDEX)
            stale.unlink()
        marker.touch()
        if content == "arrays":  # the arrays are what these settings load
            settings = {m: _settings(p) for m, p in pipelines.items()}
        elif any(r.video is not None for r in records):  # a video line's clip was cut at these settings' length and rate
            settings = {m: _settings(p) for m, p in pipelines.items() if p.video_uses_settings}
        else:
            settings = {}
        meta = {"split": split, "shuffle_seed": shuffle_seed, "settings": settings}
        summary = _write_all(manifest, records, out, pipelines, meta, shard_size, content, strict, show_progress, started)
        marker.unlink()
        return summary


def _write_all(manifest: Manifest, records: list[Record], out: Path, pipelines: Mapping[str, Pipeline],
               meta: dict[str, Any], shard_size: int, content: str, strict: bool, show_progress: bool,
               started: float) -> dict[str, Any]:  # fmt: skip
    modalities = sorted(pipelines)
    pipes = {m: p.strictly() if strict else p for m, p in pipelines.items()}
    shards: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    number, size = 0, 0
    bar = progress(records, "writing shards", enabled=show_progress, unit="item")
    pending: list[tuple[int, Record, dict[str, bytes]]] = []
    for rec in bar:
        try:
            members = {f"{m}{ext}": data for m in modalities for ext, data in [_member(manifest, rec, pipes[m], content)]}
        except AvkitError as exc:
            if strict:
                raise
            log.warning("skipping %s (line %d): %s", rec.id, rec.line, exc)
            skipped.append({"id": rec.id, "reason": str(exc)})
            continue
        pending.append((number, rec, members))
        number += 1
        if len(pending) == shard_size:
            shards.append(_write_tar(out / f"shard-{len(shards):06d}.tar", pending))
            size += shards[-1].pop("bytes")
            pending = []
    if pending:
        shards.append(_write_tar(out / f"shard-{len(shards):06d}.tar", pending))
        size += shards[-1].pop("bytes")
    if not shards:
        raise DatasetBuildError(f"no item of {manifest.path} could be read ({len(skipped)} skipped)")
    atomic_write_json(out / INDEX, {
        "format": FORMAT, "content": content, "modalities": modalities, **meta, "labels": manifest.labels(),
        "source": str(manifest.path), "items": number, "shards": shards, "skipped": skipped,
    })  # fmt: skip
    seconds = time.perf_counter() - started
    log.info("wrote %d items in %d shards (%.1f MB) to %s in %.1f s", number, len(shards), size / 1e6, out, seconds)
    return {"items": number, "shards": len(shards), "skipped": skipped, "bytes": size, "seconds": seconds}


def _settings(pipe: Pipeline) -> dict[str, Any]:
    settings = getattr(pipe, "settings", None)
    return json.loads(json.dumps(vars(settings), default=str)) if settings is not None else {}


def _member(manifest: Manifest, rec: Record, pipe: Pipeline, content: str) -> tuple[str, bytes]:
    """``(suffix, bytes)`` of ``rec``'s item for ``pipe``: the file, a video's frame or clip encoded, or an array."""
    if content == "arrays" or rec.video is not None:
        raw = manifest.load(rec, pipe)
        if content == "arrays":
            buf = io.BytesIO()
            np.save(buf, raw.numpy() if isinstance(raw, torch.Tensor) else np.asarray(raw), allow_pickle=False)
            return ".npy", buf.getvalue()
        return _encoded(raw, pipe)
    path = manifest.resolve(rec, pipe.modality)
    pipe.load(path)  # decodes: a broken file is found now, not when training
    return path.suffix.lower(), path.read_bytes()


def _encoded(raw: Any, pipe: Pipeline) -> tuple[str, bytes]:
    """A video line's raw frame or clip, encoded as the file a manifest would name."""
    suffix = _VIDEO_MEDIA.get(pipe.modality)
    if suffix is None:
        raise ConfigError(f"a video line's {pipe.modality} cannot be stored as media; use content 'arrays'")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"item{suffix}"
        if suffix == ".wav":
            from avkit.audio.io import save_audio

            save_audio(path, raw, pipe.settings.sample_rate)
        else:
            from avkit.vision.io import save_image

            save_image(path, raw)
        return suffix, path.read_bytes()


def _write_tar(path: Path, items: Sequence[tuple[int, Record, dict[str, bytes]]]) -> dict[str, Any]:
    with atomic_open(path) as handle:
        writer = wds.TarWriter(handle, encoder=False, mtime=0.0)
        for number, rec, members in items:
            meta = {k: v for k, v in rec.to_json().items() if k not in rec.paths and k not in ("video", "t")}
            writer.write({"__key__": f"{number:09d}", "json": json.dumps(meta).encode(), **members})
        writer.close()
    return {"name": path.name, "items": len(items), "sha256": file_sha256(path), "bytes": path.stat().st_size}


# -- reading ---------------------------------------------------------------------------------------
def epoch_plan(counts: Sequence[int], batch_size: int, seed: int, epoch: int, rank: int, world: int
               ) -> tuple[list[int], tuple[int, int], list[int]]:  # fmt: skip
    """The shard order of ``epoch``, this rank's ``[start, stop)`` in the items read in that order,
    and its batch sizes: every rank gets the same number of batches (the global batches of
    ``batch_size``, a too-small remainder joined to the last, as :func:`epoch_batches`)."""
    total = sum(counts)
    if total < world:
        raise ConfigError(f"{total} shard items cannot be shared among {world} processes")
    order = list(range(len(counts)))
    random.Random(seed * 100_003 + epoch).shuffle(order)
    start, stop = total * rank // world, total * (rank + 1) // world
    steps = max(1, total // batch_size + (total % batch_size >= max(world, 2)))
    steps = min(steps, total // world)  # every batch of every rank gets at least one item
    n = stop - start
    sizes = [n // steps + (j < n % steps) for j in range(steps)]
    return order, (start, stop), sizes


class _HashingReader:
    """A binary file that hashes what is read from it (to check a shard read whole against shards.json)."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle, self.sha = handle, hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.sha.update(data)
        return data

    def __enter__(self) -> _HashingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.close()


class ShardStream(ItemReader, IterableDataset):
    """Training batches streamed from a shard set; see the module docstring.

    Args:
        shards: the shard set.
        pipelines: tower name -> pipeline (its ``modality`` names the tar member).
        batch_size: the global batch (each of ``world`` processes takes about ``batch_size / world``).
        seed: the run's seed; rank, world: this process and the number of processes.
        label_names: class names, in index order (default: the set's labels).
        fields: numeric record fields for heads.
        shuffle_buffer: items each worker mixes (0: read in shard order).
        train: random crops and augmentation, keyed by ``(seed, epoch, item number)``.
    """

    def __init__(self, shards: ShardSet, pipelines: Mapping[str, Pipeline], batch_size: int, seed: int = 0,
                 rank: int = 0, world: int = 1, label_names: Sequence[str] | None = None, fields: Sequence[str] = (),
                 shuffle_buffer: int = 256, train: bool = True, strict: bool = False) -> None:  # fmt: skip
        self.set, self.batch_size, self.seed, self.rank, self.world = shards, batch_size, seed, rank, world
        self.pipelines = {t: p.strictly() if strict else p for t, p in pipelines.items()}
        missing = sorted({p.modality for p in self.pipelines.values()} - set(shards.modalities))
        if missing:
            raise ConfigError(f"{shards.folder}: the shards hold {list(shards.modalities)}, not {missing}")
        if shards.settings:  # arrays, or clips cut from videos: made with these settings
            for tower, pipe in self.pipelines.items():
                if pipe.modality not in shards.settings and shards.content == "media":
                    continue  # this modality's items do not depend on settings (frames)
                if (want := _settings(pipe)) != (have := shards.settings.get(pipe.modality)):
                    made = "arrays" if shards.content == "arrays" else "items (cut from videos)"
                    raise ConfigError(f"{shards.folder}: its {pipe.modality} {made} were made with settings {have}, but "
                                      f"tower {tower!r} reads {want}; write the shards again with this run's config "
                                      "(avkit data shard --config)")  # fmt: skip
        self.caches, self.strict, self.train, self.shuffle_buffer = {}, strict, train, shuffle_buffer
        self._set_targets(label_names if label_names is not None else shards.labels, fields)
        self.epoch, self.start_batch = 0, 0
        self.skipped: list[tuple[str, str]] = []

    def __len__(self) -> int:
        return self.set.items

    def steps_per_epoch(self) -> int:
        return len(epoch_plan([s.items for s in self.set.shards], self.batch_size, self.seed, 0, self.rank, self.world)[2])

    def loader(self, epoch: int, start_batch: int = 0, workers: int = 0) -> DataLoader:
        """The batches of ``epoch`` from ``start_batch`` on, decoded by ``workers`` processes, in a fixed order."""
        self.epoch, self.start_batch = epoch, start_batch
        return DataLoader(self, batch_size=None, num_workers=workers, generator=torch.Generator().manual_seed(0),
                          persistent_workers=False, worker_init_fn=background_worker)  # fmt: skip

    # -- one worker ----------------------------------------------------------------------------
    def _source(self, rec: Record, tower: str) -> tuple[Path, Path]:
        where = self.set.folder / rec.extra.get("__shard__", "")
        return where, where

    def __iter__(self) -> Iterator[Batch]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        order, (start, stop), sizes = epoch_plan([s.items for s in self.set.shards], self.batch_size, self.seed,
                                                 self.epoch, self.rank, self.world)  # fmt: skip
        # Lane l makes batches l, l + W, ...; the DataLoader asks workers 0, 1, ... in turn, so after
        # a resume at batch s, worker w runs lane (w + s) % W and the batches still come in order.
        lane = (worker + self.start_batch) % workers
        mine = list(range(lane, len(sizes), workers))  # this lane's batches, by their number in the epoch
        first = start + sum(sizes[j] for j in range(len(sizes)) if j % workers < lane)  # lanes read in turn
        count = sum(sizes[j] for j in mine)
        rng = random.Random(f"{self.seed}/{self.epoch}/{self.rank}/{lane}")
        samples = self._shuffled(self._samples(order, first, first + count), rng)
        for j in mine:
            raw = [s for _, s in zip(range(sizes[j]), samples)]
            if j < self.start_batch:
                continue  # a resumed epoch: these items were trained on before the checkpoint
            yield self.collate([s if isinstance(s, Skipped) else self._item(s) for s in raw])

    def _shuffled(self, samples: Iterator[Any], rng: random.Random) -> Iterator[Any]:
        """A shuffle buffer of ``shuffle_buffer`` samples (WebDataset's rule: fill, then swap out at random)."""
        if not (self.train and self.shuffle_buffer > 1):
            yield from samples
            return
        buf: list[Any] = []
        for s in samples:
            buf.append(s)
            if len(buf) >= self.shuffle_buffer:
                k = rng.randrange(len(buf))
                buf[k], buf[-1] = buf[-1], buf[k]
                yield buf.pop()
        rng.shuffle(buf)
        yield from buf

    def _samples(self, order: Sequence[int], lo: int, hi: int) -> Iterator[dict[str, Any] | Skipped]:
        """The raw tar samples at positions ``[lo, hi)`` of the epoch's item sequence."""
        offset = 0
        for k in order:
            shard = self.set.shards[k]
            a, b = max(lo - offset, 0), min(hi - offset, shard.items)
            offset += shard.items
            if a < b:
                yield from self._read_shard(shard, a, b)
            if offset >= hi:
                return

    def _read_shard(self, shard: Shard, a: int, b: int) -> Iterator[dict[str, Any] | Skipped]:
        """Samples ``[a, b)`` of one shard. A damaged shard is warned about once, and each item it
        could not give is a :class:`Skipped` naming the shard and the item, so batches keep their sizes
        and every loss is counted."""
        path = self.set.folder / shard.name
        problems: list[Exception] = []

        def note(exc: Exception) -> bool:
            problems.append(exc)
            return False  # stop reading this shard

        try:
            handle = _HashingReader(path.open("rb"))
        except OSError as exc:
            log.warning("%s: cannot be opened (%s); its %d item(s) are skipped", path, exc, b - a)
            yield from self._unreadable(shard, a, b, f"cannot be opened ({exc.strerror})")
            return
        n = 0
        with handle:
            files = wds.tariterators.tar_file_expander([{"url": str(path), "stream": handle}], handler=note)
            for sample in wds.tariterators.group_by_keys(files, handler=note):
                if n >= b:
                    break
                if n >= a:
                    yield self._parsed(shard, n, sample)
                n += 1
            if a == 0 and n == shard.items and not problems:  # read whole: check it against shards.json
                while handle.read(1 << 20):
                    pass
                if handle.sha.hexdigest() != shard.sha256:
                    log.warning("%s: its SHA-256 differs from %s's: it was damaged or rewritten since it was "
                                "written; its items were used as read", path, INDEX)  # fmt: skip
        if n < b:
            reason = f"{type(problems[0]).__name__}: {problems[0]}" if problems else "it ends early"
            log.warning("%s is damaged (%s): %d of its items %d-%d were read; the rest are skipped",
                        path, reason, max(0, n - a), a, b - 1)  # fmt: skip
            yield from self._unreadable(shard, max(n, a), b, f"is damaged ({reason})")

    def _unreadable(self, shard: Shard, a: int, b: int, why: str) -> Iterator[Skipped]:
        path = self.set.folder / shard.name
        for n in range(a, b):
            yield Skipped(f"{shard.name} item {n}", MediaError(path, f"{why}: item {n} could not be read"))

    def _parsed(self, shard: Shard, n: int, sample: dict[str, Any]) -> dict[str, Any] | Skipped:
        where = f"{shard.name} item {n}"
        try:
            meta = json.loads(sample["json"])
            number = int(sample["__key__"].rsplit("/", 1)[-1])
            rid = str(meta["id"])
        except (KeyError, ValueError, TypeError, UnicodeDecodeError) as exc:
            return Skipped(where, MediaError(self.set.folder / shard.name, f"{where} has no readable metadata ({exc})"))
        rec = Record(id=rid, paths={}, label=meta.get("label"), split=meta.get("split"),
                     boxes=tuple(tuple(b) for b in meta["boxes"]) if meta.get("boxes") else None,
                     extra={**{k: v for k, v in meta.items() if k not in ("id", "label", "split", "boxes")},
                            "__shard__": shard.name})  # fmt: skip
        return {"number": number, "record": rec, "members": sample, "where": where}

    def _item(self, sample: dict[str, Any]) -> dict[str, Any] | Skipped:
        rec: Record = sample["record"]
        rng = np.random.default_rng([self.seed, self.epoch, sample["number"]]) if self.train else None
        try:
            return self._make_item(sample["number"], rec, lambda tower: self._raw(sample, tower), rng)
        except AvkitError as exc:
            return Skipped(rec.id, exc)

    def _raw(self, sample: dict[str, Any], tower: str) -> Any:
        pipe = self.pipelines[tower]
        name = next((k for k in sample["members"] if k.split(".", 1)[0] == pipe.modality), None)
        where = self.set.folder / sample["record"].extra["__shard__"]
        if name is None:
            raise MediaError(where, f"{sample['where']} ({sample['record'].id}) has no {pipe.modality} member")
        data = sample["members"][name]
        if name.endswith(".npy"):
            try:
                return torch.from_numpy(np.load(io.BytesIO(data), allow_pickle=False))
            except (ValueError, OSError, EOFError) as exc:
                raise MediaError(where, f"{sample['where']} ({sample['record'].id}): its {name} array is damaged ({exc})") from None
        return load_bytes(pipe, data, "." + name.split(".", 1)[1], f"{where} {sample['where']}")


def load_bytes(pipe: Pipeline, data: bytes, suffix: str, where: str) -> Any:
    """``pipe.load`` of an encoded file held in memory: decoded in memory if the pipeline can
    (:meth:`Pipeline.load_bytes`), else through a temporary file (in RAM where the system has
    ``/dev/shm``); errors name ``where``."""
    raw = pipe.load_bytes(data)
    if raw is not None:
        return raw
    folder = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    with tempfile.NamedTemporaryFile(suffix=suffix, dir=folder) as tmp:
        tmp.write(data)
        tmp.flush()
        try:
            return pipe.load(Path(tmp.name))
        except MediaError as exc:
            raise MediaError(where, exc.reason) from None


__all__ = ["CONTENTS", "Shard", "ShardSet", "ShardStream", "epoch_plan", "load_bytes", "write_shards"]

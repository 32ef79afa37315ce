"""Manifest items as a ``torch.utils.data.Dataset``: one input per tower, plus targets.

    ds = ManifestDataset(manifest, {"audio": audio_pipeline, "image": image_pipeline}, split="train", train=True)
    loader = make_loader(ds, epoch_batches, workers=2)        # batch_sampler of [(index, epoch), ...]
    for batch in loader: ...                                  # avkit.data.batch.Batch

Each tower's :class:`~avkit.modalities.Pipeline` reads its manifest field, so
preprocessing (image size, clip length) is whatever the tower's config says.
In training (``train=True``) an item is keyed ``(index, epoch)`` and draws every
random choice (crops, augmentation) from a generator seeded by
``(seed, epoch, index)``: a resumed run, or one with another number of workers,
sees exactly the same items.

A bad item (unreadable file, box outside its image) is left out of its batch
and listed in :attr:`Batch.skipped`; with ``strict`` the caller raises it.
``in_memory`` decodes every item once up front (small data), which also finds
the bad ones before training starts. Feature caches replace a tower's media
when their settings match (:class:`~avkit.data.features.FeatureCache`).
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import logging
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, get_worker_info

from avkit.data.batch import Batch
from avkit.data.features import FeatureCache
from avkit.data.manifest import Manifest, Record, read_manifest
from avkit.errors import (
    AvkitError,
    ConfigError,
    DatasetBuildError,
    ManifestError,
    MediaError,
    TargetError,
)
from avkit.modalities import Pipeline
from avkit.progress import progress

log = logging.getLogger(__name__)

#: Targets every dataset can give; any other target name is a numeric manifest field.
BUILTIN_TARGETS = ("label", "boxes")


@dataclass
class Skipped:
    """An item that could not be loaded: its id and the error (raised in strict mode)."""

    id: str
    error: AvkitError


class ItemReader:
    """Turns a record and its raw media into an item, and items into a :class:`Batch`: what a
    manifest dataset and a shard stream (:mod:`avkit.data.shards`) share.

    Subclasses set ``pipelines``, ``label_names``, ``fields``, ``caches`` and ``strict``, and say
    where a record's media came from (:meth:`_source`) for error messages.
    """

    pipelines: dict[str, Pipeline]
    label_names: list[str]
    fields: list[str]
    caches: dict[str, FeatureCache]

    def _set_targets(self, label_names: Sequence[str], fields: Sequence[str]) -> None:
        self.label_names = list(label_names)
        self._label_index = {name: i for i, name in enumerate(self.label_names)}
        self.fields = [f for f in fields if f not in BUILTIN_TARGETS]

    def _source(self, rec: Record, tower: str) -> tuple[Path, Path]:
        """``(the file listing rec, the file holding its media for tower)``."""
        raise NotImplementedError

    def _boxes(self, rec: Record, tower: str) -> Tensor | None:
        """``rec``'s boxes ``(N, 4)`` if ``tower``'s pipeline takes them and it has some."""
        return torch.tensor(rec.boxes, dtype=torch.float32) if self.pipelines[tower].takes_boxes and rec.boxes else None

    def _check(self, rec: Record, tower: str, step: Callable[[], Any]) -> Any:
        """``step()``, its errors told as a manifest line's (bad boxes) or a file's (bad media)."""
        pipe = self.pipelines[tower]
        try:
            return step()
        except TargetError as exc:
            listing, _ = self._source(rec, tower)
            raise ManifestError(listing, rec.line, f"{pipe.modality} {rec.paths.get(pipe.modality, rec.id)!r}: {exc}") from None
        except (ValueError, RuntimeError) as exc:
            raise MediaError(self._source(rec, tower)[1], f"cannot be preprocessed as {pipe.modality} ({exc})") from None

    def _make_item(self, index: int, rec: Record, raw_of: Callable[[str], Any], rng: np.random.Generator | None) -> dict[str, Any]:
        """One item: each tower's preprocessed input (``raw_of(tower)`` gives its raw media), boxes, targets."""
        inputs, boxes = {}, {}
        for tower, pipe in self.pipelines.items():
            if tower in self.caches:
                if rec.id not in self.caches[tower]:
                    raise MediaError(self._source(rec, tower)[1], f"is not in the feature cache {self.caches[tower].path} "
                                     "(it was skipped there)")  # fmt: skip
                inputs[tower] = pipe.from_features(self.caches[tower][rec.id], rng)
                continue
            raw = raw_of(tower)
            inputs[tower], out_boxes = self._check(rec, tower, lambda: pipe(raw, rng, self._boxes(rec, tower)))  # noqa: B023
            if pipe.takes_boxes:
                boxes[tower] = out_boxes
        label = self._label_index.get(rec.label, -1) if rec.label is not None else -1
        fields = {f: _target_value(rec.extra.get(f)) for f in self.fields}
        return {"index": index, "id": rec.id, "inputs": inputs, "boxes": boxes, "label": label, "fields": fields}

    def collate(self, items: Sequence[dict[str, Any] | Skipped]) -> Batch:
        """Items -> a :class:`Batch`; skipped items are left out and listed in ``batch.skipped``."""
        good = [it for it in items if not isinstance(it, Skipped)]
        skipped = [(it.id, it.error) for it in items if isinstance(it, Skipped)]
        if not good:
            return Batch({}, torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), [], skipped=skipped)
        inputs, lengths = {}, {}
        for tower, pipe in self.pipelines.items():
            inputs[tower], lens = pipe.collate([it["inputs"][tower] for it in good])
            if lens is not None:
                lengths[tower] = lens
        batch = Batch(
            inputs=inputs, lengths=lengths, precomputed=frozenset(self.caches),
            labels=torch.tensor([it["label"] for it in good], dtype=torch.long),
            index=torch.tensor([it["index"] for it in good], dtype=torch.long),
            ids=[it["id"] for it in good],
            boxes={t: [it["boxes"][t] for it in good] for t in good[0]["boxes"]},
            fields={f: torch.tensor([it["fields"][f] for it in good], dtype=torch.float32) for f in self.fields
                    if not _is_sequence(it["fields"][f] for it in good)},
            sequences={f: pad_sequences([it["fields"][f] for it in good]) for f in self.fields
                       if _is_sequence(it["fields"][f] for it in good)},
            skipped=skipped,
        )  # fmt: skip
        release_freed_memory()  # a worker's batch is done: its decoding buffers are free
        return batch


class ManifestDataset(ItemReader, Dataset):
    """The records of one split, read through each tower's pipeline.

    Args:
        manifest: a manifest or its path.
        pipelines: tower name -> pipeline (its ``modality`` names the manifest field).
        split: the split to use (None: every record).
        label_names: class names, in index order (default: the manifest's sorted labels).
            Labels outside them become -1.
        fields: numeric manifest fields to collate for heads (``batch.fields``).
        train: random crops and augmentation, keyed by ``(index, epoch)``.
        seed: the run's seed (with ``train``).
        in_memory: decode every item once, up front.
        feature_caches: tower name -> feature cache path, used when it fits the tower's pipeline.
        strict: raise on the first bad item instead of skipping it (up front with ``in_memory``).

    Whether the records carry what a head needs is :func:`check_targets`' business (the engine
    calls it for every split it reads, before building any dataset).
    """

    def __init__(
        self,
        manifest: Manifest | str | Path,
        pipelines: Mapping[str, Pipeline],
        split: str | None = None,
        label_names: Sequence[str] | None = None,
        fields: Sequence[str] = (),
        train: bool = False,
        seed: int = 0,
        in_memory: bool = False,
        feature_caches: Mapping[str, str | Path] | None = None,
        strict: bool = False,
        show_progress: bool = False,
    ) -> None:
        self.pipelines = {t: p.strictly() if strict else p for t, p in pipelines.items()}
        modalities = sorted({p.modality for p in self.pipelines.values()})
        self.manifest = manifest if isinstance(manifest, Manifest) else read_manifest(manifest, modalities=modalities)
        self.split, self.train, self.seed, self.strict = split, train, seed, strict
        self.records: list[Record] = self.manifest.split(split)
        if not self.records:
            raise DatasetBuildError(f"{self.manifest.path} has no records in split {split!r}")
        video = next((r for r in self.records if r.video is not None), None)
        for tower, pipe in self.pipelines.items():
            if video is not None and type(pipe).load_video is Pipeline.load_video:
                raise ConfigError(f"{self.manifest.path}:{video.line} names a video, but tower {tower!r} reads the "
                                  f"{pipe.modality} modality, which cannot be read from a video; give its files instead")  # fmt: skip
        self._set_targets(label_names if label_names is not None else self.manifest.labels(), fields)
        self.caches = self._usable_caches(feature_caches or {})
        self.skipped: list[tuple[str, str]] = []
        self._raw: list[dict[str, Any]] | None = None
        if in_memory:
            self._load_all(show_progress)

    # -- construction --------------------------------------------------------------------------
    def _usable_caches(self, paths: Mapping[str, str | Path]) -> dict[str, FeatureCache]:
        caches = {}
        for tower, path in paths.items():
            if tower not in self.pipelines:
                raise ConfigError(f"feature cache {path} is given for tower {tower!r}, which this model does not have; "
                                  f"towers: {sorted(self.pipelines)}")  # fmt: skip
            cache = FeatureCache.load(path)
            why = cache.usable_by(self.pipelines[tower])
            if why:
                log.warning("not using the feature cache %s for tower %s: %s", path, tower, why)
                continue
            log.info("tower %s reads its features from %s", tower, path)
            caches[tower] = cache
        return caches

    def _load_all(self, show_progress: bool) -> None:
        kept, raws = [], []
        for rec in progress(self.records, f"loading {self.split or 'all'}", enabled=show_progress, unit="item"):
            try:
                raw = {t: self._decode(rec, t) for t in self.pipelines if t not in self.caches}
                for tower, item in raw.items():  # boxes are checked now too, not at the first epoch
                    if (given := self._boxes(rec, tower)) is not None:
                        self._check(rec, tower, lambda: self.pipelines[tower].check_boxes(item, given))  # noqa: B023
                raws.append(raw)
                kept.append(rec)
            except AvkitError as exc:
                if self.strict:
                    raise
                self._note_skip(rec, exc)
        if not kept:
            raise DatasetBuildError(f"split {self.split!r} of {self.manifest.path}: no usable records "
                                    f"({len(self.skipped)} skipped)")  # fmt: skip
        self.records, self._raw = kept, raws

    def _note_skip(self, rec: Record, exc: AvkitError) -> None:
        log.warning("skipping %s (line %d): %s", rec.id, rec.line, exc)
        self.skipped.append((rec.id, str(exc)))

    def for_evaluation(self) -> ManifestDataset:
        """The same items read as for evaluation: no random crops, no augmentation."""
        view = copy.copy(self)
        view.train = False
        return view

    # -- items ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.records)

    @property
    def ids(self) -> list[str]:
        return [r.id for r in self.records]

    def labels(self) -> Tensor:
        """``(N,)`` label indices of every record (-1 where unlabelled)."""
        return torch.tensor([self._label_index.get(r.label, -1) if r.label is not None else -1 for r in self.records])

    def _decode(self, rec: Record, tower: str) -> Any:
        return self.manifest.load(rec, self.pipelines[tower])

    def _source(self, rec: Record, tower: str) -> tuple[Path, Path]:
        return self.manifest.path, self.manifest.resolve(rec, self.pipelines[tower].modality)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any] | Skipped:
        index, epoch = key if isinstance(key, tuple) else (key, None)
        rec = self.records[index]
        rng = np.random.default_rng([self.seed, epoch, index]) if self.train and epoch is not None else None
        try:
            return self._item(index, rec, rng)
        except AvkitError as exc:
            return Skipped(rec.id, exc)

    def _item(self, index: int, rec: Record, rng: np.random.Generator | None) -> dict[str, Any]:
        raws = self._raw[index] if self._raw is not None else None
        return self._make_item(index, rec, lambda tower: raws[tower] if raws is not None else self._decode(rec, tower), rng)


def check_targets(
    records: Sequence[Record],
    pipelines: Mapping[str, Pipeline],
    label_names: Sequence[str],
    who: str,
    targets: Iterable[str],
    where: str,
) -> None:
    """Raise ConfigError, naming ``who``, the field and ``where``, unless every record has each target.

    Reads only the manifest records: nothing is decoded. ``label`` must be one of ``label_names``;
    ``boxes`` needs a pipeline that takes boxes; any other target is a manifest field holding a
    number, or a list of integers >= 0 (a token sequence, such as speech units).
    """
    for target in targets:
        if target == "label":
            known = set(label_names)
            missing = sum(r.label is None or r.label not in known for r in records)
        elif target == "boxes":
            if not any(p.takes_boxes for p in pipelines.values()):
                raise ConfigError(f"{who} needs boxes, but no tower reads a modality that takes them "
                                  f"(towers: {sorted(pipelines)})")  # fmt: skip
            missing = sum(not r.boxes for r in records)
        else:
            malformed = next((r for r in records if isinstance(r.extra.get(target), list)
                              and _missing(_target_value(r.extra[target]))), None)  # fmt: skip
            if malformed is not None:
                raise ConfigError(f"{who} reads the manifest field {target!r} as a token sequence, but in {where} the "
                                  f"line of {malformed.id!r} holds {str(malformed.extra[target])[:60]}, not a list of "
                                  "integers >= 0")  # fmt: skip
            missing = sum(_missing(_target_value(r.extra.get(target))) for r in records)
        if missing:
            raise ConfigError(f"{who} needs the manifest field {target!r} on every item, but {missing} of "
                              f"{len(records)} items of {where} lack it")  # fmt: skip


def _number(value: Any) -> float:
    """A manifest value as a float target; NaN if absent or not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


def _target_value(value: Any) -> float | Tensor:
    """A manifest field as a target: a list of integers >= 0 is a token sequence ``(L,)``; else a number (NaN if none)."""
    if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
        return torch.tensor(value, dtype=torch.long)
    return _number(value)


def _missing(value: float | Tensor) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _is_sequence(values: Iterable[float | Tensor]) -> bool:
    return any(isinstance(v, Tensor) for v in values)


def pad_sequences(sequences: Sequence[Tensor | float], pad: int = -1) -> Tensor:
    """Token sequences -> ``(B, L_max)`` int64, padded with ``pad`` (an item without one: all ``pad``)."""
    seqs = [s if isinstance(s, Tensor) else torch.zeros(0, dtype=torch.long) for s in sequences]
    out = torch.full((len(seqs), max(len(s) for s in seqs)), pad, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
    return out


#: How much lower a DataLoader worker's CPU priority is than the training process's (``nice``).
WORKER_NICE = 19


def background_worker(worker_id: int) -> None:
    """A DataLoader worker's start: lower its CPU priority by :data:`WORKER_NICE`.

    Workers decode ahead of need (2 batches each), so they can wait; a training step's parallel
    operators cannot: when a worker takes one of its cores, the others wait at the next join.
    On 2 cores, streaming shards with 2 workers trained the demo model at 0.79x the in-memory
    path's items/s at equal priority, and 0.87x with the workers at nice 19
    (``benchmarks/data.py``). When the cores are otherwise idle, a niced worker runs at full speed.
    """
    with contextlib.suppress(OSError):
        os.nice(WORKER_NICE)


def _glibc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


_MALLOC_TRIM = _glibc_trim()


def release_freed_memory() -> None:
    """In a DataLoader worker, give the heap's free pages back to the system (glibc ``malloc_trim``).

    A worker decodes thousands of ~32-64 KB buffers per epoch; glibc keeps the freed ones, and
    the worker's memory grew by about 60 MB before levelling off. Trimming after each batch
    kept two shard-stream workers about 130 MB smaller in all (``benchmarks/data.py``). Never in
    the training process, which reuses its freed memory at the next step (giving it back there
    doubled the step time).
    """
    if _MALLOC_TRIM is not None and get_worker_info() is not None:
        _MALLOC_TRIM(0)


def make_loader(dataset: ManifestDataset, batches: Iterable[Sequence[Any]], workers: int = 0) -> DataLoader:
    """A DataLoader over ``batches`` (lists of dataset keys), collated into :class:`Batch` es.

    ``workers`` processes decode and augment in parallel; the order of batches is kept. The loader
    draws its worker seeds from a generator of its own: taking them from torch's global RNG would
    shift the random stream a resumed run replays (SpecAugment's masks), since a resumed run starts
    one more loader. Items draw their randomness from ``(seed, epoch, index)`` anyway.
    """
    return DataLoader(dataset, batch_sampler=batches, collate_fn=dataset.collate, num_workers=workers,
                      generator=torch.Generator().manual_seed(0), worker_init_fn=background_worker)  # fmt: skip


def sequential_batches(n: int, batch_size: int) -> list[list[int]]:
    """``[0, n)`` in order, ``batch_size`` at a time (for evaluation)."""
    return [list(range(i, min(n, i + batch_size))) for i in range(0, n, batch_size)]


def ordered_loader(dataset: ManifestDataset, batch_size: int = 256, workers: int = 0) -> DataLoader:
    """The dataset's items in order, ``batch_size`` at a time, as :class:`Batch` es (for evaluation)."""
    return make_loader(dataset, sequential_batches(len(dataset), batch_size), workers)


def map_batches(
    dataset: ManifestDataset,
    fn: Callable[[Batch], Tensor],
    batch_size: int = 256,
    workers: int = 0,
    show_progress: bool = False,
    desc: str = "batches",
) -> tuple[Tensor, list[str], list[tuple[str, AvkitError]]]:
    """``fn`` over the dataset in order, ``batch_size`` items at a time.

    Returns:
        The outputs concatenated ``(N_ok, ...)``, the ids they belong to, and the
        ``(id, error)`` of items that could not be loaded (left out).
    """
    outputs, ids, skipped = [], [], []
    batches = sequential_batches(len(dataset), batch_size)
    loader = make_loader(dataset, batches, workers)
    for batch in progress(loader, desc, enabled=show_progress, total=len(batches), unit="batch"):
        skipped += batch.skipped
        if len(batch):
            outputs.append(fn(batch))
            ids += batch.ids
    if not outputs:
        raise DatasetBuildError(f"{dataset.manifest.path}: no item could be loaded ({len(skipped)} skipped)")
    return torch.cat(outputs), ids, skipped

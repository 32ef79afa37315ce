"""Manifest items as stacked tensors, one per modality, held in memory.

    ds = ManifestDataset.load("data/digits/manifest.jsonl", ["audio", "image"], split="train")
    batch = ds.batch(torch.tensor([0, 5, 9]))   # {"audio": (3, T), "image": (3, 3, H, W), "label": (3,), "index": (3,)}

Every item is loaded and preprocessed once, through its modality's registered
loader and preprocessor. A bad item is reported (logged, and listed in
:attr:`ManifestDataset.skipped`) and left out, or raises in ``strict`` mode.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from avkit.data.manifest import Manifest, Record, read_manifest
from avkit.errors import DatasetBuildError, MediaError
from avkit.modalities import get_modality
from avkit.progress import progress

log = logging.getLogger(__name__)


@dataclass
class ManifestDataset:
    """Preprocessed tensors for the records of one split.

    Attributes:
        records: the records kept, in manifest order.
        tensors: modality name -> ``(N, ...)`` stacked preprocessed items.
        labels: ``(N,)`` int64 indices into ``label_names`` (-1 where unlabelled).
        label_names: the class names, shared by every split of a manifest.
        skipped: ``(id, reason)`` for every record left out.
    """

    records: list[Record]
    tensors: dict[str, Tensor]
    labels: Tensor
    label_names: list[str]
    manifest: Path
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def load(
        cls,
        manifest: str | Path | Manifest,
        modalities: Sequence[str],
        split: str | None = None,
        strict: bool = False,
        show_progress: bool = False,
    ) -> ManifestDataset:
        """Load the ``split`` records of ``manifest`` for ``modalities``.

        Raises:
            ManifestError: the manifest is malformed or lacks a modality field.
            MediaError: a file is unusable and ``strict`` is set.
            DatasetBuildError: no usable record is left.
        """
        mods = [get_modality(name) for name in modalities]
        man = manifest if isinstance(manifest, Manifest) else read_manifest(manifest, modalities=list(modalities))
        records = man.split(split)
        label_names = man.labels()
        index = {name: i for i, name in enumerate(label_names)}
        kept: list[Record] = []
        items: dict[str, list[Tensor]] = {m.name: [] for m in mods}
        skipped: list[tuple[str, str]] = []
        for rec in progress(records, f"loading {split or 'all'}", enabled=show_progress, unit="item"):
            try:
                loaded = {m.name: m.load_tensor(man.resolve(rec, m.name)) for m in mods}
            except MediaError as exc:
                if strict:
                    raise
                log.warning("skipping %s (line %d): %s", rec.id, rec.line, exc)
                skipped.append((rec.id, str(exc)))
                continue
            for name, tensor in loaded.items():
                if items[name] and tensor.shape != items[name][0].shape:
                    raise MediaError(man.resolve(rec, name), f"preprocessed to shape {tuple(tensor.shape)}, "
                                     f"but earlier items have {tuple(items[name][0].shape)}")  # fmt: skip
                items[name].append(tensor)
            kept.append(rec)
        if not kept:
            where = f"split {split!r} of " if split else ""
            raise DatasetBuildError(f"{where}{man.path}: no usable records ({len(skipped)} skipped)")
        labels = torch.tensor([index[r.label] if r.label is not None else -1 for r in kept], dtype=torch.long)
        return cls(kept, {k: torch.stack(v) for k, v in items.items()}, labels, label_names, man.path, skipped)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def ids(self) -> list[str]:
        return [r.id for r in self.records]

    @property
    def has_labels(self) -> bool:
        return bool((self.labels >= 0).all())

    def batch(self, indices: Tensor) -> dict[str, Tensor]:
        """Items at ``indices``: each modality ``(B, ...)``, ``label (B,)`` and ``index (B,)``."""
        out = {name: t[indices] for name, t in self.tensors.items()}
        out["label"] = self.labels[indices]
        out["index"] = indices
        return out

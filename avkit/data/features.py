"""Feature caches: a tower's front-end output (log-mels) for every item of a manifest, computed once.

The cache is an artifact (``avkit.artifacts``) of kind ``features``: the
whole-item outputs concatenated along their last axis (``values``, e.g.
``(n_mels, total_frames)``) with each item's ``lengths``, and in its header the
ids, the modality and the settings the front-end used. Training reads it in
place of the media when, and only when, those settings equal the tower's (see
:meth:`FeatureCache.usable_by`); the tower's crop/pad rule then applies to the
cached item, exactly as to a decoded one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from avkit.artifacts import load_artifact, require_fields, save_artifact
from avkit.data.manifest import Manifest, read_manifest
from avkit.errors import AvkitError, ConfigError, MediaError
from avkit.fileio import refuse_overwriting
from avkit.modalities import Pipeline
from avkit.progress import progress

log = logging.getLogger(__name__)

KIND, FORMAT = "features", 2


def compute_features(
    manifest: Manifest | str | Path,
    out: str | Path,
    pipeline: Pipeline,
    show_progress: bool = False,
    strict: bool = False,
) -> dict[str, Any]:
    """Compute the front-end output of every file of ``manifest`` that ``pipeline`` reads; write the cache to ``out``.

    An unreadable file is reported and skipped (``strict``: raised).

    Returns:
        Summary: ``count``, ``shape`` of one item's features (last axis: the longest item), ``skipped``
        (list of ``{id, reason}``), ``path``.
    """
    settings, modality = pipeline.cache_settings(), pipeline.modality
    pipeline = pipeline.strictly() if strict else pipeline
    if settings is None:
        raise ConfigError(f"the {modality} modality has no front-end to cache")
    manifest = manifest if isinstance(manifest, Manifest) else read_manifest(manifest, modalities=[modality])
    refuse_overwriting(out, [manifest.path, *(manifest.resolve(r, modality) for r in manifest.records)])
    video = next((r for r in manifest.records if r.video is not None), None)
    if video is not None:  # a cache holds whole clips; a video line's clip is cut at load, at one length
        raise ConfigError(f"{manifest.path}:{video.line} names a video; a feature cache needs audio files "
                          "(avkit data from-videos --extract writes them)")  # fmt: skip
    ids: list[str] = []
    feats: list[Tensor] = []
    skipped: list[dict[str, str]] = []
    for rec in progress(manifest.records, desc=f"{modality} features", enabled=show_progress, unit="item"):
        try:
            feats.append(pipeline.features(manifest.load(rec, pipeline)))
        except MediaError as exc:
            if strict:
                raise
            skipped.append({"id": rec.id, "reason": str(exc)})
            log.warning("skipping %s: %s", rec.id, exc)
            continue
        ids.append(rec.id)
    if not ids:
        raise AvkitError(f"no {modality} file of {manifest.path} could be read")
    lengths = torch.tensor([f.shape[-1] for f in feats])
    header = {"ids": ids, "modality": modality, "settings": settings, "manifest": str(manifest.path)}
    save_artifact(out, KIND, {"values": torch.cat(feats, dim=-1), "lengths": lengths}, header, FORMAT)
    shape = (*feats[0].shape[:-1], int(lengths.max()))
    log.info("cached %d %s features %s to %s", len(ids), modality, shape, out)
    return {"count": len(ids), "shape": shape, "skipped": skipped, "path": str(out)}


@dataclass
class FeatureCache:
    """A loaded feature cache: ``cache[id]`` is one item's whole features ``(..., L)``."""

    path: Path
    modality: str
    settings: dict[str, Any]
    ids: list[str]
    values: Tensor
    offsets: Tensor

    @classmethod
    def load(cls, path: str | Path) -> FeatureCache:
        """Read a cache written by :func:`compute_features` (``avkit features``)."""
        art = load_artifact(path, KIND, formats={FORMAT}, names=("values", "lengths"))
        h, lengths = art.header, art.tensors["lengths"]
        require_fields(art.path, h, KIND, {"ids": list, "modality": str, "settings": dict})
        if len(h["ids"]) != len(lengths) or int(lengths.sum()) != art.tensors["values"].shape[-1]:
            raise MediaError(art.path, "feature cache ids, lengths and values disagree; the file is damaged")
        offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)])
        return cls(art.path, h["modality"], h["settings"], h["ids"], art.tensors["values"], offsets)

    def __post_init__(self) -> None:
        self._row = {rid: i for i, rid in enumerate(self.ids)}

    def __contains__(self, rid: str) -> bool:
        return rid in self._row

    def __getitem__(self, rid: str) -> Tensor:
        i = self._row[rid]
        return self.values[..., int(self.offsets[i]) : int(self.offsets[i + 1])]

    def usable_by(self, pipeline: Pipeline) -> str | None:
        """Why this cache cannot stand in for ``pipeline``'s media, or None if it can."""
        if pipeline.modality != self.modality:
            return f"it holds {self.modality} features, not {pipeline.modality}"
        wanted = pipeline.cache_settings()
        if wanted != self.settings:
            diff = sorted(k for k in set(wanted or {}) | set(self.settings) if (wanted or {}).get(k) != self.settings.get(k))
            return "its settings differ from the tower's: " + ", ".join(
                f"{k} {self.settings.get(k)!r} (tower: {(wanted or {}).get(k)!r})" for k in diff)  # fmt: skip
        return pipeline.cache_refusal()

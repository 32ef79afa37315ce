"""Embeddings: what retrieval needs of a model (:class:`Embedder`), and embeddings files.

An embeddings file is an artifact (``avkit.artifacts``) of kind ``embeddings``:
``vectors (N, D)`` float32 and, in its header, the ids, labels, source paths,
the modality and the model's fingerprint (so an index built from it can refuse
queries from another model).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from torch import Tensor

from avkit.artifacts import load_artifact, require_fields, save_artifact
from avkit.data.batch import Batch
from avkit.data.dataset import ManifestDataset, map_batches
from avkit.data.manifest import Manifest, read_manifest
from avkit.errors import ArtifactError
from avkit.modalities import Pipeline

KIND, FORMAT = "embeddings", 2


class Embedder(Protocol):
    """A trained model, as retrieval sees it (``avkit.models.AVModel`` is one)."""

    fingerprint: str

    def embedding_modalities(self) -> list[str]: ...

    def tower_for(self, modality: str) -> str:
        """The tower that embeds ``modality`` (ConfigError if none)."""
        ...

    def pipelines(self) -> dict[str, Pipeline]:
        """Each tower's evaluation pipeline (file -> input)."""
        ...

    def embed_batch(self, tower: str, batch: Batch) -> Tensor:
        """Unit-norm ``(B, D)`` embeddings on the CPU."""
        ...


@dataclass
class Embeddings:
    """``vectors (N, D)`` and, per row, its id, label (or None) and source path."""

    vectors: Tensor
    ids: list[str]
    labels: list[str | None]
    paths: list[str]
    modality: str
    fingerprint: str
    checkpoint: str = ""
    file: str = ""  #: the embeddings file it was loaded from ("" if made in memory)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def metadata(self) -> list[dict[str, str | None]]:
        """Per-row metadata for an index: label and path."""
        return [{"label": lab, "path": p} for lab, p in zip(self.labels, self.paths)]


def embed_manifest(
    embedder: Embedder,
    manifest: str | Path,
    modality: str,
    split: str | None = None,
    batch_size: int = 256,
    strict: bool = False,
    workers: int = 0,
    show_progress: bool = False,
    checkpoint: str = "",
    shard: tuple[int, int] = (0, 1),
) -> tuple[Embeddings, list[tuple[str, str]]]:
    """Embed one modality of a manifest (one split, or all); returns the embeddings and the skipped items.

    Args:
        shard: ``(index, count)``: embed only every ``count``-th record from ``index`` (one process's
            share under ``torchrun``; :meth:`~avkit.data.manifest.Manifest.shard`).

    Raises:
        ConfigError: the model does not embed ``modality``.
        AvkitError: with ``strict``, the first unreadable file.
    """
    tower = embedder.tower_for(modality)
    if shard != (0, 1):
        full = manifest if isinstance(manifest, Manifest) else read_manifest(manifest, modalities=[modality])
        manifest, split = full.shard(*shard, split=split), None
    ds = ManifestDataset(manifest, {tower: embedder.pipelines()[tower]}, split=split, strict=strict)
    vectors, ids, skipped = map_batches(ds, lambda b: embedder.embed_batch(tower, b), batch_size, workers,
                                        show_progress, f"embedding {modality}")  # fmt: skip
    if skipped and strict:
        raise skipped[0][1]
    by_id = {r.id: r for r in ds.records}
    emb = Embeddings(
        vectors=vectors, ids=ids, labels=[by_id[i].label for i in ids],
        paths=[str(ds.manifest.resolve(by_id[i], modality).resolve()) for i in ids],
        modality=modality, fingerprint=embedder.fingerprint, checkpoint=checkpoint,
    )  # fmt: skip
    return emb, [(rid, str(err)) for rid, err in skipped]


def embed_files(embedder: Embedder, modality: str, paths: Sequence[str | Path]) -> Tensor:
    """Embed files of ``modality`` -> ``(N, D)``; an unreadable file raises MediaError naming it."""
    tower = embedder.tower_for(modality)
    pipe = embedder.pipelines()[tower]
    items = [pipe.load_tensor(p) for p in paths]
    x, lengths = pipe.collate(items)
    return embedder.embed_batch(tower, Batch.of(tower, x, lengths, [str(p) for p in paths]))


def save_embeddings(path: str | Path, emb: Embeddings) -> None:
    """Write an embeddings file atomically."""
    header = {"ids": emb.ids, "labels": emb.labels, "paths": emb.paths, "modality": emb.modality,
              "fingerprint": emb.fingerprint, "checkpoint": emb.checkpoint}  # fmt: skip
    save_artifact(path, KIND, {"vectors": emb.vectors.float()}, header, FORMAT)


def load_embeddings(path: str | Path) -> Embeddings:
    """Read an embeddings file written by :func:`save_embeddings` (``avkit embed``).

    Raises:
        ArtifactError: missing, corrupt, not an avkit embeddings file, or ids and vectors that disagree.
    """
    art = load_artifact(path, KIND, formats={FORMAT}, names=("vectors",))
    h, vectors = art.header, art.tensors["vectors"]
    require_fields(art.path, h, KIND, {"ids": list, "labels": list, "paths": list, "modality": str, "fingerprint": str})
    if vectors.dim() != 2 or not len(h["ids"]) == len(h["labels"]) == len(h["paths"]) == len(vectors):
        raise ArtifactError(art.path, f"{len(h['ids'])} ids, {len(h['labels'])} labels and {len(h['paths'])} paths "
                            f"but vectors of shape {tuple(vectors.shape)}; the file is damaged")  # fmt: skip
    return Embeddings(vectors, h["ids"], h["labels"], h["paths"], h["modality"], h["fingerprint"],
                      h.get("checkpoint", ""), str(art.path))  # fmt: skip

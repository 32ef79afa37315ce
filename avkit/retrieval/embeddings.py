"""Embeddings files: the vectors of one modality from one trained model, with ids and labels.

A safetensors file: ``embeddings (N, D)`` float32, and a JSON header entry with
the ids, labels, source paths, the modality and the model's fingerprint (so an
index built from it can refuse queries from another model).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_save

from avkit.data.dataset import ManifestDataset
from avkit.errors import ArtifactError, ConfigError
from avkit.fileio import atomic_write_bytes
from avkit.progress import progress
from avkit.train.tasks import Task


@dataclass
class Embeddings:
    """``vectors (N, D)`` and, per row, its id, label (or None) and source path."""

    vectors: torch.Tensor
    ids: list[str]
    labels: list[str | None]
    paths: list[str]
    modality: str
    fingerprint: str
    checkpoint: str = ""

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def metadata(self) -> list[dict[str, str | None]]:
        """Per-row metadata for an index: label and path."""
        return [{"label": lab, "path": p} for lab, p in zip(self.labels, self.paths)]


@torch.no_grad()
def embed_dataset(
    task: Task, ds: ManifestDataset, modality: str, batch_size: int = 256, show_progress: bool = False
) -> torch.Tensor:
    """Embed every item of ``ds[modality]`` in eval mode -> ``(N, D)`` on the CPU."""
    if modality not in task.embedding_modalities():
        raise ConfigError(f"this model embeds {list(task.embedding_modalities())}, not {modality!r}")
    task.eval()
    device = next(task.parameters()).device
    x = ds.tensors[modality]
    starts = range(0, len(x), batch_size)
    chunks = [task.embed(modality, x[i : i + batch_size].to(device)).cpu()
              for i in progress(starts, f"embedding {modality}", enabled=show_progress, total=len(starts), unit="batch")]  # fmt: skip
    return torch.cat(chunks)


def embed_manifest(
    task: Task,
    fingerprint: str,
    manifest: str | Path,
    modality: str,
    split: str | None = None,
    batch_size: int = 256,
    strict: bool = False,
    show_progress: bool = False,
    checkpoint: str = "",
) -> tuple[Embeddings, list[tuple[str, str]]]:
    """Embed one modality of a manifest (one split, or all); returns the embeddings and the skipped items."""
    ds = ManifestDataset.load(manifest, [modality], split=split, strict=strict, show_progress=show_progress)
    vectors = embed_dataset(task, ds, modality, batch_size, show_progress)
    root = ds.manifest.parent
    emb = Embeddings(
        vectors=vectors, ids=ds.ids, labels=[r.label for r in ds.records],
        paths=[str((root / r.paths[modality]).resolve()) for r in ds.records],
        modality=modality, fingerprint=fingerprint, checkpoint=checkpoint,
    )  # fmt: skip
    return emb, ds.skipped


def save_embeddings(path: str | Path, emb: Embeddings) -> None:
    """Write an embeddings file atomically."""
    header = {"ids": emb.ids, "labels": emb.labels, "paths": emb.paths, "modality": emb.modality,
              "fingerprint": emb.fingerprint, "checkpoint": emb.checkpoint}  # fmt: skip
    data = safetensors_save({"embeddings": emb.vectors.float().contiguous()}, metadata={"avkit_embeddings": json.dumps(header)})
    atomic_write_bytes(path, data)


def load_embeddings(path: str | Path) -> Embeddings:
    """Read an embeddings file written by :func:`save_embeddings` (``avkit embed``).

    Raises:
        ArtifactError: missing, corrupt, or not an avkit embeddings file.
    """
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(path, "embeddings file does not exist; make one with avkit embed")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            vectors = f.get_tensor("embeddings") if "embeddings" in f.keys() else None  # noqa: SIM118
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ArtifactError(path, f"corrupt or unreadable embeddings file ({exc})") from None
    if vectors is None or "avkit_embeddings" not in meta:
        raise ArtifactError(path, "not an avkit embeddings file (made by avkit embed)")
    header = json.loads(meta["avkit_embeddings"])
    if len(header["ids"]) != len(vectors) or vectors.dim() != 2:
        raise ArtifactError(path, f"{len(header['ids'])} ids but embeddings of shape {tuple(vectors.shape)}")
    return Embeddings(vectors, header["ids"], header["labels"], header["paths"], header["modality"],
                      header["fingerprint"], header.get("checkpoint", ""))  # fmt: skip

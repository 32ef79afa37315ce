"""Artifacts: one safetensors file of tensors plus a JSON header, written atomically.

Every file avkit writes with tensors in it is an artifact of a ``kind``:
``checkpoint`` (a model and its training state), ``embeddings`` (vectors with
ids) and ``features`` (a cache of front-end outputs). The header is JSON in the
safetensors metadata entry ``avkit``; it always holds ``kind`` and ``format``.

Every artifact carries SHA-256 checksums (metadata entry ``avkit_sha256``): one
of the header's exact text, and one per tensor (its name, dtype, shape and
bytes). Loading verifies the header's and those of the tensors it reads, and
refuses a mismatch: a flipped bit is an error, not a changed score.

    save_artifact("emb.safetensors", "embeddings", {"vectors": v}, {"ids": ids})
    art = load_artifact("emb.safetensors", "embeddings", formats={1})
    art.header["ids"], art.tensors["vectors"]

No pickle is involved: a file from an untrusted source can be read safely.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_save
from torch import Tensor

from avkit.errors import ArtifactError
from avkit.fileio import atomic_write_bytes

HEADER_KEY = "avkit"
CHECKSUM_KEY = "avkit_sha256"

#: What makes each kind of artifact, for error messages.
MADE_BY = {
    "checkpoint": "avkit train",
    "embeddings": "avkit embed",
    "features": "avkit features",
    "units": "avkit units fit",
}

#: Header entries by which avkit 0.1 files (before artifacts had a kind) are recognised.
_LEGACY_KEYS = ("avkit_embeddings", "ids")


@dataclass
class Artifact:
    """A loaded artifact: its ``path``, JSON ``header`` and ``tensors``."""

    path: Path
    header: dict[str, Any]
    tensors: dict[str, Tensor]


def tensor_digest(name: str, tensor: Tensor, h: Any = None) -> Any:
    """Feed a tensor's name, dtype, shape and bytes to ``h`` (a new SHA-256 if None); returns ``h``."""
    h = hashlib.sha256() if h is None else h
    t = tensor.detach().cpu().contiguous()
    h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
    h.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
    return h


def save_artifact(
    path: str | Path, kind: str, tensors: dict[str, Tensor], header: dict[str, Any], format: int = 1
) -> None:
    """Write ``tensors`` and ``header`` (JSON-able) to ``path`` atomically, with their checksums."""
    text = json.dumps({**header, "kind": kind, "format": format})
    data = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}
    sums = {"header": hashlib.sha256(text.encode()).hexdigest(),
            "tensors": {name: tensor_digest(name, t).hexdigest() for name, t in data.items()}}  # fmt: skip
    atomic_write_bytes(path, safetensors_save(data, metadata={HEADER_KEY: text, CHECKSUM_KEY: json.dumps(sums)}))


def _made_by(kind: str) -> str:
    return MADE_BY.get(kind, "avkit")


def read_header(path: str | Path, kind: str, formats: Collection[int] = (1,)) -> dict[str, Any]:
    """The JSON header of an artifact of ``kind``, without reading its tensors.

    Raises:
        ArtifactError: missing, corrupt, another kind, or a format this avkit does not read.
    """
    return _open(Path(path), kind, formats, with_tensors=False).header


def load_artifact(
    path: str | Path, kind: str, formats: Collection[int] = (1,), names: Collection[str] | None = None
) -> Artifact:
    """Read an artifact of ``kind``: its header and its tensors (only ``names``, if given).

    Raises:
        ArtifactError: missing, truncated or corrupt file, not an avkit file,
            an artifact of another kind, or a format this avkit does not read.
    """
    return _open(Path(path), kind, formats, with_tensors=True, names=names)


def _open(
    path: Path, kind: str, formats: Collection[int], with_tensors: bool, names: Collection[str] | None = None
) -> Artifact:
    expected = f"a {kind} file written by {_made_by(kind)}"
    if not path.exists():
        raise ArtifactError(path, f"{kind} file does not exist; expected {expected}")
    if not path.is_file():
        raise ArtifactError(path, f"is not a regular file; expected {expected}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
            keys = list(handle.keys())
            wanted = keys if names is None else [k for k in keys if k in names]
            tensors = {k: handle.get_tensor(k) for k in wanted} if with_tensors else {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ArtifactError(path, f"corrupt or unreadable {kind} file ({exc}); expected {expected}") from None
    if HEADER_KEY not in meta:
        if any(k in meta for k in _LEGACY_KEYS):
            raise ArtifactError(path, f"was written by an older avkit (0.1); make it again with {_made_by(kind)}")
        raise ArtifactError(path, f"a safetensors file, but not an avkit artifact; expected {expected}")
    try:
        header = json.loads(meta[HEADER_KEY])
    except json.JSONDecodeError as exc:
        raise ArtifactError(path, f"header is not valid JSON ({exc}); the file is damaged") from None
    if isinstance(header, dict) and "kind" not in header and "task" in header:
        raise ArtifactError(path, "is a checkpoint of avkit 0.1's task-based trainer, which this avkit cannot "
                            "rebuild (models are now towers + heads). Retrain it: avkit train CONFIG, with "
                            "a config from experiments/configs/ (docs/architecture.md, 'Configs')")  # fmt: skip
    verify_checksums(path, meta, kind, keys, tensors)
    if not isinstance(header, dict) or header.get("kind") != kind:
        found = header.get("kind") if isinstance(header, dict) else None
        raise ArtifactError(path, f"is an avkit {found or 'file of unknown kind'}, not {expected}")
    if header.get("format") not in formats:
        raise ArtifactError(path, f"{kind} format {header.get('format')!r}; this avkit reads format(s) "
                            f"{sorted(formats)}. Make it again with {_made_by(kind)}")  # fmt: skip
    if names is not None and with_tensors:
        missing = sorted(set(names) - set(tensors))
        if missing:
            raise ArtifactError(path, f"{kind} file lacks tensor(s) {missing}; the file is damaged")
    return Artifact(path, header, tensors)


def verify_checksums(path: Path, meta: dict[str, str], kind: str, keys: list[str], tensors: dict[str, Tensor]) -> None:
    """Check the header text and the read ``tensors`` against the recorded checksums (ArtifactError if not).

    Args:
        meta: the file's safetensors metadata; ``keys``: the names of all its tensors.
    """
    sums = _checksums(path, meta, kind)
    if hashlib.sha256(meta[HEADER_KEY].encode()).hexdigest() != sums["header"]:
        raise ArtifactError(path, f"{kind} header does not match its checksum; the file is damaged")
    if set(keys) != set(sums["tensors"]):
        raise ArtifactError(path, f"{kind} file holds tensors {sorted(keys)} but recorded {sorted(sums['tensors'])}; "
                            "the file is damaged")  # fmt: skip
    for name, tensor in tensors.items():
        if tensor_digest(name, tensor).hexdigest() != sums["tensors"][name]:
            raise ArtifactError(path, f"tensor {name!r} does not match its checksum; the {kind} file is damaged")


def _checksums(path: Path, meta: dict[str, str], kind: str) -> dict[str, Any]:
    """The recorded checksums, checked for shape; ArtifactError if absent or garbled."""
    if CHECKSUM_KEY not in meta:
        raise ArtifactError(path, f"{kind} file has no checksums: it was written before avkit recorded them, "
                            f"or is damaged. Make it again with {_made_by(kind)}")  # fmt: skip
    try:
        sums = json.loads(meta[CHECKSUM_KEY])
    except json.JSONDecodeError:
        sums = None
    if not (isinstance(sums, dict) and isinstance(sums.get("header"), str) and isinstance(sums.get("tensors"), dict)):
        raise ArtifactError(path, f"{kind} file's checksum record is garbled; the file is damaged")
    return sums


def require_fields(path: Path, header: dict[str, Any], kind: str, fields: dict[str, type | tuple[type, ...]]) -> None:
    """Refuse a header that lacks one of ``fields`` or holds it with another type (ArtifactError)."""
    for name, types in fields.items():
        if name not in header:
            raise ArtifactError(path, f"{kind} header lacks {name!r}; the file is damaged or not from this avkit")
        if not isinstance(header[name], types):
            raise ArtifactError(path, f"{kind} header field {name!r} is a {type(header[name]).__name__}, "
                                f"expected {_type_names(types)}; the file is damaged")  # fmt: skip


def _type_names(types: type | tuple[type, ...]) -> str:
    return " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))

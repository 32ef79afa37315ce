"""Compute and cache log-mel features for every clip of a manifest.

The cache is one safetensors file: tensor ``logmel`` of shape
``(N, n_mels, frames)`` (float32), with the ids, the front-end's parameters
and the manifest path in its metadata. Clips are cut or zero-padded on the
right to ``seconds`` so they stack.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save

from avkit.audio.io import load_audio
from avkit.audio.transforms import LogMelSpectrogram
from avkit.data.manifest import Manifest, read_manifest
from avkit.errors import AvkitError, MediaError
from avkit.fileio import atomic_write_bytes
from avkit.progress import progress

log = logging.getLogger(__name__)


@dataclass
class FeatureConfig:
    """Front-end settings for the cache (the defaults of :class:`LogMelSpectrogram`)."""

    sample_rate: int = 16000
    n_fft: int = 512
    win_length: int = 400
    hop_length: int = 160
    n_mels: int = 64
    seconds: float = 1.0
    batch_size: int = 64

    def frontend(self) -> LogMelSpectrogram:
        return LogMelSpectrogram(self.sample_rate, self.n_fft, self.win_length, self.hop_length, self.n_mels)


def fit_length(wav: torch.Tensor, num_samples: int) -> torch.Tensor:
    """Cut or zero-pad ``(T,)`` on the right to ``num_samples``."""
    if wav.shape[-1] >= num_samples:
        return wav[..., :num_samples]
    return torch.nn.functional.pad(wav, (0, num_samples - wav.shape[-1]))


def compute_features(
    manifest: Manifest | str | Path,
    out: str | Path,
    cfg: FeatureConfig | None = None,
    show_progress: bool = False,
    strict: bool = False,
) -> dict[str, object]:
    """Compute log-mels of every clip and write them to ``out`` (safetensors), atomically.

    A clip that cannot be loaded is reported and skipped (``strict``: raised).

    Returns:
        Summary: ``count``, ``shape``, ``skipped`` (list of ``{id, reason}``), ``path``.
    """
    cfg = cfg or FeatureConfig()
    manifest = manifest if isinstance(manifest, Manifest) else read_manifest(manifest)
    frontend = cfg.frontend().eval()
    num_samples = round(cfg.seconds * cfg.sample_rate)
    ids: list[str] = []
    feats: list[torch.Tensor] = []
    skipped: list[dict[str, str]] = []
    batch: list[torch.Tensor] = []
    records = manifest.records

    def flush() -> None:
        if batch:
            with torch.inference_mode():
                feats.append(frontend(torch.stack(batch)))
            batch.clear()

    for rec in progress(records, desc="log-mel features", enabled=show_progress, unit="clip"):
        try:
            wav = load_audio(manifest.resolve(rec, "audio"), cfg.sample_rate)
        except MediaError as exc:
            if strict:
                raise
            skipped.append({"id": rec.id, "reason": str(exc)})
            log.warning("skipping %s: %s", rec.id, exc)
            continue
        ids.append(rec.id)
        batch.append(fit_length(wav, num_samples))
        if len(batch) == cfg.batch_size:
            flush()
    flush()
    if not ids:
        raise AvkitError(f"no clip of {manifest.path} could be loaded")
    logmel = torch.cat(feats)
    meta = {"ids": json.dumps(ids), "config": json.dumps(asdict(cfg)), "manifest": str(manifest.path)}
    atomic_write_bytes(out, save({"logmel": logmel.contiguous()}, metadata=meta))
    log.info("cached %d log-mels %s to %s", len(ids), tuple(logmel.shape), out)
    return {"count": len(ids), "shape": tuple(logmel.shape), "skipped": skipped, "path": str(out)}


def load_features(path: str | Path) -> tuple[list[str], torch.Tensor, dict[str, object]]:
    """Read a feature cache: ``(ids, logmel (N, n_mels, frames), config)``."""
    path = Path(path)
    if not path.is_file():
        raise MediaError(path, "feature cache does not exist")
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
        tensors = load_file(str(path))
        return json.loads(meta["ids"]), tensors["logmel"], json.loads(meta["config"])
    except (SafetensorError, KeyError, json.JSONDecodeError, OSError) as exc:
        raise MediaError(path, f"not a valid avkit feature cache ({exc})") from None

"""Discrete speech units: k-means over speech frames, repeats collapsed (fairseq's speech2unit, with faiss).

    units = fit_units(manifest, k=50)                       # log-mel frames of the training split's clips
    units = fit_units(manifest, k=50, model=m, tower="audio")   # or a trained audio tower's temporal map
    units.save("units.safetensors"); units = SpeechUnits.load("units.safetensors", model=m)
    sequence, durations = units.encode(wav)                 # [12, 40, 7, ...], frames per unit [3, 5, 2, ...]

``encode_manifest`` also writes ``spoken_units``: the units of the spoken part alone, the
clip's leading and trailing silence dropped (frames more than ``trim_db`` below the loudest,
as ``librosa.effects.trim`` finds them). The silence is the recording's background noise,
whose units name its colour and level, not the word; a decoder that must guess them from a
picture is better trained on ``spoken_units`` (docs/translation.md).

Durations are always counted in the log-mel front-end's frames (its hop), whatever the
features: a unit of a tower's map, whose cells are coarser, lasts the front-end frames its
cells span, and the last unit runs to the end of the clip, so a clip's durations add up to
its front-end frames and a unit vocoder at that hop aligns with them.

A unit file is an artifact (kind ``units``): the centroids, the per-dimension
standardisation applied before clustering, and in its header the frame features'
config (the log-mel settings, or the run, its fingerprint and the tower), so a
clip is always encoded exactly as the clusters were fitted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import librosa
import numpy as np
import torch
from torch import Tensor

from avkit.artifacts import load_artifact, require_fields, save_artifact
from avkit.data.manifest import Manifest, read_manifest
from avkit.errors import ArtifactError, AvkitError, ConfigError, MediaError
from avkit.modalities import Pipeline, get_modality, list_modalities
from avkit.models import AVModel
from avkit.progress import progress

log = logging.getLogger(__name__)

KIND, FORMAT = "units", 1
SPOKEN = "spoken_units"  # the manifest field of the units between a clip's leading and trailing silence
TRIM_DB = 15.0  # a frame more than this many dB below the clip's loudest is silence


def collapse(assignments: Tensor) -> tuple[list[int], list[int]]:
    """Frame-level units ``(t,)`` -> (units with consecutive repeats merged, frames each one lasted)."""
    if len(assignments) == 0:
        return [], []
    values, counts = torch.unique_consecutive(assignments, return_counts=True)
    return values.tolist(), counts.tolist()


@dataclass
class SpeechUnits:
    """k-means units over standardised frame features.

    Attributes:
        centroids: ``(k, d)``, in standardised feature space.
        mean, std: ``(d,)``, the standardisation of the frames the clusters were fitted on.
        features: the frame features' config: ``{"kind": "logmel", "settings": {...}}`` or
            ``{"kind": "tower", "checkpoint": ..., "fingerprint": ..., "tower": ..., "settings": {...}}``.
        fitted_on: where the frames came from (manifest, split, clips, frames).
    """

    centroids: Tensor
    mean: Tensor
    std: Tensor
    features: dict[str, Any]
    fitted_on: dict[str, Any] = field(default_factory=dict)
    model: AVModel | None = None

    def __post_init__(self) -> None:
        self._pipeline: Pipeline | None = None
        self._index: faiss.Index | None = None

    @property
    def k(self) -> int:
        return len(self.centroids)

    @property
    def frames_per_second(self) -> float:
        """Frame rate of the features clustered (a tower's map may be coarser than the front-end's frames)."""
        return float(self.features["frames_per_second"])

    def pipeline(self) -> Pipeline:
        """The audio pipeline (whole clips) the features are computed from."""
        if self._pipeline is None:
            self._pipeline = frame_pipeline(self.features["settings"])
        return self._pipeline

    def frames(self, wav: Tensor) -> Tensor:
        """A whole clip ``(T,)`` -> standardised frame features ``(t, d)``."""
        return (frame_features(self.features, self.pipeline(), self.model)(wav) - self.mean) / self.std

    def assign(self, frames: Tensor) -> Tensor:
        """Standardised frames ``(t, d)`` -> the nearest centroid of each ``(t,)``."""
        if self._index is None:
            self._index = faiss.IndexFlatL2(self.centroids.shape[1])
            self._index.add(self.centroids.numpy().astype(np.float32))
        _, nearest = self._index.search(np.ascontiguousarray(frames.numpy(), dtype=np.float32), 1)
        return torch.from_numpy(nearest[:, 0]).long()

    def encode(self, wav: Tensor) -> tuple[list[int], list[int]]:
        """A whole clip ``(T,)`` -> (unit sequence, repeats collapsed; front-end frames per unit).

        A unit that lasts no front-end frame (cells past the clip's end, in a padded map) is dropped,
        and neighbours it separated, if equal, merge.
        """
        sequence, durations = collapse(self.assign(self.frames(wav)))
        durations = front_end_durations(durations, self.frames_per_second, self.features["settings"], len(wav))
        units, frames = [], []
        for unit, d in zip(sequence, durations, strict=True):
            if d > 0 and units and units[-1] == unit:
                frames[-1] += d
            elif d > 0:
                units.append(unit)
                frames.append(d)
        return units, frames

    def save(self, path: str | Path) -> None:
        header = {"k": self.k, "features": self.features, "fitted_on": self.fitted_on}
        save_artifact(path, KIND, {"centroids": self.centroids, "mean": self.mean, "std": self.std}, header, FORMAT)

    @classmethod
    def load(cls, path: str | Path, model: AVModel | None = None) -> SpeechUnits:
        """Read a unit file; units of a tower's features need that run's ``model`` (checked by fingerprint).

        Raises:
            ArtifactError: not a unit file, damaged, or ``model`` is not the run the units were fitted on.
        """
        art = load_artifact(path, KIND, formats={FORMAT})
        require_fields(art.path, art.header, KIND, {"k": int, "features": dict})
        features = art.header["features"]
        require_fields(art.path, features, KIND, {"kind": str, "settings": dict, "frames_per_second": (int, float)})
        if features["kind"] == "tower":
            require_fields(art.path, features, KIND, {"tower": str, "checkpoint": str, "fingerprint": str})
            if model is None:
                raise ArtifactError(art.path, f"its units cluster the tower {features['tower']!r} of "
                                    f"{features['checkpoint']}; load that run's model with them")  # fmt: skip
            if model.fingerprint != features["fingerprint"]:
                raise ArtifactError(art.path, f"its units were fitted on model {features['fingerprint']}, "
                                    f"not on this one ({model.fingerprint or 'unsaved'})")  # fmt: skip
        t = art.tensors
        missing = sorted({"centroids", "mean", "std"} - set(t))
        if missing or len(t["centroids"]) != art.header["k"]:
            raise ArtifactError(art.path, f"is not a whole unit file: tensors {missing} missing, or not k = {art.header['k']} centroids")
        return cls(t["centroids"], t["mean"], t["std"], features, art.header.get("fitted_on", {}), model)


def front_end_durations(durations: list[int], frames_per_second: float, settings: dict[str, Any], samples: int) -> list[int]:
    """Durations in feature frames -> in the front-end's frames (``settings``' hop), for a clip of ``samples``.

    Unit boundaries are rounded to the nearest front-end frame and kept inside the clip; the last
    unit runs to the clip's last frame (``samples // hop + 1``, the centred STFT's count). A unit
    wholly past it gets 0 frames.
    """
    if not durations:
        return []
    hop_rate = settings["sample_rate"] / settings["hop_length"]
    if abs(hop_rate - frames_per_second) < 1e-6:
        return list(durations)
    last = samples // settings["hop_length"] + 1
    edges = [min(round(float(e) * hop_rate / frames_per_second), last) for e in np.cumsum(durations)[:-1]]
    edges = [0, *edges, last]
    return [b - a for a, b in zip(edges, edges[1:], strict=False)]


def speech_span(wav: Tensor, settings: dict[str, Any], top_db: float = TRIM_DB) -> tuple[int, int]:
    """The front-end frames ``[start, end)`` of a clip ``(T,)`` between its leading and trailing silence.

    A frame is silent when its RMS lies more than ``top_db`` below the clip's loudest frame
    (``librosa.effects.trim``'s rule, with the front-end's window and hop, counted in its centred
    frames); silence inside the speech stays.
    """
    if not len(wav):
        return 0, 0
    rms = librosa.feature.rms(y=wav.numpy(), frame_length=settings["win_length"], hop_length=settings["hop_length"])[0]
    loud = np.flatnonzero(librosa.amplitude_to_db(rms, ref=np.max, top_db=None) > -top_db)
    return int(loud[0]), int(loud[-1]) + 1


def spoken_part(units: list[int], durations: list[int], span: tuple[int, int]) -> list[int]:
    """The units that overlap ``span`` (front-end frames ``[start, end)``, see :func:`speech_span`):
    those wholly inside the leading or trailing silence dropped."""
    edges = np.cumsum([0, *durations])
    return [u for u, a, b in zip(units, edges[:-1], edges[1:], strict=True) if b > span[0] and a < span[1]]


def frame_pipeline(settings: dict[str, Any]) -> Pipeline:
    """The audio pipeline that reads whole clips at ``settings`` (an audio tower's, ``seconds`` ignored)."""
    return get_modality("audio").make_pipeline({**settings, "seconds": None})


def frame_features(features: dict[str, Any], pipeline: Pipeline, model: AVModel | None) -> Callable[[Tensor], Tensor]:
    """A function: a whole clip ``(T,)`` -> frame features ``(t, d)``, by the features' config."""
    if features["kind"] == "logmel":
        return lambda wav: pipeline.features(wav).T
    if model is None:
        raise ConfigError("tower features need the model whose tower they come from")
    tower = model.towers[features["tower"]]

    @torch.no_grad()
    def tower_frames(wav: Tensor) -> Tensor:
        was_training = tower.training
        tower.eval()
        fmap = tower(wav[None].to(model.device)).feature_map
        tower.train(was_training)
        if fmap is None:
            raise ConfigError(f"tower {features['tower']!r} gives no feature map to cluster")
        return (fmap.mean(2) if fmap.dim() == 4 else fmap)[0].T.float().cpu()  # (C, f, t): mean over frequency

    return tower_frames


def feature_config(settings: dict[str, Any], model: AVModel | None = None, tower: str = "",
                   checkpoint: str = "") -> dict[str, Any]:  # fmt: skip
    """The features' config: log-mel frames at ``settings``, or (``model``) that tower's temporal map."""
    hop_seconds = settings["hop_length"] / settings["sample_rate"]
    if model is None:
        return {"kind": "logmel", "settings": settings, "frames_per_second": 1 / hop_seconds}
    if tower not in model.towers or model.towers[tower].modality != "audio":
        raise ConfigError(f"no audio tower {tower!r} in this model; its towers: {list(model.towers)}")
    info = model.towers[tower].feature_info
    if info is None or not info.maps:
        raise ConfigError(f"the encoder of tower {tower!r} declares no feature map to cluster")
    stride = info.map().stride[-1]  # along time, in the encoder's input units
    per_frame = stride * (hop_seconds if info.input == "logmel" else 1 / settings["sample_rate"])
    return {"kind": "tower", "checkpoint": checkpoint, "fingerprint": model.fingerprint, "tower": tower,
            "settings": settings, "frames_per_second": 1 / per_frame}  # fmt: skip


def fit_units(manifest: Manifest | str | Path, k: int = 50, split: str | None = "train",
              settings: dict[str, Any] | None = None, model: AVModel | None = None, tower: str = "audio",
              checkpoint: str = "", seed: int = 0, iterations: int = 25,
              show_progress: bool = False) -> SpeechUnits:  # fmt: skip
    """Cluster the frames of a split's speech into ``k`` units with faiss k-means.

    ``settings``: the log-mel front-end (default: the audio modality's); with ``model``, the
    tower's own settings and temporal map instead. Unreadable clips are reported and skipped.

    Raises:
        ConfigError: ``k`` outside [2, frames], or no clip in the split.
    """
    manifest = manifest if isinstance(manifest, Manifest) else read_manifest(manifest, modalities=["audio"])
    if model is not None:
        settings = model.towers[tower].settings() if tower in model.towers else {}
    settings = {k_: v for k_, v in (settings or _default_settings()).items() if k_ != "seconds"}
    config = feature_config(settings, model, tower, checkpoint)
    pipe = frame_pipeline(settings)
    featurize = frame_features(config, pipe, model)
    records = manifest.split(split) if split else manifest.records
    if not records:
        raise ConfigError(f"{manifest.path}: no records in split {split!r} to fit units on")
    frames, skipped = [], 0
    for rec in progress(records, desc="unit features", enabled=show_progress, unit="clip"):
        try:
            frames.append(featurize(manifest.load(rec, pipe)))
        except MediaError as exc:
            skipped += 1
            log.warning("skipping %s: %s", rec.id, exc)
    if not frames:
        raise AvkitError(f"no audio of {manifest.path} (split {split!r}) could be read")
    x = torch.cat(frames)
    if not 2 <= k <= len(x):
        raise ConfigError(f"k must lie in [2, {len(x)}] (the frames available), got {k}")
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    z = ((x - mean) / std).numpy().astype(np.float32)
    kmeans = faiss.Kmeans(z.shape[1], k, niter=iterations, seed=seed, verbose=False)
    kmeans.train(z)
    fitted_on = {"manifest": str(manifest.path), "split": split, "clips": len(frames), "skipped": skipped,
                 "frames": len(x), "seed": seed}  # fmt: skip
    log.info("fitted %d units on %d frames of %d clips", k, len(x), len(frames))
    return SpeechUnits(torch.from_numpy(kmeans.centroids.copy()), mean, std, config, fitted_on, model)


def reusable_units(path: str | Path, k: int, seed: int, model: AVModel | None = None) -> SpeechUnits | None:
    """The units at ``path`` if a run may reuse them instead of fitting its own: ``k`` units fitted with
    ``seed`` (on ``model``'s tower, for a tower's units); None, with the reason logged, if the file is
    missing, damaged, or fitted otherwise."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        units = SpeechUnits.load(path, model=model)
    except ArtifactError as exc:
        log.info("%s", exc)
        return None
    if (units.k, units.fitted_on.get("seed")) != (k, seed):
        log.info("%s: k = %d and seed %s, not k = %d and seed %d", path, units.k, units.fitted_on.get("seed"), k, seed)
        return None
    return units


def _default_settings() -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(get_modality("audio").parse_settings({}))


def has_spoken_units(manifest: str | Path) -> bool:
    """Whether ``manifest`` exists and every line with units has spoken units too (``encode_manifest``
    wrote them; a manifest encoded before they existed lacks them)."""
    if not Path(manifest).is_file():
        return False
    encoded = [r for r in read_manifest(manifest).records if "units" in r.extra]
    return bool(encoded) and all(SPOKEN in r.extra for r in encoded)


def encode_manifest(units: SpeechUnits, manifest: Manifest | str | Path, out: str | Path, trim_db: float = TRIM_DB,
                    show_progress: bool = False, strict: bool = False) -> dict[str, Any]:  # fmt: skip
    """Write ``out``: ``manifest``'s records with fields ``units`` (repeats collapsed), ``unit_durations``
    (frames each unit lasted) and ``spoken_units`` (the units between the clip's leading and trailing
    silence, ``trim_db`` below its loudest frame; :func:`speech_span`). Media paths become absolute,
    so ``out`` may live anywhere.

    A clip that does not decode is reported and left without units (``strict``: raised).

    Returns:
        ``count`` (records encoded), ``skipped`` (``{id, reason}``), ``mean_length`` (units per clip),
        ``mean_spoken_length`` (spoken units per clip), ``path``.
    """
    from dataclasses import replace

    from avkit.data.manifest import write_manifest
    from avkit.fileio import refuse_overwriting

    manifest = manifest if isinstance(manifest, Manifest) else read_manifest(manifest, modalities=["audio"])
    refuse_overwriting(out, [manifest.path])
    pipe = units.pipeline()
    records, skipped, lengths, spoken_lengths = [], [], [], []
    for rec in progress(manifest.records, desc="units", enabled=show_progress, unit="clip"):
        extra = {k: v for k, v in rec.extra.items() if k not in ("units", "unit_durations", SPOKEN)}
        try:
            wav = manifest.load(rec, pipe)
            sequence, durations = units.encode(wav)
        except MediaError as exc:
            if strict:
                raise
            skipped.append({"id": rec.id, "reason": str(exc)})
            log.warning("skipping %s: %s", rec.id, exc)
        else:
            spoken = spoken_part(sequence, durations, speech_span(wav, units.features["settings"], trim_db))
            extra.update({"units": sequence, "unit_durations": durations, SPOKEN: spoken})
            lengths.append(len(sequence))
            spoken_lengths.append(len(spoken))
        paths = {m: str(manifest.resolve(rec, m).resolve()) for m in rec.paths}
        for m in list_modalities():  # other modalities' paths (read as metadata here) move along too
            if isinstance(extra.get(m), str) and rec.video is None:
                extra[m] = str((manifest.root / extra[m]).resolve())
        video = str((manifest.root / rec.video).resolve()) if rec.video is not None else None
        records.append(replace(rec, paths=paths, extra=extra, video=video))
    write_manifest(out, records)
    return {"count": len(lengths), "skipped": skipped, "mean_length": float(np.mean(lengths)) if lengths else 0.0,
            "mean_spoken_length": float(np.mean(spoken_lengths)) if lengths else 0.0, "path": str(out)}  # fmt: skip

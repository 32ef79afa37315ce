"""A modality is one registered object: how to read its files, and what encoders take them.

Core code (datasets, towers, training, embedding, indexing, the CLI) looks
modalities up by name here and never names one itself. Adding a modality is one
:func:`register_modality` call; see docs/extending.md.

A modality comes in one of two forms:

- **simple**: ``load`` (path -> raw) and ``preprocess`` (raw -> tensor), fixed.
- **configurable**: ``settings`` (a dataclass of per-tower preprocessing, such as
  image size or clip length), ``augment`` (a dataclass of per-run training
  augmentation) and ``pipeline`` (a :class:`Pipeline` class built from them).

Either way, a tower gets a :class:`Pipeline` from :meth:`Modality.make_pipeline`.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from avkit.config import from_dict, to_dict
from avkit.errors import ConfigError, MediaError
from avkit.registry import Registry


class Pipeline:
    """How one tower turns a file into a model input, for one run's settings.

    The item steps run in the data pipeline (DataLoader workers, CPU), one item
    at a time; :meth:`frontend` and :meth:`batch_augment` are modules that run on
    the model's device on whole batches.

    Attributes:
        modality: the manifest field it reads (set by :meth:`Modality.make_pipeline`).
        output: what ``__call__`` produces, matched against the encoder's
            ``feature_info.input`` (None: not checked).
        takes_boxes: whether manifest boxes refer to this modality's items (and
            are transformed with them).
        augment: the training augmentation settings, or None (evaluation).
        encoder_input: what the tower's encoder takes (``feature_info.input``), set by the
            tower; None for a pipeline used outside a model.
        strict: refuse a file that decodes only in part (a truncated WAV) instead of using what
            it holds with a warning; see :meth:`strictly`.
        video_uses_settings: whether :meth:`load_video` depends on the settings (an audio clip's
            length and rate do; a frame, decoded at its own size, does not).
    """

    modality: str = ""
    output: str | None = None
    takes_boxes: bool = False
    video_uses_settings: bool = True
    augment: Any = None
    encoder_input: str | None = None
    strict: bool = False

    def strictly(self) -> Pipeline:
        """This pipeline, for strict mode (datasets, builders and checks with ``--strict``): a copy with ``strict``."""
        view = copy.copy(self)
        view.strict = True
        return view

    def load(self, path: Path) -> Any:
        """Decode a file (the part an in-memory cache may keep). Raises MediaError naming ``path``."""
        raise NotImplementedError

    def load_bytes(self, data: bytes) -> Any | None:
        """:meth:`load` of an encoded file held in memory (a shard's tar member), or None: the caller
        then writes it to a temporary file and calls :meth:`load`, which also gives errors and
        warnings their file. The default is None; a modality may decode in memory, for speed."""
        return None

    def load_video(self, path: Path, t: float) -> Any:
        """What a video holds for this modality at ``t`` seconds, as :meth:`load` gives it for a file
        (a manifest's video lines). Raises MediaError naming ``path``; ConfigError if this modality
        cannot be read from a video."""
        raise ConfigError(f"the {self.modality} modality cannot be read from a video file ({path}); "
                          f"give its files in the manifest's {self.modality!r} field")  # fmt: skip

    def __call__(self, raw: Any, rng: np.random.Generator | None = None, boxes: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """``raw`` -> ``(tensor, boxes)``. ``rng`` None: evaluation (deterministic: centre crops, no
        augmentation); given: training (random crops, and augmentation if configured).
        ``boxes (N, 4)`` in pixels of ``raw`` come back in pixels of the tensor."""
        raise NotImplementedError

    def check_boxes(self, raw: Any, boxes: Tensor) -> None:
        """Raise TargetError unless every box ``(N, 4)`` (pixels of ``raw``) lies inside ``raw``.
        Every pipeline that takes boxes implements it (:func:`register_modality` checks)."""
        raise ConfigError(f"the {self.modality} modality does not check boxes (its pipeline lacks check_boxes)")

    def load_tensor(self, path: str | Path) -> Tensor:
        """One file, preprocessed for evaluation. Raises MediaError naming ``path``."""
        path = Path(path)
        raw = self.load(path)
        try:
            return self(raw)[0]
        except (ValueError, RuntimeError) as exc:
            raise MediaError(path, f"cannot be preprocessed ({exc})") from None

    def collate(self, items: Sequence[Tensor]) -> tuple[Tensor, Tensor | None]:
        """Items -> ``(batch (B, ...), lengths (B,) or None)``; by default they must share one shape."""
        shapes = {tuple(t.shape) for t in items}
        if len(shapes) > 1:
            raise ValueError(f"items of different shapes {sorted(shapes)} cannot be stacked; set a fixed size")
        return torch.stack(list(items)), None

    def frontend(self, encoder_input: str | None) -> nn.Module | None:
        """A module that turns batches of this pipeline's output into ``encoder_input`` on the
        device (None: none needed). Raises ConfigError if it cannot."""
        if encoder_input not in (None, self.output) and self.output is not None:
            raise ConfigError(f"the encoder takes {encoder_input!r} input, but this modality gives {self.output!r}")
        return None

    def batch_augment(self) -> nn.Module | None:
        """A training-only module applied on the device after the front-end (SpecAugment), or None."""
        return None

    # -- feature caches (precomputed front-end outputs) ----------------------------------------
    def cache_settings(self) -> dict[str, Any] | None:
        """The settings a cached front-end output depends on; None if this modality has no cache."""
        return None

    def cache_refusal(self) -> str | None:
        """Why a cache cannot stand in for the raw items with these augmentation settings, or None."""
        return None

    def features(self, raw: Any) -> Tensor:
        """The front-end output of one whole item ``(..., L)``, to cache."""
        raise NotImplementedError

    def from_features(self, features: Tensor, rng: np.random.Generator | None = None) -> Tensor:
        """A cached front-end output -> the front-end output of the preprocessed item."""
        raise NotImplementedError


class SimplePipeline(Pipeline):
    """The pipeline of a simple modality: ``load``, then ``preprocess``; nothing to configure."""

    def __init__(self, load: Callable[[Path], Any], preprocess: Callable[[Any], Tensor]) -> None:
        self._load, self._preprocess = load, preprocess

    def load(self, path: Path) -> Any:
        return self._load(path)

    def __call__(self, raw: Any, rng: np.random.Generator | None = None, boxes: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        return self._preprocess(raw), None


@dataclass(frozen=True)
class Modality:
    """Everything the toolkit needs to know to use one kind of data.

    Attributes:
        name: the manifest field holding this modality's paths (``"audio"``).
        encoders: names in the encoder registry that take this modality's
            tensors; the first is the default.
        load, preprocess: the simple form: ``path -> raw`` (raising
            :class:`~avkit.errors.MediaError` naming the file) and
            ``raw -> tensor`` of one fixed shape.
        settings: the configurable form: a dataclass of per-tower preprocessing settings.
        augment: a dataclass of per-run augmentation settings (None: no augmentation).
        pipeline: ``(settings, augment or None) -> Pipeline``.
        metadata: facts shown by ``avkit list``.
        describe: what a file of this modality is, for error messages.
        render: ``path -> array`` to draw in galleries (``(H, W)`` shown with a
            colour map, or ``(H, W, 3)`` RGB in [0, 1]); None draws the file name.
    """

    name: str
    load: Callable[[Path], Any] | None = None
    preprocess: Callable[[Any], Tensor] | None = None
    encoders: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    describe: str = "a file"
    render: Callable[[Path], np.ndarray] | None = None
    settings: type | None = None
    augment: type | None = None
    pipeline: Callable[..., Pipeline] | None = None

    def parse_settings(self, values: Mapping[str, Any] | None = None) -> Any:
        """This modality's preprocessing settings from a config table (defaults for missing keys)."""
        return self._parse(self.settings, values, "preprocess", prefix="preprocess.")

    def parse_augment(self, values: Mapping[str, Any] | None = None) -> Any:
        """This modality's augmentation settings from a config table; None for an empty table."""
        if not values:
            return None
        return self._parse(self.augment, values, "augment")  # errors name the field; the tower adds augment.TOWER

    def _parse(self, cls: type | None, values: Mapping[str, Any] | None, what: str, prefix: str = "") -> Any:
        if cls is None:
            if values:
                raise ConfigError(f"modality {self.name!r} takes no {what} settings, got {sorted(values)}")
            return None
        return from_dict(cls, dict(values or {}), prefix=prefix)

    def make_pipeline(self, settings: Mapping[str, Any] | None = None, augment: Mapping[str, Any] | None = None) -> Pipeline:
        """The pipeline for a tower's ``settings`` and a run's ``augment`` table (None: evaluation)."""
        if self.pipeline is None:
            self._parse(None, settings, "preprocess")
            self._parse(None, augment, "augment")
            pipe: Pipeline = SimplePipeline(self.load, self.preprocess)  # type: ignore[arg-type]
        else:
            pipe = self.pipeline(self.parse_settings(settings), self.parse_augment(augment))
        pipe.modality = self.name
        return pipe

    def default_settings(self) -> dict[str, Any]:
        """The default preprocessing settings as plain data ({} for a simple modality)."""
        return to_dict(self.settings()) if self.settings is not None else {}


#: Every registered modality, by name.
MODALITIES: Registry[Modality] = Registry("modality")


def register_modality(modality: Modality, *, replace: bool = False) -> Modality:
    """Register ``modality`` under ``modality.name``; a second owner of a name is refused.

    Returns the modality, so a module can write ``DEPTH = register_modality(Modality(...))``.
    """
    if not modality.encoders:
        raise ConfigError(f"modality {modality.name!r} must name at least one encoder")
    simple = modality.load is not None and modality.preprocess is not None
    if simple == (modality.pipeline is not None):
        raise ConfigError(f"modality {modality.name!r}: give either load and preprocess, or settings and pipeline")
    if modality.pipeline is not None and modality.settings is None:
        raise ConfigError(f"modality {modality.name!r}: a pipeline needs a settings dataclass")
    pipe = modality.pipeline
    if isinstance(pipe, type) and pipe.takes_boxes and pipe.check_boxes is Pipeline.check_boxes:
        raise ConfigError(f"modality {modality.name!r}: its pipeline takes boxes, so it must define check_boxes")
    for cls in (modality.settings, modality.augment):
        if cls is not None and not dataclasses.is_dataclass(cls):
            raise ConfigError(f"modality {modality.name!r}: {cls!r} must be a dataclass")
    if replace:
        MODALITIES.unregister(modality.name)
    MODALITIES.register(modality.name)(lambda: modality)
    return modality


def get_modality(name: str) -> Modality:
    """The registered modality ``name``; unknown names list the known ones."""
    return MODALITIES.create(name)


def list_modalities(pattern: str = "*") -> list[str]:
    """Names of registered modalities matching a shell-style pattern."""
    return MODALITIES.names(pattern)

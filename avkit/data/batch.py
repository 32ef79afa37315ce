"""A collated batch: each tower's input, and the targets heads train against.

    batch.inputs["audio"]    (B, T) waveforms, or (B, n_mels, frames) from a feature cache
    batch.lengths["audio"]   (B,) valid samples, only for variable-length inputs
    batch.labels             (B,) class indices, -1 where unlabelled
    batch.boxes["image"]     one (N_i, 4) tensor per item, pixels of the preprocessed image; None: no boxes
    batch.fields["snr_db"]   (B,) float manifest fields a head asked for, NaN where missing
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

from avkit.errors import AvkitError


@dataclass
class Batch:
    """Inputs and targets of ``B`` items.

    Attributes:
        inputs: tower name -> ``(B, ...)``; variable-length inputs are padded at the end.
        lengths: tower name -> ``(B,)`` valid lengths along the last axis (variable-length inputs only).
        precomputed: towers whose input already went through the tower's front-end (a feature cache).
        labels: ``(B,)`` int64 indices into the model's labels, -1 where unlabelled.
        boxes: tower name -> one ``(N_i, 4)`` float tensor per item (``x0, y0, x1, y1`` in
            pixels of that tower's input), or None for an item without boxes.
        fields: numeric manifest fields -> ``(B,)`` float32, NaN where an item lacks it.
        sequences: token-sequence manifest fields (lists of integers, e.g. speech units) ->
            ``(B, L_max)`` int64, padded with -1.
        index: ``(B,)`` positions in the dataset; ids: the items' manifest ids.
        skipped: ``(id, error)`` of items of this batch that could not be loaded (left out).
    """

    inputs: dict[str, Tensor]
    labels: Tensor
    index: Tensor
    ids: list[str]
    lengths: dict[str, Tensor] = field(default_factory=dict)
    precomputed: frozenset[str] = frozenset()
    boxes: dict[str, list[Tensor | None]] = field(default_factory=dict)
    fields: dict[str, Tensor] = field(default_factory=dict)
    sequences: dict[str, Tensor] = field(default_factory=dict)
    skipped: list[tuple[str, AvkitError]] = field(default_factory=list)

    @classmethod
    def of(cls, tower: str, x: Tensor, lengths: Tensor | None = None, ids: list[str] | None = None) -> Batch:
        """A batch of one tower's inputs ``x (B, ...)`` and nothing else (for embedding files)."""
        n = len(x)
        return cls({tower: x}, torch.full((n,), -1, dtype=torch.long), torch.arange(n), ids or [""] * n,
                   lengths={tower: lengths} if lengths is not None else {})  # fmt: skip

    def __len__(self) -> int:
        return len(self.ids)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """A copy with every tensor on ``device``."""
        def move(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(device, non_blocking=non_blocking)

        return replace(
            self,
            inputs={k: move(v) for k, v in self.inputs.items()},
            lengths={k: move(v) for k, v in self.lengths.items()},
            labels=move(self.labels), index=move(self.index),
            boxes={k: [move(b) for b in v] for k, v in self.boxes.items()},
            fields={k: move(v) for k, v in self.fields.items()},
            sequences={k: move(v) for k, v in self.sequences.items()},
        )  # fmt: skip

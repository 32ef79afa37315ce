"""What a head is: a registered module that turns tower outputs and targets into named losses.

    @register_head("my_head")
    class MyHead(Head):
        def __init__(self, context: HeadContext, tower: str = "audio") -> None: ...
        def forward(self, outputs, batch) -> dict[str, Tensor]: return {"mse": ...}
        def evaluator(self) -> Evaluator: ...

A head's constructor takes the :class:`HeadContext` (the towers it may read, the
embedding dimension, the class names) and its own arguments from the model
config. The model runs the towers once per batch and hands every head the
outputs; the engine sums the heads' loss terms with the run config's weights
(open_clip's ``output_dict`` pattern). docs/extending.md has a whole example.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from torch import Tensor, nn

from avkit.data.batch import Batch
from avkit.errors import ConfigError
from avkit.models.encoders import EncoderOutput, FeatureInfo
from avkit.registry import Registry


@dataclass(frozen=True)
class TowerInfo:
    """What a head may know of a tower.

    Attributes:
        modality: the manifest field it reads.
        feature_info: what its encoder outputs (None if undeclared).
        settings: its preprocessing settings, defaults included (an image tower's ``size``, ``mean``, ``std``).
        encoder: the tower's encoder itself, for a head that runs it on its own outputs (a
            feature-matching loss through a frozen tower). Borrow it with :func:`borrow`; a head
            that assigns it to an attribute would own a second copy of the tower's weights.
    """

    modality: str
    feature_info: FeatureInfo | None
    settings: Mapping[str, Any] = field(default_factory=dict)
    encoder: nn.Module | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class HeadContext:
    """The model a head sits on.

    Attributes:
        towers: tower name -> :class:`TowerInfo`, in config order.
        embed_dim: the shared embedding space's dimension.
        labels: the class names, in index order.
    """

    towers: Mapping[str, TowerInfo]
    embed_dim: int
    labels: tuple[str, ...]

    def pooled_dim(self, tower: str) -> int:
        """The pooled dimension of ``tower``; ConfigError if it is unknown or undeclared."""
        self.require(tower)
        info = self.towers[tower].feature_info
        if info is None:
            raise ConfigError(f"the encoder of tower {tower!r} does not declare feature_info")
        return info.pooled_dim

    def require(self, *towers: str) -> None:
        """ConfigError unless every one of ``towers`` is in the model."""
        for tower in towers:
            if tower not in self.towers:
                raise ConfigError(f"reads tower {tower!r}, but the model's towers are {list(self.towers)}")


class Evaluator(Protocol):
    """Accumulates a head's view of a dataset, batch by batch, then scores it."""

    def update(self, outputs: Mapping[str, EncoderOutput], batch: Batch) -> None: ...

    def compute(self) -> dict[str, float]:
        """Named metrics; ``score`` (higher is better) is what picks the best checkpoint by default."""
        ...


class Head(nn.Module):
    """A trainable objective over some towers.

    Subclasses set, in ``__init__``:

    - ``towers``: the towers whose encoder outputs it reads;
    - ``input_towers``: towers whose pipeline output (``batch.inputs[tower]``, a waveform say) it
      reads without their encoder (the model runs no encoder that no head needs);
    - ``targets``: what it needs on every training item: ``"label"``, ``"boxes"`` or any
      manifest field holding a number (``batch.fields[name]``) or a list of integers
      (``batch.sequences[name]``); checked before training starts;
    - ``loss_terms``: the names :meth:`forward` returns;
    - ``frozen_towers``: towers it reads as fixed teachers (the model refuses to build
      unless an ``init`` freezes them);
    - ``frozen_parts``: its own submodules that must come, frozen, from a trained run
      (a teacher's classifier), checked the same way;

    and implement :meth:`forward` and :meth:`evaluator`. A head that gives embeddings
    for retrieval also overrides :meth:`embeds` and :meth:`embed`.
    """

    towers: tuple[str, ...] = ()
    input_towers: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    loss_terms: tuple[str, ...] = ()
    frozen_towers: tuple[str, ...] = ()
    frozen_parts: tuple[str, ...] = ()

    def forward(self, outputs: Mapping[str, EncoderOutput], batch: Batch) -> dict[str, Tensor]:
        """Named loss terms (scalars) of one batch."""
        raise NotImplementedError

    def evaluator(self) -> Evaluator:
        raise NotImplementedError

    def embeds(self, tower: str) -> bool:
        """Whether :meth:`embed` gives retrieval embeddings for ``tower``."""
        return False

    def embed(self, tower: str, output: EncoderOutput) -> Tensor:
        """Unit-norm embeddings ``(B, D)`` of ``tower``'s items."""
        raise NotImplementedError

    def logs(self) -> dict[str, float]:
        """Scalars worth logging every step (a learnable temperature, say)."""
        return {}


def borrow(module: nn.Module) -> Callable[..., Any]:
    """``module``'s forward, callable without making ``module`` a child of the caller (no second copy in checkpoints)."""
    return module.forward


def check_tokens(tokens: Tensor, vocab: int, who: str, field: str) -> Tensor:
    """``tokens (B, L)`` (padded with -1), or ConfigError if one is outside ``[0, vocab)``."""
    largest = int(tokens.max()) if tokens.numel() else -1
    if largest >= vocab:
        raise ConfigError(f"{who}: field {field!r} holds token {largest}, but vocab is {vocab}; "
                          "set the head's vocab to the units' k")  # fmt: skip
    return tokens


#: Every registered head, by kind.
HEADS: Registry[Head] = Registry("head")


def register_head(name: str) -> Callable[[type[Head]], type[Head]]:
    """Class decorator: register a :class:`Head` subclass under ``name``."""
    return HEADS.register(name)


def list_heads(pattern: str = "*") -> list[str]:
    """Registered head kinds matching a shell-style pattern."""
    return HEADS.names(pattern)


def create_head(name: str, spec: Mapping[str, Any], context: HeadContext) -> Head:
    """Build the head ``name`` of a model config: ``spec["kind"]`` (default ``name``) with the other keys as arguments."""
    spec = dict(spec)
    kind = spec.pop("kind", name)
    try:
        return HEADS.create(kind, context=context, **spec)
    except ConfigError as exc:
        raise ConfigError(f"head {name!r}: {exc}") from None

"""The model: towers feed heads; one forward gives every head's named loss terms.

    model = create_model(config)                  # avkit.models.factory
    terms = model(batch)                          # {"contrastive/infonce": tensor, ...}
    metrics = model.evaluate(loader)              # {"contrastive/audio_to_image/R@1": 0.97, ...}
    vectors = model.embed("image", images)        # (B, D), unit norm, for retrieval

Each tower runs once per batch, however many heads read it; towers frozen by an
``init`` run without gradient and keep their BatchNorm statistics.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from avkit.data.batch import Batch
from avkit.errors import ConfigError
from avkit.modalities import Pipeline
from avkit.models.config import ModelConfig
from avkit.models.encoders import EncoderOutput
from avkit.models.heads import Head, HeadContext, TowerInfo, create_head
from avkit.models.tower import Tower


class AVModel(nn.Module):
    """Towers + heads, built from a :class:`ModelConfig` (use ``avkit.models.create_model``).

    Attributes:
        config: the model config it was built from (saved in its checkpoints).
        towers, heads: ``ModuleDict`` s by name, in config order.
        frozen: module names fixed by an ``init`` (``towers.image``, ...).
        fingerprint: the SHA-256 prefix of the weights it was loaded with ("" if fresh).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if not config.towers or not config.heads:
            raise ConfigError("model: needs at least one tower ([model.towers.NAME]) and one head ([model.heads.NAME])")
        self.config = config
        self.towers = nn.ModuleDict({name: _tower(name, cfg) for name, cfg in config.towers.items()})
        context = HeadContext(
            {name: TowerInfo(t.modality, t.feature_info, t.settings(), t.encoder) for name, t in self.towers.items()},
            config.embed_dim, tuple(config.labels),
        )  # fmt: skip
        self.heads = nn.ModuleDict({name: create_head(name, spec, context) for name, spec in config.heads.items()})
        read = {t for head in self.heads.values() for t in (*head.towers, *head.input_towers)}
        self.encoded = [t for t in self.towers if any(t in head.towers for head in self.heads.values())]
        for name in self.towers:
            if name not in read:
                raise ConfigError(f"model: tower {name!r} is read by no head; heads: {list(self.heads)}")
        self.frozen = sorted({part for init in config.init.values() if init.freeze for part in init.parts})
        for part in self.frozen:
            self._module(part).requires_grad_(False)
        for hname, head in self.heads.items():
            for t in head.frozen_towers:
                if not self.is_frozen(f"towers.{t}"):
                    raise ConfigError(f"head {hname!r} reads tower {t!r} as a frozen teacher, but no init freezes it; "
                                      f"add [model.init.NAME] with checkpoint = the teacher's run and "
                                      f"parts = {{\"towers.{t}\" = \"towers.{t}\"}}")  # fmt: skip
            for part in head.frozen_parts:
                if not self.is_frozen(f"heads.{hname}.{part}"):
                    raise ConfigError(f"head {hname!r} needs its {part!r} copied, frozen, from a trained run; add it to "
                                      f"an init's parts: \"heads.{hname}.{part}\" = the source module "
                                      f"(e.g. \"heads.classify.classifier\")")  # fmt: skip
        for name in self.towers:  # a tower only read as input has weights no loss reaches: no gradient for them
            if name not in self.encoded:
                self.towers[name].requires_grad_(False)
        self.fingerprint = ""

    def _module(self, name: str) -> nn.Module:
        try:
            return self.get_submodule(name)
        except AttributeError:
            raise ConfigError(f"model has no module {name!r}; it has {self.module_names()}") from None

    def module_names(self) -> list[str]:
        """The names an ``init`` can copy or freeze: each tower, each head, and their children."""
        return [n for n, _ in self.named_modules() if n and n.count(".") <= 2]

    def is_frozen(self, name: str) -> bool:
        """Whether module ``name`` lies in (or is) a frozen part."""
        return any(name == p or name.startswith(p + ".") for p in self.frozen)

    def train(self, mode: bool = True) -> AVModel:
        super().train(mode)
        for part in self.frozen:  # frozen parts keep their BatchNorm statistics
            self._module(part).eval()
        return self

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # -- data ----------------------------------------------------------------------------------
    def pipelines(self, augment: Mapping[str, Mapping[str, Any]] | None = None, train: bool = False) -> dict[str, Pipeline]:
        """Each tower's pipeline: evaluation, or (``train``) training with ``augment[tower]`` settings."""
        unknown = sorted(set(augment or {}) - set(self.towers))
        if unknown:
            raise ConfigError(f"augment: no tower named {unknown}; towers: {list(self.towers)}")
        if not train:
            return {name: t.pipeline for name, t in self.towers.items()}
        return {name: t.training_pipeline((augment or {}).get(name)) for name, t in self.towers.items()}

    def targets(self) -> dict[str, tuple[str, ...]]:
        """What each trained head needs on every training item (``label``, ``boxes``, manifest fields)."""
        return {name: self.heads[name].targets for name in self.trained_heads()}

    # -- training ------------------------------------------------------------------------------
    def encode(self, batch: Batch, augment: Mapping[str, nn.Module] | None = None) -> dict[str, EncoderOutput]:
        """The output of every tower a head encodes; ``augment``: training-only modules per tower (SpecAugment).

        A tower only read as input (a head's ``input_towers``) is not run through its encoder."""
        outputs = {}
        for name in self.encoded:
            tower = self.towers[name]
            frozen = self.is_frozen(f"towers.{name}")
            with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
                outputs[name] = tower(batch.inputs[name], batch.lengths.get(name), name in batch.precomputed,
                                      (augment or {}).get(name))  # fmt: skip
        return outputs

    def trained_heads(self) -> list[str]:
        """Heads that train here: all but those an ``init`` froze whole (copied from another run for inference)."""
        return [name for name in self.heads if not self.is_frozen(f"heads.{name}")]

    def forward(self, batch: Batch, augment: Mapping[str, nn.Module] | None = None) -> dict[str, Tensor]:
        """Named loss terms ``{"head/term": scalar}`` of one batch, from every trained head."""
        outputs = self.encode(batch, augment)
        return {f"{name}/{term}": value for name in self.trained_heads()
                for term, value in self.heads[name](outputs, batch).items()}  # fmt: skip

    def logs(self) -> dict[str, float]:
        """Scalars the heads want logged (``head/name``)."""
        return {f"{name}/{k}": v for name, head in self.heads.items() for k, v in head.logs().items()}

    @torch.no_grad()
    def evaluate(self, batches: Iterable[Batch]) -> dict[str, float]:
        """Every trained head's metrics over ``batches`` (``head/metric``), in evaluation mode. A head copied
        whole and frozen is scored in the run it was trained in."""
        was_training = self.training
        self.eval()
        evaluators = {name: self.heads[name].evaluator() for name in self.trained_heads()}
        device = self.device
        for batch in batches:
            if len(batch) == 0:
                continue
            batch = batch.to(device)
            outputs = self.encode(batch)
            for ev in evaluators.values():
                ev.update(outputs, batch)
        self.train(was_training)
        return {f"{name}/{k}": v for name, ev in evaluators.items() for k, v in ev.compute().items()}

    # -- embedding (the retrieval Embedder interface) ------------------------------------------
    def embedding_towers(self) -> list[str]:
        """Towers some head embeds, in config order."""
        return [t for t in self.towers if any(h.embeds(t) for h in self.heads.values())]

    def embedding_modalities(self) -> list[str]:
        return [self.towers[t].modality for t in self.embedding_towers()]

    def tower_for(self, modality: str) -> str:
        """The embedding tower that reads ``modality``."""
        names = [t for t in self.embedding_towers() if self.towers[t].modality == modality]
        if len(names) != 1:
            found = "no tower" if not names else f"several towers {names}"
            raise ConfigError(f"this model embeds {self.embedding_modalities()}; {found} embeds {modality!r}")
        return names[0]

    def embedding_head(self, tower: str) -> Head:
        """The head that embeds ``tower`` (the first, in config order). Raises ConfigError if none does."""
        for head in self.heads.values():
            if head.embeds(tower):
                return head
        raise ConfigError(f"this model embeds towers {self.embedding_towers()}, not {tower!r}")

    @torch.no_grad()
    def tower_output(self, tower: str, batch: Batch) -> EncoderOutput:
        """One tower's output for ``batch``, in evaluation mode, without gradient."""
        was_training = self.training
        self.eval()
        batch = batch.to(self.device)
        out = self.towers[tower](batch.inputs[tower], batch.lengths.get(tower), tower in batch.precomputed)
        self.train(was_training)
        return out

    @torch.no_grad()
    def embed_batch(self, tower: str, batch: Batch) -> Tensor:
        """Unit-norm embeddings ``(B, D)`` of ``batch``'s ``tower`` items, in evaluation mode, on the CPU."""
        head = self.embedding_head(tower)
        return head.embed(tower, self.tower_output(tower, batch)).float().cpu()

    def embed(self, tower: str, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Unit-norm embeddings ``(B, D)`` of ``x``, a batch of ``tower``'s pipeline outputs."""
        return self.embed_batch(tower, Batch.of(tower, x, lengths))


def _tower(name: str, cfg: Any) -> Tower:
    try:
        return Tower(name, cfg)
    except ConfigError as exc:
        message = str(exc)
        raise ConfigError(message if message.startswith("tower ") else f"tower {name!r}: {message}") from None

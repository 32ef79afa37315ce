"""``caption``: an image tower's map -> a token sequence (Show, Attend and Tell), e.g. speech units.

    image tower ─▶ feature_map (B, C, h, w) ─▶ (B, h·w, C) ─▶ ShowAttendTell ─▶ tokens, attention per token

The targets are a manifest field of token lists (``batch.sequences[target]``), such as the
unit sequences ``avkit units encode`` writes. Text-free image-to-speech (Hsu et al. 2021)
decodes units this way and speaks them with a unit vocoder.

    [heads.caption]
    tower = "image"
    target = "units"          # the manifest field
    vocab = 50                # tokens are 0 .. vocab-1 (the units' k)
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from avkit.data.batch import Batch
from avkit.errors import ConfigError
from avkit.evaluation.sequences import edit_distance
from avkit.models.encoders import EncoderOutput
from avkit.models.heads.base import Head, HeadContext, check_tokens, register_head
from avkit.models.sequence_decoder import Decoded, ShowAttendTell


@register_head("caption")
class CaptionHead(Head):
    """Loss terms ``ce`` (teacher forcing) and ``attention`` (the doubly stochastic penalty; weigh it,
    the paper's λ, with ``[loss_weights.caption] attention``). Validation decodes greedily and
    scores ``token_error`` (edit distance / reference length); ``score`` = −token_error.

    Args:
        tower: the image tower (its encoder must give a 2-D map). target: the manifest field of tokens.
        vocab: the number of tokens. embed_dim, hidden_dim, attention_dim, dropout: decoder sizes.
        beam, max_length, length_penalty: decoding defaults (``decode`` may override them).
    """

    def __init__(self, context: HeadContext, tower: str = "image", target: str = "units", vocab: int = 50,
                 embed_dim: int = 64, hidden_dim: int = 256, attention_dim: int = 128, dropout: float = 0.3,
                 beam: int = 3, max_length: int = 60, length_penalty: float = 1.0) -> None:  # fmt: skip
        super().__init__()
        context.require(tower)
        info = context.towers[tower].feature_info
        if info is None or not info.maps or len(info.map().stride) != 2:
            raise ConfigError(f"caption: tower {tower!r} must give a 2-D feature map to attend over")
        if vocab < 1 or beam < 1 or max_length < 1:
            raise ConfigError(f"caption: vocab, beam and max_length must be >= 1, got {vocab}, {beam}, {max_length}")
        self.towers, self.targets, self.loss_terms = (tower,), (target,), ("ce", "attention")
        self.target = target
        self.decoder = ShowAttendTell(info.map().channels, vocab, embed_dim, hidden_dim, attention_dim, dropout)
        self.decoding = {"beam": beam, "max_length": max_length, "length_penalty": length_penalty}

    def cells(self, output: EncoderOutput) -> Tensor:
        """The map as a set of cells ``(B, h·w, C)``."""
        return output.feature_map.flatten(2).transpose(1, 2)

    def tokens(self, batch: Batch) -> Tensor:
        """The batch's target sequences ``(B, L)``, checked against the vocabulary."""
        return check_tokens(batch.sequences[self.target], self.decoder.vocab, "caption", self.target)

    def forward(self, outputs: Mapping[str, EncoderOutput], batch: Batch) -> dict[str, Tensor]:
        ce, penalty = self.decoder.losses(self.cells(outputs[self.towers[0]]), self.tokens(batch))
        return {"ce": ce, "attention": penalty}

    def decode(self, output: EncoderOutput, **options: float) -> list[Decoded]:
        """Sequences for a batch of the tower's outputs; ``options``: ``beam``, ``max_length``, ``length_penalty``."""
        return [hypotheses[0] for hypotheses in self.nbest(output, **options)]

    def nbest(self, output: EncoderOutput, **options: float) -> list[list[Decoded]]:
        """Each item's beam: its finished hypotheses, best first (``options`` as for :meth:`decode`)."""
        unknown = sorted(set(options) - set(self.decoding))
        if unknown:
            raise ConfigError(f"caption: decoding options are {sorted(self.decoding)}; got {unknown}")
        opts = {**self.decoding, **options}
        return self.decoder.nbest(self.cells(output), int(opts["beam"]), int(opts["max_length"]), float(opts["length_penalty"]))

    def evaluator(self) -> TokenErrorEvaluator:
        return TokenErrorEvaluator(self)


class TokenErrorEvaluator:
    """Greedy decoding's edit distance to the references, over their total length."""

    def __init__(self, head: CaptionHead) -> None:
        self.head = head
        self.errors, self.length = 0, 0

    def update(self, outputs: Mapping[str, EncoderOutput], batch: Batch) -> None:
        decoded = self.head.decode(outputs[self.head.towers[0]], beam=1)
        for hyp, ref in zip(decoded, self.head.tokens(batch).tolist(), strict=True):
            ref = [t for t in ref if t >= 0]
            self.errors += edit_distance(hyp.tokens, ref)
            self.length += len(ref)

    def compute(self) -> dict[str, float]:
        error = self.errors / self.length if self.length else float("nan")
        return {"token_error": error, "score": -error}


__all__ = ["CaptionHead"]

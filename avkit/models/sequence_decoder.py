"""Show, Attend and Tell (Xu et al. 2015): an LSTM that emits tokens while attending over a spatial map.

    map (B, N, C) ─▶ h0, c0 = tanh(W · mean(map))
    step t:  α_t = softmax_n(wᵀ tanh(W_v v_n + W_h h_{t-1}))      soft attention over the N cells
             z_t = σ(W_β h_{t-1}) · Σ_n α_tn v_n                   gated context
             h_t = LSTM([E y_{t-1}, z_t], h_{t-1})
             p(y_t) = softmax(W_o (E y_{t-1} + W_oh h_t + W_oz z_t))  the paper's deep output layer
    training: teacher forcing; loss CE + λ mean_n (L/N − Σ_t α_tn)²  (the doubly stochastic regulariser)
    inference: beam search (width 1: greedy), length-normalised scores, every step's attention kept;
               `nbest` returns every finished hypothesis of the beam, for a rescorer

The regulariser asks that the L steps (tokens and end) spread their attention evenly
over the N cells. Xu et al. write ``Σ_n (1 − s_n)²``, which fits L ≈ N; since ``Σ_n s_n = L``,
it equals ``Σ_n (L/N − s_n)²`` plus a constant, so the target L/N changes no gradient and
reads 0 at an even spread. Here it is averaged over the cells rather than summed: a
weight λ here is λ/N in Xu et al.'s form.

Token-agnostic: tokens are integers in ``[0, vocab)`` (speech units, word ids); the
decoder adds its own begin and end tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class Decoded:
    """One item's decoded sequence.

    Attributes:
        tokens: the tokens, without begin and end.
        attention: ``(len(tokens), N)``, the attention over the map's cells at each emitted token.
        score: the length-normalised log-probability the beam ranked it by.
    """

    tokens: list[int]
    attention: Tensor
    score: float


class ShowAttendTell(nn.Module):
    """Map ``(B, N, C)`` -> token sequences.

    Args:
        feature_dim: C. vocab: the number of tokens. embed_dim, hidden_dim, attention_dim: sizes.
        dropout: before the output layer, in training.
    """

    def __init__(self, feature_dim: int, vocab: int, embed_dim: int = 64, hidden_dim: int = 256,
                 attention_dim: int = 128, dropout: float = 0.3) -> None:  # fmt: skip
        super().__init__()
        self.vocab = vocab
        self.eos, self.bos = vocab, vocab + 1  # end is an output (index vocab); begin is only ever an input
        self.embed = nn.Embedding(vocab + 2, embed_dim)
        self.init_h, self.init_c = nn.Linear(feature_dim, hidden_dim), nn.Linear(feature_dim, hidden_dim)
        self.att_v, self.att_h = nn.Linear(feature_dim, attention_dim), nn.Linear(hidden_dim, attention_dim)
        self.att_w = nn.Linear(attention_dim, 1)
        self.gate = nn.Linear(hidden_dim, feature_dim)
        self.lstm = nn.LSTMCell(embed_dim + feature_dim, hidden_dim)
        self.out_h, self.out_z = nn.Linear(hidden_dim, embed_dim), nn.Linear(feature_dim, embed_dim)
        self.out = nn.Linear(embed_dim, vocab + 1)  # tokens and end
        self.dropout = nn.Dropout(dropout)

    def start(self, features: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(h0, c0, projected features (B, N, A))`` for a map ``(B, N, C)``."""
        mean = features.mean(1)
        return torch.tanh(self.init_h(mean)), torch.tanh(self.init_c(mean)), self.att_v(features)

    def step(self, features: Tensor, projected: Tensor, prev: Tensor, h: Tensor, c: Tensor
             ) -> tuple[Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
        """One step: previous tokens ``(B,)`` -> ``(logits (B, vocab + 1), attention (B, N), h, c)``."""
        alpha = self.att_w(torch.tanh(projected + self.att_h(h)[:, None])).squeeze(-1).softmax(-1)
        z = torch.sigmoid(self.gate(h)) * (alpha[..., None] * features).sum(1)
        e = self.embed(prev)
        h, c = self.lstm(torch.cat([e, z], -1), (h, c))
        logits = self.out(self.dropout(e + self.out_h(h) + self.out_z(z)))
        return logits, alpha, h, c

    def forward(self, features: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """Teacher forcing. ``targets (B, L)`` padded with -1 -> ``(logits (B, L + 1, vocab + 1), attention (B, L + 1, N))``.

        Position ``t`` predicts token ``t`` (the last real position predicts end).
        """
        b, length = targets.shape
        lengths = (targets >= 0).sum(1)
        inputs = torch.cat([torch.full((b, 1), self.bos, device=targets.device), targets.clamp_min(0)], 1)
        h, c, projected = self.start(features)
        logits, alphas = [], []
        for t in range(length + 1):
            out, alpha, h, c = self.step(features, projected, inputs[:, t], h, c)
            logits.append(out)
            alphas.append(alpha * (t <= lengths).to(alpha.dtype)[:, None])  # no attention after the end
        return torch.stack(logits, 1), torch.stack(alphas, 1)

    def targets_with_end(self, targets: Tensor) -> Tensor:
        """``(B, L)`` padded with -1 -> ``(B, L + 1)``: each sequence followed by the end token, then -1."""
        lengths = (targets >= 0).sum(1)
        out = torch.cat([targets, torch.full_like(targets[:, :1], -1)], 1)
        out[torch.arange(len(out)), lengths] = self.eos
        return out

    def losses(self, features: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """``(cross-entropy per token, doubly stochastic attention penalty)`` of a batch."""
        logits, alphas = self(features, targets)
        ce = F.cross_entropy(logits.flatten(0, 1), self.targets_with_end(targets).flatten(), ignore_index=-1)
        steps = (targets >= 0).sum(1, keepdim=True) + 1  # tokens and end
        penalty = ((steps / alphas.shape[-1] - alphas.sum(1)) ** 2).mean()
        return ce, penalty

    def decode(self, features: Tensor, beam: int = 1, max_length: int = 50, length_penalty: float = 1.0) -> list[Decoded]:
        """Beam search per item of a map ``(B, N, C)``, each item's best hypothesis; ``beam = 1`` is greedy decoding.

        Hypotheses are ranked by ``log p / length^length_penalty`` (0: raw log-probability), their
        length counting the end token. A hypothesis that reaches ``max_length`` tokens ends there.
        """
        return [hypotheses[0] for hypotheses in self.nbest(features, beam, max_length, length_penalty)]

    @torch.no_grad()
    def nbest(self, features: Tensor, beam: int = 1, max_length: int = 50, length_penalty: float = 1.0) -> list[list[Decoded]]:
        """Beam search per item of a map ``(B, N, C)``: each item's finished hypotheses, at most ``beam``,
        best first (as :meth:`decode` ranks them), for a rescorer to choose among."""
        return [self._beam(features[i : i + 1], beam, max_length, length_penalty) for i in range(len(features))]

    def _beam(self, features: Tensor, beam: int, max_length: int, alpha: float) -> list[Decoded]:
        h, c, projected = self.start(features)
        device = features.device
        tokens = torch.full((1, 0), 0, dtype=torch.long, device=device)
        attention = torch.zeros(1, 0, features.shape[1], device=device)
        scores = torch.zeros(1, device=device)
        prev = torch.full((1,), self.bos, dtype=torch.long, device=device)
        finished: list[Decoded] = []
        for t in range(max_length + 1):
            k = len(prev)
            logits, alpha_t, h, c = self.step(features.expand(k, -1, -1), projected.expand(k, -1, -1), prev, h, c)
            logp = logits.log_softmax(-1)
            if t == max_length:  # only the end token is left
                logp = torch.full_like(logp, -torch.inf)
                logp[:, self.eos] = logits.log_softmax(-1)[:, self.eos]
            total = (scores[:, None] + logp).flatten()
            best = total.topk(min(beam * 2, int(torch.isfinite(total).sum()))).indices
            keep_rows, keep_tokens, keep_scores = [], [], []
            for rank, flat in enumerate(best.tolist()):
                row, token = divmod(flat, self.vocab + 1)
                if token == self.eos:
                    if rank < beam:  # an end counts only among the best `beam` continuations (fairseq's rule)
                        norm = (t + 1) ** alpha if alpha else 1.0
                        finished.append(Decoded(tokens[row].tolist(), attention[row].cpu(), float(total[flat]) / norm))
                elif len(keep_rows) < beam:
                    keep_rows.append(row)
                    keep_tokens.append(token)
                    keep_scores.append(total[flat])
            if not keep_rows or len(finished) >= beam:
                break
            rows = torch.tensor(keep_rows, device=device)
            next_tokens = torch.tensor(keep_tokens, device=device)
            tokens = torch.cat([tokens[rows], next_tokens[:, None]], 1)
            attention = torch.cat([attention[rows], alpha_t[rows][:, None]], 1)
            scores, prev, h, c = torch.stack(keep_scores), next_tokens, h[rows], c[rows]
        return sorted(finished, key=lambda d: -d.score)[:beam]

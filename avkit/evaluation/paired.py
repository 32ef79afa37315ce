"""Two systems scored on the same items: their difference, and how sure it is.

    d = paired_difference(greedy_correct, beam_correct)     # (seeds, items) 0/1 each
    d.difference, d.low, d.high, d.only_a, d.only_b

When two decoders speak the same test images (and, here, from the same random
phases), their verdicts are paired: most items are right or wrong under both,
and only the discordant items say which is better. The interval resamples the
items (a paired bootstrap, Koehn 2004), keeping each item's verdicts under
every seed together, so seeds are averaged and not taken for independent data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class PairedDifference:
    """``difference``: mean of a − b; ``low``, ``high``: its bootstrap interval at ``level``;
    ``only_a``, ``only_b``: (item, seed) pairs right under one system alone; ``pairs``: all of them."""

    difference: float
    low: float
    high: float
    level: float
    only_a: int
    only_b: int
    pairs: int

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def paired_difference(a: np.ndarray, b: np.ndarray, level: float = 0.95, draws: int = 10_000,
                      seed: int = 0) -> PairedDifference:  # fmt: skip
    """Scores ``(S, N)`` (or ``(N,)``) of two systems on the same N items under S seeds -> a − b.

    Raises:
        ValueError: shapes that differ or hold no item, or a level outside (0, 1).
    """
    a, b = np.atleast_2d(np.asarray(a, dtype=np.float64)), np.atleast_2d(np.asarray(b, dtype=np.float64))
    if a.shape != b.shape or a.ndim != 2 or a.shape[1] == 0:
        raise ValueError(f"paired_difference: two score arrays of one shape (seeds, items), got {a.shape} and {b.shape}")
    if not 0 < level < 1:
        raise ValueError(f"paired_difference: level must be in (0, 1), got {level}")
    per_item = (a - b).mean(0)  # (N,): each item's difference, averaged over seeds
    rng = np.random.default_rng(seed)
    means = np.array([per_item[rng.integers(0, len(per_item), len(per_item))].mean() for _ in range(draws)])
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return PairedDifference(float(per_item.mean()), float(low), float(high), level, int(np.sum(a > b)), int(np.sum(b > a)), a.size)

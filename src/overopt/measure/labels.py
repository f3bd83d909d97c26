"""Preference pairs: two pi0 samples per prompt, labelled by the gold reward.

Labels are deterministic (the higher gold wins, as in Gao et al.); ``flip_labels`` adds
label-flip noise (Coste et al. 2023). Pairs are stored in a fixed random order, so the first
k pairs of a run are a nested subset of the first k' > k: the data-size sweep uses prefixes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Pairs:
    prompt_idx: np.ndarray  # [n]
    chosen: np.ndarray      # [n, T] response ids, right-padded
    rejected: np.ndarray    # [n, T]
    gold_chosen: np.ndarray  # [n] gold (normalised) of the chosen response
    gold_rejected: np.ndarray
    flipped: np.ndarray     # [n] bool: the label was flipped by noise (chosen has the lower gold)

    def __len__(self) -> int:
        return len(self.prompt_idx)

    def subset(self, idx) -> "Pairs":
        return Pairs(*(getattr(self, f)[idx] for f in self.__dataclass_fields__))

    def head(self, n: int) -> "Pairs":
        return self.subset(slice(0, n))


def label_pairs(prompt_idx: np.ndarray, a: np.ndarray, b: np.ndarray, gold_a: np.ndarray,
                gold_b: np.ndarray, noise: float, rng: np.random.Generator) -> Pairs:
    """Order each pair by gold (ties keep a first), then flip each label with probability ``noise``."""
    a_wins = gold_a >= gold_b
    flipped = rng.random(len(a)) < noise
    first = a_wins ^ flipped
    chosen = np.where(first[:, None], a, b)
    rejected = np.where(first[:, None], b, a)
    return Pairs(prompt_idx, chosen, rejected, np.where(first, gold_a, gold_b),
                 np.where(first, gold_b, gold_a), flipped)

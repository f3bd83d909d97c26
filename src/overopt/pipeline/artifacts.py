"""The typed artifacts every study receives: what the core of a run builds once (world, pi0, labelled pairs,
the proxy family with its calibration, the best-of-n pool, its scores and its gold). Frozen: a study reads them and
never changes them; what it builds of its own it returns in its `studies.base.Output`."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from ..measure.labels import Pairs
from ..models.reward import Proxy
from ..world.base import World


@dataclass(frozen=True)
class PairsData:
    """Two pi0 samples for each of rm.n_train + rm.n_val prompts, with gold (raw) of each side. Gold is normalised
    to mean 0 and unit standard deviation over these samples (Gao et al. 2022, sec. 2.2): ``gold_norm``."""
    prompt_idx: np.ndarray
    a: np.ndarray
    b: np.ndarray
    gold_raw_a: np.ndarray
    gold_raw_b: np.ndarray
    gold_mean: float
    gold_std: float

    @property
    def gold_norm(self) -> tuple[float, float]:
        return self.gold_mean, self.gold_std


@dataclass(frozen=True)
class Labelled:
    """The pairs labelled by gold (`pipeline.build.labelled_pairs`): the rm.n_train training pairs at a label-flip
    rate, the validation pairs with gold's own labels, and pi0's responses to centre a proxy on (prompts, responses:
    the validation pairs' two sides). Unpacks as (train, val, center)."""
    train: Pairs
    val: Pairs
    center: tuple[torch.Tensor, torch.Tensor]
    noise: float            # the training labels' flip rate

    def __iter__(self):
        return iter((self.train, self.val, self.center))


@dataclass(frozen=True)
class PoolGold:
    """Gold of every pool sample: normalised (``gold``) and each raw dimension of the world's (``dims``, with
    "n_words")."""
    gold: np.ndarray
    dims: dict[str, np.ndarray]


@dataclass(frozen=True)
class Pool:
    """N pi0 samples (temperature 1, no truncation) for each held-out prompt, prompt-major, with log pi0(y)."""
    prompt_idx: np.ndarray
    tokens: np.ndarray
    logprob: np.ndarray
    key: str  # its cache key: scores of the pool are cached under (proxy key, pool key)


@dataclass(frozen=True)
class Artifacts:
    """What every study may read."""
    world: World
    pi0: torch.nn.Module = field(repr=False)
    pairs: PairsData = field(repr=False)
    labelled: Labelled = field(repr=False)  # the pairs at rm.label_noise (`pipeline.build.labelled_at` for another)
    proxies: tuple[Proxy, ...]              # the family (rm.sizes at rm.n_train), then the data-size sweep; calibrated
    calibration: tuple[pd.DataFrame, pd.DataFrame] = field(repr=False)  # the proxies' calibration and reliability rows
    pool: Pool = field(repr=False)
    scores: dict[str, np.ndarray] = field(repr=False)  # {proxy name: its score of every pool sample}
    pool_gold: PoolGold = field(repr=False)

    @property
    def gold_norm(self) -> tuple[float, float]:
        return self.pairs.gold_norm

    @property
    def family(self) -> list[Proxy]:
        """The proxies of the family (rm.sizes at rm.n_train), smallest first as configured."""
        n = self.proxies[0].n_train  # the family comes first; the data-size sweep trains on fewer pairs
        return [p for p in self.proxies if p.n_train == n]

    def proxy(self, name: str) -> Proxy:
        return next(p for p in self.proxies if p.name == name)

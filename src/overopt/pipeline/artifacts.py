"""The typed artifacts every study receives: what the core of a run builds once (world, pi0, labelled pairs,
the proxy family with its calibration, the best-of-n pool and its scores). Frozen: a study reads them and never
changes them; what it builds of its own it returns in its `studies.base.Output`."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..models.reward import Proxy
from ..world.base import World


@dataclass(frozen=True)
class PairsData:
    """Two pi0 samples for each of rm.n_train + rm.n_val prompts, with gold (raw) of each side. Gold is normalised
    to mean 0 and unit standard deviation over these samples (DESIGN.md): ``gold_norm``."""
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
    pi0: object = field(repr=False)
    pairs: PairsData = field(repr=False)
    proxies: tuple[Proxy, ...]            # the family (rm.sizes at rm.n_train), then the data-size sweep; calibrated
    calibration: tuple[pd.DataFrame, pd.DataFrame] = field(repr=False)  # the proxies' calibration and reliability rows
    pool: Pool = field(repr=False)
    scores: dict = field(repr=False)      # {proxy name: its score of every pool sample}
    pool_gold: tuple = field(repr=False)  # (normalised gold, {dimension: raw value}) of every pool sample

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

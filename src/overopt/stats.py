"""Shared statistics, torch-free: the bootstrap over prompts and its interval, a tie-aware accuracy, least
squares. Every table's interval, every accuracy and every slope in overopt comes from here."""
from __future__ import annotations

import numpy as np


def bootstrap_rows(per_prompt: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """[n_boot, ...]: means over prompts resampled with replacement (the same draws for every column)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(len(per_prompt), size=(n_boot, len(per_prompt)))
    return per_prompt[idx].mean(1)


def interval(replicates, ci: float, axis: int | None = 0) -> tuple:
    """The central ``ci`` interval (percentile bootstrap) of ``replicates`` along ``axis``: (lo, hi)."""
    q = [(1 - ci) / 2 * 100, (1 + ci) / 2 * 100]
    return np.percentile(replicates, q[0], axis=axis), np.percentile(replicates, q[1], axis=axis)


def tie_accuracy(a, b, axis: int | None = None, dtype=np.float64):
    """P(a > b) with ties counted half: the accuracy of a reward model on pairs (a chosen, b rejected), or a win
    rate of a over b. ``dtype`` is the precision of the result."""
    a, b = np.asarray(a), np.asarray(b)
    acc = np.mean(a > b, axis=axis) + 0.5 * np.mean(a == b, axis=axis)
    return np.asarray(acc).astype(dtype)  # computed in float64, then rounded once


def ols_slope(x, y) -> float:
    """Least-squares slope of y on x."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    x = x - x.mean()
    return float((x * (y - y.mean())).sum() / max((x * x).sum(), 1e-12))


def r2_linear(x, y) -> float:
    """R^2 of the least-squares line of y on x (the squared correlation); 0 when either is constant."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.std() == 0 or y.std() == 0:
        return 0.0
    return float(np.corrcoef(x, y)[0, 1] ** 2)

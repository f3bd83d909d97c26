"""Choosing n for best-of-n from a few judged prompts: the n where gold peaks, paid for with a small label budget.

    choice = choose_n(proxy_scores, judge, top=6, rest=4, rng=rng)   # proxy_scores [m prompts, N samples]
    choice.n, choice.n_lo, choice.n_hi, choice.labels, choice.fit

For each of m calibration prompts the proxy scores N samples of pi0 (free); the judge (gold in the toy world, a
trusted labeller in practice) labels the proxy's ``top`` best of them and ``rest`` drawn uniformly from the others.
`judged_bon` turns those labels into an unbiased estimate of each prompt's gold of the proxy-best of n for every
n of the grid; the best-of-n form of Gao et al. is fitted to their mean against the KL bound, and n is taken at the
fitted peak, with an interval from refitting prompt bootstrap replicates. A fit with no peak (gold still rising at
N) takes N, the most the pool can show.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..laws import FitResult, fit
from ..measure.bon import bon_weights, default_ns, kl_bound
from ..stats import bootstrap_rows


def judged_bon(proxy: np.ndarray, judge: Callable[[int, np.ndarray], np.ndarray], ns, top: int, rest: int,
               rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """([m, len(ns)] estimates of E[gold of the proxy-best of n] per prompt, labels spent).

    E_n = sum_i w_n(i) g_(i) over the pool sorted by proxy, w_n(i) = C(i-1, n-1) / C(N, n) (`bon_weights`, Nakano
    et al. 2021). The ``top`` highest ranks are labelled and enter exactly; the sum over the other N - top ranks is
    estimated from ``rest`` of them drawn uniformly without replacement, scaled by (N - top) / rest (Horvitz and
    Thompson 1952), so the estimate is unbiased for every n. ``judge(prompt, sample indices)`` returns the labels."""
    proxy = np.asarray(proxy, dtype=np.float64)
    m, N = proxy.shape
    top, rest = min(top, N), min(rest, N - min(top, N))
    if top + rest < 1:
        raise ValueError("choose_n needs at least one label per prompt (top + rest >= 1)")
    W = bon_weights(N, ns)
    order = np.argsort(proxy, axis=1, kind="stable")
    est = np.zeros((m, W.shape[0]))
    for p in range(m):
        ranks = np.arange(N - top, N)
        est[p] = W[:, ranks] @ np.asarray(judge(p, order[p, ranks]), dtype=np.float64)
        if rest:
            drawn = rng.choice(N - top, size=rest, replace=False)
            est[p] += (N - top) / rest * (W[:, drawn] @ np.asarray(judge(p, order[p, drawn]), dtype=np.float64))
    return est, m * (top + rest)


@dataclass
class Choice:
    n: int            # the n of the grid nearest the fitted peak (in sqrt KL), N without a peak
    n_lo: int         # the interval's ends, from the peak's bootstrap interval
    n_hi: int
    labels: int       # judge labels spent
    fit: FitResult    # the best-of-n form fitted to the judged gains
    ns: np.ndarray    # the grid
    gains: np.ndarray  # the judged gain at each n of the grid (mean over prompts)


def _n_at(kl: float, ns: np.ndarray) -> int:
    """The n of the grid whose KL bound is nearest ``kl`` in sqrt(KL); the largest beyond the grid."""
    if not math.isfinite(kl):
        return int(ns[-1])
    d = np.sqrt(kl_bound(ns))
    return int(ns[int(np.argmin(np.abs(d - math.sqrt(max(kl, 0.0)))))])


def choose_n(proxy: np.ndarray, judge: Callable[[int, np.ndarray], np.ndarray], top: int = 6, rest: int = 4,
             rng: np.random.Generator | None = None, ns=None, n_boot: int = 200, ci: float = 0.9) -> Choice:
    """n for best-of-n at the fitted gold peak of the judged calibration prompts (module docstring)."""
    rng = rng if rng is not None else np.random.default_rng(0)
    N = np.asarray(proxy).shape[1]
    ns = np.asarray(default_ns(N) if ns is None else ns)
    if ns[0] != 1:
        raise ValueError("the grid of n must start at 1 (pi0 itself: the baseline of the gains)")
    est, labels = judged_bon(proxy, judge, ns, top, rest, rng)
    gains = est - est[:, :1]
    kl = kl_bound(ns)
    boots = bootstrap_rows(gains, n_boot, int(rng.integers(2 ** 31)))
    r = fit(kl, gains.mean(0), "bon", boot_gains=boots, ci=ci)
    return Choice(_n_at(r.kl_peak, ns), _n_at(r.kl_peak_lo, ns), _n_at(r.kl_peak_hi, ns), labels, r, ns,
                  gains.mean(0))

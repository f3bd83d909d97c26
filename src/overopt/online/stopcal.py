"""Where the stop rule's boundary comes from: the rule's statistic on simulated logs with no fall, all at once.

    python -m overopt.online.stopcal            # the tables of `stoprule.KAPPA`, about 2 minutes on 2 cores

`statistic(Y, mode)` computes, for every simulated log (a row of ``Y``) and every look n, the statistic
`stoprule.DropRule` computes one point at a time: the largest standardized fall of a block below a later window.
The boundary is kappa + beta log(n / block); kappa is the (1 - SHARE alpha) quantile of max_n (Z_n - beta log(n /
block)) over flat Gaussian logs of ``horizon`` points, so that a flat log crosses it anywhere with probability
SHARE alpha: a tenth of alpha is kept back for the simulation's own error and noise a little heavier than Gaussian
(binomial accuracies of 100 labels read 0.051 at alpha 0.05 without it). A log
whose mean never falls (flat, rising, rising then flat) crosses it less often: the statistic only shrinks as the
later points' means rise, and a curvature within blocks only inflates the noise estimate. The growth term keeps the
crossing probability from growing with the log's length (docs/STOPPING.md gives kappa at several lengths), so one
table holds for any length. The statistic is scale-free, so one table serves every noise level.

Two modes, by what is known of a point's noise:
  ESTIMATED  a logged score alone: blocks of 5, the noise sd pooled from the spread about a line within each block
             (`within_ss`), looks from 20 points on (12 degrees of freedom);
  KNOWN      each point with its own standard error (an evaluation's mean over many responses, a judged checkpoint's
             label mean): every point is a candidate (blocks of 1), looks from 3 points on.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Mode:
    name: str
    block: int          # points per block (a candidate peak)
    windows: tuple      # besides every point after a block: the last L points, for L here
    min_points: int     # no look before this many points
    beta: float         # the boundary's growth per unit of log(n / block)
    horizon: int        # points per simulated log


ESTIMATED = Mode("estimated", 5, (5, 10), 20, 0.6, 1000)
KNOWN = Mode("known", 1, (2, 3), 3, 0.7, 200)
ALPHAS = (0.01, 0.02, 0.05, 0.1, 0.2)
SHARE = 0.9  # the share of alpha the boundary is calibrated to on flat Gaussian logs


def within_ss(blocks: np.ndarray) -> np.ndarray:
    """[..., blocks]: each block's residual sum of squares about a line fitted within it (b - 2 degrees of freedom;
    neither a trend across blocks nor a steady one within a block is counted as noise)."""
    x = np.arange(blocks.shape[-1]) - (blocks.shape[-1] - 1) / 2
    dev = blocks - blocks.mean(-1, keepdims=True)
    return (dev ** 2).sum(-1) - (dev @ x) ** 2 / (x @ x)


def statistic(Y: np.ndarray, mode: Mode = ESTIMATED, sd: np.ndarray | None = None) -> np.ndarray:
    """[logs, points + 1]: at look n (column n, after n points; -inf before the mode's first look) the largest, over
    every complete block before the last point and every window after it (all its later points; the last L), of
    (block mean - window mean) / its standard error. ESTIMATED: the error from the pooled within-block sd of the
    complete blocks; KNOWN: from ``sd``, each point's own (1 where not given)."""
    P, N = Y.shape
    b = mode.block
    cum = np.concatenate([np.zeros((P, 1)), Y.cumsum(1)], 1)
    var = np.ones((P, N)) if sd is None else np.broadcast_to(np.asarray(sd, dtype=float) ** 2, (P, N))
    cvar = np.concatenate([np.zeros((P, 1)), var.cumsum(1)], 1)  # the KNOWN mode's variances, summed
    K = N // b
    blocks = Y[:, :K * b].reshape(P, K, b)
    means = blocks.mean(2)
    within = within_ss(blocks).cumsum(1) if mode.name == "estimated" else None
    ends = (np.arange(K) + 1) * b
    out = np.full((P, N + 1), -np.inf)
    for n in range(mode.min_points, N + 1):
        before = ends < n
        e, m = ends[before], n - ends[before]
        if mode.name == "estimated":
            nb = n // b
            s2 = (within[:, nb - 1] / (nb * (b - 2)))[:, None]
            err = lambda w: np.sqrt(s2 * (1 / b + 1 / w))  # noqa: E731
            v_block = None
        else:
            v_block = (cvar[:, e] - cvar[:, e - b]) / b ** 2
            err = None
        post = (cum[:, [n]] - cum[:, e]) / m
        se = err(m) if err else np.sqrt(v_block + (cvar[:, [n]] - cvar[:, e]) / m ** 2)
        best = ((means[:, before] - post) / se).max(1)
        for L in mode.windows:
            ok = e <= n - L
            if ok.any():
                last = (cum[:, n] - cum[:, n - L])[:, None] / L
                se = err(L) if err else np.sqrt(v_block[:, ok] + (cvar[:, [n]] - cvar[:, [n - L]]) / L ** 2)
                best = np.maximum(best, ((means[:, before][:, ok] - last) / se).max(1))
        out[:, n] = best
    return out


def excess(Y: np.ndarray, mode: Mode = ESTIMATED) -> np.ndarray:
    """Each log's largest Z_n - beta log(n / block) over its looks: it crosses kappa + beta log(n / block)
    somewhere exactly when this exceeds kappa."""
    Z = statistic(Y, mode)
    n = np.arange(Z.shape[1])
    return (Z - mode.beta * np.log(np.maximum(n, 1) / mode.block)).max(1)


def kappa(mode: Mode = ESTIMATED, alphas=ALPHAS, horizon: int | None = None, logs: int = 20_000, seed: int = 0,
          chunk: int = 2_000) -> dict:
    """{alpha: kappa} from ``logs`` flat standard Gaussian logs of ``horizon`` points (in chunks, to bound memory)."""
    rng, h = np.random.default_rng(seed), horizon or mode.horizon
    ex = np.concatenate([excess(rng.standard_normal((min(chunk, logs - i), h)), mode) for i in range(0, logs, chunk)])
    return {a: float(np.quantile(ex, 1 - SHARE * a)) for a in alphas}


if __name__ == "__main__":
    for mode in (ESTIMATED, KNOWN):
        for h in (mode.horizon // 5, mode.horizon):
            print(f"{mode.name}, horizon {h}:", {a: round(k, 3) for a, k in kappa(mode, horizon=h).items()},
                  flush=True)

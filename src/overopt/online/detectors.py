"""Gold-free signals that gold is past its peak, scored honestly: as detectors (ROC AUC over every evaluation of
every curve) and as stop rules whose threshold is chosen on other curves than the one scored.

Each signal is a number per evaluation that a trainer can compute without any trusted label:
  kl            the KL itself: the baseline a detector must beat (gold peaks at some KL, so any signal that grows
                with training detects "past the peak" about as well as the KL does)
  kl_rate       KL gained per step since the previous evaluation
  proxy_slope   proxy gained per unit of sqrt(KL) since the previous evaluation (Gao et al.'s forms are in sqrt(KL))
  entropy       the policy's mean per-token entropy on its responses (what TRL logs as entropy)
  mahalanobis   the mean squared Mahalanobis distance, over the responses, of the proxy's final hidden state from the
                distribution of pi0's responses' states, per dimension (1 for responses like pi0's): the outlier
                test of InfoRM (Miao et al. 2024) applied to any proxy, with no special training
  outliers      the share of responses beyond the chi-square 99% quantile of that distance
  size_spread   the proxies of the other sizes on the same responses, each in units of its spread on pi0's: their
                standard deviation per response, averaged (an ensemble diverse by construction)
  disjoint_spread  the same spread among proxies of the curve's size trained on disjoint slices of the pairs
  disagreement  (with the monitor study) the same-data members' spread, as the monitor sees it

    auc = roc_auc(signal, past_peak)
    rule = leave_one_out(curves)   # {curve: (threshold from the other curves, stop index)}
    rule = leave_one_out(curves, groups={curve: seed})   # thresholds from the other seeds' curves
"""
from __future__ import annotations

import numpy as np
from scipy import stats as scipy_stats

from ..stats import tie_accuracy


def mahalanobis(reference: np.ndarray, x: np.ndarray, ridge: float = 1e-3) -> np.ndarray:
    """Squared Mahalanobis distance of each row of ``x`` [n, C] from the mean and covariance of ``reference``
    [m, C] (Mahalanobis 1936); the covariance gets ``ridge`` times its mean variance on the diagonal, so a
    direction pi0 never moves in does not divide by zero."""
    ref = np.asarray(reference, dtype=np.float64)
    mu = ref.mean(0)
    cov = np.cov(ref, rowvar=False)
    cov = cov + ridge * np.trace(cov) / len(cov) * np.eye(len(cov))
    diff = np.asarray(x, dtype=np.float64) - mu
    return np.einsum("ij,ij->i", diff, np.linalg.solve(cov, diff.T).T)


def outlier_share(d2: np.ndarray, dims: int, q: float = 0.99) -> float:
    """The share of squared distances beyond the chi-square(dims) ``q`` quantile."""
    return float(np.mean(d2 > scipy_stats.chi2.ppf(q, dims)))


def roc_auc(signal, past_peak) -> float:
    """P(signal at a point past the peak > signal at a point before it), ties half (the Mann-Whitney form of the
    ROC AUC); NaN points are left out, and NaN without both kinds of point."""
    s, y = np.asarray(signal, dtype=float), np.asarray(past_peak, dtype=bool)
    ok = np.isfinite(s)
    pos, neg = s[ok & y], s[ok & ~y]
    if not len(pos) or not len(neg):
        return float("nan")
    return float(tie_accuracy(pos[:, None], neg[None, :]))


def first_at_or_above(signal: np.ndarray, threshold: float, start: int = 1) -> int:
    """The first evaluation from ``start`` whose signal reaches ``threshold``; the last if none does."""
    hit = np.flatnonzero(np.nan_to_num(np.asarray(signal, dtype=float)[start:], nan=-np.inf) >= threshold)
    return int(hit[0]) + start if len(hit) else len(signal) - 1


def regret(gold: np.ndarray, i: int) -> float:
    """(gold peak - gold at i) / gold peak; NaN where gold never rose."""
    peak = float(np.max(gold))
    return (peak - float(gold[i])) / peak if peak > 0 else float("nan")


def stopped_early(gold: np.ndarray, i: int) -> bool:
    """Whether stopping at i came before gold's peak with less than half of the peak gain."""
    peak = int(np.argmax(gold))
    return bool(i < peak and gold[i] < 0.5 * gold[peak])


def leave_one_out(curves: dict, groups: dict | None = None) -> dict:
    """For each curve ({name: (signal, gold) per evaluation}), the threshold that gives the other curves the lowest
    median regret when each stops at its first evaluation with the signal at or above it (candidates: every value
    the other curves' signals take), and where that threshold stops this curve: no tuning on the curve scored.
    With ``groups`` ({name: group}, e.g. the run's seed) the threshold comes from the other groups' curves only."""
    out = {}
    for name, (signal, gold) in curves.items():
        held = (lambda k: groups[k] == groups[name]) if groups else (lambda k: k == name)  # noqa: E731
        others = {k: v for k, v in curves.items() if not held(k)}
        cands = np.unique(np.concatenate([s[np.isfinite(s)] for s, _ in others.values()] or [np.array([np.inf])]))
        best, best_cost = np.inf, np.inf
        for t in cands:
            cost = np.nanmedian([regret(g, first_at_or_above(s, t)) for s, g in others.values()])
            if cost < best_cost:
                best, best_cost = float(t), cost
        out[name] = (best, first_at_or_above(signal, best))
    return out

"""Verdicts on a trainer's curve that know their uncertainty: `overopt fit --forecast` and the monitor's fitted peak.

    lf = fit_log(step, kl, reward, "rl")   # binned by step, free baseline, bootstrap within bins
    v = judge(lf)                          # v.state: before | near | past | inconclusive; v.reason in words

A trainer logs one noisy batch per step. Every step is fitted (Gao et al.'s forms plus a free baseline: the
reward at KL 0 is estimated with the rest, never taken from the first batch); the curve is cut into at most
``bins`` runs of consecutive steps, and the bootstrap resamples each step's residual from the fit within its run,
so the intervals widen with the noise of the steps (and the trend inside a run is not counted as noise); with runs
of one step, residuals are resampled across the curve. R^2 is that of the binned curve: the runs' mean rewards
against the fit's means over the same steps (a per-step R^2 only measures the batch noise).

A verdict is given only when the evidence supports it (thresholds below, each a module constant):
  inconclusive  fewer than MIN_BINS points; KL not growing (Spearman of KL on step < KL_GROWTH); the fit explains
                less than R2_MIN of the binned curve; no turn yet (beta's interval reaches 0, or the peak's interval
                is unbounded); a peak beyond NEAR x the largest KL seen
  past          the latest KL is past the upper end of the peak's interval, at least MIN_PAST points lie beyond
                it, and their mean reward is below the mean of the points inside the interval (else of the point
                nearest the peak) by more than Z standard errors
  near          the latest KL is inside the peak's interval (or past it without that evidence of a fall)
  before        the latest KL is below the peak's interval: the forecast is the peak and its interval
A peak whose estimate lies outside its own bootstrap interval (a form that fits the range poorly) supports a
stop on the evidence of the fall alone, never "near" or a forecast.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import stats as scipy_stats

from ..laws import FitResult, fit, leverage
from .stoprule import ALPHA, DropRule

MAX_BINS = 20       # the curve is fitted on at most this many runs of consecutive steps
FINE = 2000        # a longer log is first averaged into this many runs of consecutive steps
MIN_BINS = 5        # fewer points than this: no verdict
KL_GROWTH = 0.5     # Spearman of KL on step below this: KL is not growing, the law does not apply
R2_MIN = 0.6        # a fit explaining less of the binned curve is no basis for a verdict
NEAR = 2.0          # a forecast peak beyond NEAR x the largest KL seen is an extrapolation, not a forecast
MIN_PAST = 2        # points beyond the peak's interval before a stop
Z = 1.645           # one-sided 95%: the fall after the peak must exceed this many standard errors
FAR_START = 0.25    # first KL above this share of the largest: the log does not start at the reference policy


@dataclass
class LogFit:
    fit: FitResult
    kl: np.ndarray          # per bin: mean KL
    reward: np.ndarray      # per bin: mean reward (less the first bin's with baseline "first"), as fitted
    se: np.ndarray          # per bin: standard error of the mean reward (the steps' residual sd / sqrt(steps))
    kl_now: float           # the latest bin's KL (the latest, not the largest)
    n_steps: int            # logged points before binning
    warnings: list[str] = field(default_factory=list)


@dataclass
class Verdict:
    state: str              # before | near | past | inconclusive
    reason: str

    @property
    def stop(self) -> bool:
        return self.state == "past"

    def text(self) -> str:
        label = {"past": "past the peak: stop", "near": "near the peak", "before": "before the peak",
                 "inconclusive": "inconclusive"}[self.state]
        return f"{label} ({self.reason})" if self.reason else label


def bin_runs(n: int, bins: int = MAX_BINS) -> list[np.ndarray]:
    """Indices 0..n-1 (in step order) cut into min(bins, n) runs of consecutive points, sizes within one."""
    return [a for a in np.array_split(np.arange(n), min(bins, n)) if len(a)]


def kl_warnings(step, kl) -> list[str]:
    """What makes the laws inapplicable to a log: KL that does not grow, or that starts far from 0 (the KL is
    then not measured from the policy training started at, which the forms assume)."""
    step, kl = np.asarray(step, float), np.asarray(kl, float)
    out = []
    if not np.isfinite(kl).all():
        return out
    if len(kl) >= 3 and (np.ptp(kl) == 0 or scipy_stats.spearmanr(step, kl)[0] < KL_GROWTH):
        out.append(f"KL does not grow with the steps (from {kl[0]:.3g} to {kl[-1]:.3g}): the laws are functions of "
                   "the KL from the starting policy")
    if len(kl) >= 3 and kl.max() > 0 and kl[0] > FAR_START * kl.max():
        out.append(f"the first KL ({kl[0]:.3g}) is far from 0: the laws assume KL measured from the policy training "
                   "started at")
    return out


def thin(*arrays) -> tuple[np.ndarray, ...]:
    """Arrays along a log in step order, averaged into FINE runs of consecutive steps where longer (a 400,000-line
    log's fit, bootstrap and stop rule then cost what a 2,000-line one does; each run spans 1/2,000 of the log)."""
    n = len(arrays[0])
    if n <= FINE:
        return tuple(np.asarray(a, dtype=float) for a in arrays)
    starts = np.array([r[0] for r in bin_runs(n, FINE)])
    size = np.diff(np.append(starts, n))
    return tuple(np.add.reduceat(np.asarray(a, dtype=float), starts) / size for a in arrays)


def residual_draws(resid, lev, n_boot: int, ci: float, dof: int, seed: int = 0) -> np.ndarray:
    """[n_boot, n] residuals for a residual bootstrap of a least-squares curve that is valid from a handful of points
    up (Davison & Hinkley 1997, Sec. 6.2.3): each residual scaled by 1 / sqrt(1 - h) (its leverage h: the fit shrinks
    residuals), centred, drawn with replacement across the curve, and widened by t_dof / z at the interval's level
    (a percentile interval from few points is too narrow otherwise). Measured 90% coverage on rl curves of 8-100
    points with constant noise: 0.89-0.92 (alpha, beta) and 0.86-0.91 (the peak KL); with noise growing 5x along the
    curve 0.83-0.87 for the peak KL."""
    q = 0.5 + ci / 2
    adj = np.asarray(resid) / np.sqrt(np.clip(1 - np.asarray(lev), 1e-3, None))
    adj = (adj - adj.mean()) * scipy_stats.t.ppf(q, dof) / scipy_stats.norm.ppf(q)
    return adj[np.random.default_rng(seed).integers(0, len(adj), size=(n_boot, len(adj)))]


def fit_log(step, kl, reward, form: str = "rl", baseline: str = "fit", bins: int = MAX_BINS, n_boot: int = 200,
            ci: float = 0.9, seed: int = 0) -> LogFit:
    """Fit ``form`` to a logged curve, binned by step. ``baseline``: "fit" (a free intercept) or "first" (gains
    over the first bin, which must be at KL 0: an exact evaluation of the starting policy, as overopt's tables)."""
    step, kl, reward = (np.asarray(a, dtype=float) for a in (step, kl, reward))
    order = np.argsort(step, kind="stable")
    n_steps = len(step)
    step, kl, reward = thin(step[order], kl[order], reward[order])
    runs = bin_runs(len(step), bins)
    kb = np.array([kl[r].mean() for r in runs])
    first = baseline == "first" and len(kb) and kb[0] == 0
    y = reward - reward[runs[0]].mean() if first else reward
    res = fit(kl, y, form, n_boot=0, intercept=not first)  # every step, so no bin averages a curved stretch
    fitted = res.baseline + res.predict(kl)
    resid = y - fitted
    dof = max(len(resid) - 3, 1)
    sigma = math.sqrt((resid ** 2).sum() / dof)
    boot = None
    if n_boot > 0:
        boot = fitted + residual_draws(resid, leverage(form, kl, not first), n_boot, ci, dof, seed)
        if first:
            boot = boot - boot[:, runs[0]].mean(1, keepdims=True)
    if n_boot > 0:
        res = fit(kl, y, form, boot_gains=boot, n_boot=n_boot, ci=ci, seed=seed, intercept=not first)
    yb = np.array([y[r].mean() for r in runs])
    fb = np.array([fitted[r].mean() for r in runs])
    ss = ((yb - yb.mean()) ** 2).sum()
    res = replace(res, r2=float(1 - ((yb - fb) ** 2).sum() / ss) if ss > 0 else math.nan)  # R^2 of the binned curve
    said = kl_warnings(np.arange(len(kb)), kb)  # the bins' KL: the numbers the table's KL now is one of
    if baseline == "first" and not first:
        said.append("--baseline first needs a first point at KL 0 (an exact evaluation of the starting policy); the "
                    "baseline was fitted instead")
    return LogFit(res, kb, yb, np.array([sigma / math.sqrt(len(r)) for r in runs]),
                  float(kb[-1]) if len(kb) else 0.0, n_steps, said)


def judge(lf: LogFit) -> Verdict:
    """The verdict on a fitted log, or "inconclusive" with the reason (the module docstring lists the rules)."""
    r, kb = lf.fit, lf.kl
    if len(kb) < MIN_BINS:
        return Verdict("inconclusive", f"only {len(kb)} points (a verdict needs {MIN_BINS})")
    rho = scipy_stats.spearmanr(np.arange(len(kb)), kb)[0] if np.ptp(kb) > 0 else 0.0
    if rho < KL_GROWTH:
        return Verdict("inconclusive", f"KL is not growing (Spearman {rho:.2f} with the steps, a verdict needs "
                                       f"{KL_GROWTH:g}; --until-kl fits the part where it grew)")
    if not r.r2 >= R2_MIN:
        return Verdict("inconclusive", f"too noisy: the fit explains R^2 = {r.r2:.2f} of the binned curve "
                                       f"(a verdict needs {R2_MIN})")
    if not (r.beta_lo > 0 and math.isfinite(r.kl_peak) and math.isfinite(r.kl_peak_hi)):
        return Verdict("inconclusive", "no turn yet: the reward is still rising (no bounded peak to forecast)")
    kl_max = float(kb.max())
    if r.kl_peak > NEAR * kl_max:
        return Verdict("inconclusive", f"no turn yet: the fitted peak (KL {r.kl_peak:.3g}) lies beyond {NEAR:g}x "
                                       f"the largest KL seen ({kl_max:.3g})")
    peak = f"peak KL {r.kl_peak:.3g} [{r.kl_peak_lo:.3g}, {r.kl_peak_hi:.3g}]"
    placed = r.kl_peak_lo <= r.kl_peak <= r.kl_peak_hi  # else the form fits the range poorly: no location to trust
    if not placed:
        peak += " (its location is poorly determined: the estimate lies outside its interval)"
    if lf.kl_now > r.kl_peak_hi:
        past = kb > r.kl_peak_hi
        around = (kb >= r.kl_peak_lo) & ~past
        if not around.any():  # no point inside the interval: the one nearest the peak
            around = np.arange(len(kb)) == np.argmin(np.abs(np.sqrt(kb) - math.sqrt(r.kl_peak)))
        not_past = "near" if placed else "inconclusive"
        if past.sum() < MIN_PAST:
            return Verdict(not_past, f"{peak}; only {int(past.sum())} point(s) beyond it")
        fall = lf.reward[around].mean() - lf.reward[past].mean()
        se = math.sqrt(np.mean(lf.se[around] ** 2) / around.sum() + np.mean(lf.se[past] ** 2) / past.sum())
        if fall > Z * se:
            return Verdict("past", f"{peak}; the reward after it is {fall:.3g} below the reward around it "
                                   f"({fall / se:.1f} standard errors)")
        return Verdict(not_past, f"{peak}; the fall after it ({fall:.3g}) is within the noise ({se:.3g})")
    if not placed:
        return Verdict("inconclusive", f"{peak}; no forecast from it")
    if lf.kl_now >= r.kl_peak_lo:
        return Verdict("near", peak)
    return Verdict("before", peak)


def steps_text(steps) -> str:
    """Steps as runs: "100-140, 160" (consecutive logged steps merged)."""
    steps = [float(s) for s in steps]
    if not steps:
        return "none"
    out, start, prev = [], steps[0], steps[0]
    gap = np.median(np.diff(steps)) if len(steps) > 1 else 1.0
    for s in steps[1:] + [math.inf]:
        if s - prev > 1.5 * gap:
            out.append(f"{start:g}" if start == prev else f"{start:g}-{prev:g}")
            start = s
        prev = s
    return ", ".join(out)


@dataclass
class Fall:
    """The stop rule (`online.stoprule.DropRule`) run along a logged curve, one point at a time as a monitor would."""
    stopped: bool
    text: str                       # where it stopped and why, or how far it is from stopping, or why it cannot judge
    step: float | None = None       # the step of its first stop
    best_step: float | None = None  # the checkpoint to roll back to
    tied: list[float] = field(default_factory=list)  # steps not distinguishable from it


def fall_check(step, reward, alpha: float = ALPHA, what: str = "the reward") -> Fall:
    """Has ``reward`` fallen below its best so far beyond what noise reaches over the whole log? The rule's first
    stop (its chance on noise: at most ``alpha``), else its last look. A long log is `thin`ned first."""
    step, reward = thin(*(np.asarray(a, dtype=float)[np.argsort(step, kind="stable")] for a in (step, reward)))
    rule = DropRule(alpha)
    for i, y in enumerate(reward):
        d = rule.update(y)
        if d.stop:
            break
    span = lambda p: f"steps {step[p[0]]:g}-{step[p[1]]:g}"  # noqa: E731
    if d.block is None:
        return Fall(False, d.reason)
    where = f"{what} at {span(d.window)} is {d.fall:.3g} below {span(d.block)} ({d.z:.1f} standard errors"
    best = float(step[d.best])
    if not d.stop:
        return Fall(False, f"{where}, within the {d.bound:.1f} that noise reaches over the whole log at alpha "
                           f"{alpha:g})", None, best)
    tied = [float(step[j]) for j in d.tied]
    return Fall(True, f"{where}, beyond the {d.bound:.1f} that noise reaches over the whole log at alpha {alpha:g}; "
                      f"first at step {step[i]:g}); best checkpoint step {best:g} (not distinguishable from it: "
                      f"steps {steps_text(tied)})", float(step[i]), best, tied)


def forecast_verdict(lf: LogFit | None, fall: Fall) -> Verdict:
    """`overopt fit --forecast`'s verdict: "past" only on the stop rule's evidence (a stated false-stop rate),
    with the fitted peak beside it where there is a KL (``lf``); the law's own verdict otherwise, a law's "past"
    without the rule's stop read as "near"; without a KL no forecast, and why."""
    if lf is None:
        if fall.stopped:
            return Verdict("past", fall.text)
        return Verdict("inconclusive", "no KL logged, so no peak forecast (the laws are functions of the KL); "
                                       f"no fall yet: {fall.text}")
    law = judge(lf)
    if fall.stopped:
        return Verdict("past", fall.text + (f"; fitted: {law.reason}" if law.state != "inconclusive" else ""))
    if law.state == "past":
        return Verdict("near", f"{law.reason}; but no fall beyond the noise yet by the stop rule: {fall.text}")
    return law

"""Online overoptimization detection from what a trainer sees: the proxy reward, a KL where one is logged, and
optionally a reference score (gold, a held-out evaluation, a second reward model) and ensemble member scores.

    mon = Monitor()
    status = mon.update(step, kl, proxy, reference=None, members=None)   # kl may be None: judged on steps
    status.state      # "ok", "warn" or "stop"
    status.reasons    # one line per signal that fired
    status.best_step, status.tied   # the checkpoint to roll back to, and those not distinguishable from it

Signals (each a documented rule, all arguments of `Monitor`):
  reference-drop  the reference fell below its best so far: `online.stoprule.DropRule` on the reference points, whose
                  chance of stopping on noise over the whole run is at most its share of ``alpha`` (0.8 of it when
                  divergence is on, else all of it), with the noise from the points' own spread (or from
                  ``reference_se`` where each point has one); and the fall is at least ``drop`` of the best gain;
  divergence      the proxy rises while the reference does not keep up: the same rule on reference - ``ratio`` x
                  proxy (each in its own units), at 0.2 alpha: it falls when the reference gains less than ``ratio``
                  of what the proxy gains over a stretch of the run (a reference flat while the proxy climbs);
  fitted-peak     the reference's fitted curve in sqrt(KL) is past its peak (`online.verdict.judge`): a warning, with
                  no stated error rate, and only where a KL is logged;
  disagreement    the members' standard deviation rose more than ``disagreement_rise`` (relative) above its lowest
                  value while the proxy kept rising: warn; twice that: stop (a heuristic threshold, not a test).
Either stop rule fires ``patience`` looks in a row before "stop". A line without a reference keeps the
reference's last signals. Without a reference only disagreement can fire: `Monitor.summary` says so. Without a KL
the reference rules still judge (on the order of the steps); the laws, and so the fitted peak, need a KL.

`online.callback.OveroptCallback` runs a monitor inside a `transformers.Trainer` (TRL's trainers included).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..config import MonitorConfig
from ..laws import FitError
from .stoprule import ALPHA, DropRule
from .verdict import fit_log, judge, steps_text

STATES = ("ok", "warn", "stop")
REFIT_GROWTH = 1.05  # the fitted peak is judged again once the reference points grew by 5% (or by one, early on)
SIGNALS = ("reference-drop", "divergence", "fitted-peak", "disagreement")
DIVERGENCE_SHARE = 0.2  # the share of alpha divergence spends when it is on; the drop rule spends the rest
_DEFAULT = MonitorConfig()  # the thresholds' defaults live in the config (monitor.*), one place for every caller


@dataclass
class Status:
    state: str
    reasons: list[str] = field(default_factory=list)
    step: float = 0.0
    kl: float = math.nan
    signals: list[str] = field(default_factory=list)  # which of SIGNALS fired, in the order of ``reasons``
    best_step: float | None = None  # the checkpoint to roll back to: the reference's best block so far
    tied: list[float] = field(default_factory=list)  # steps the reference cannot tell from the best at alpha


class Monitor:
    def __init__(self, form: str = "rl", alpha: float = ALPHA, min_points: int = _DEFAULT.min_points,
                 drop: float = _DEFAULT.drop, patience: int = _DEFAULT.patience, ratio: float = _DEFAULT.ratio,
                 disagreement_rise: float = _DEFAULT.disagreement_rise, n_boot: int = 100, ci: float = 0.9,
                 signals=SIGNALS):
        for ok, rule, value in ((min_points >= 3, "min_points >= 3", min_points), (patience >= 1, "patience >= 1",
                                patience), (0 <= drop < 1, "0 <= drop < 1", drop), (ratio >= 0, "ratio >= 0", ratio),
                                (disagreement_rise > 0, "disagreement_rise > 0", disagreement_rise)):
            if not ok:
                raise ValueError(f"Monitor needs {rule}, got {value:g}")
        unknown = set(signals) - set(SIGNALS)
        if unknown or not signals:
            raise ValueError(f"Monitor signals must be a non-empty subset of {', '.join(SIGNALS)}; got {sorted(unknown)}")
        self.signals = tuple(signals)
        self.form, self.min_points, self.drop, self.patience, self.ratio = form, min_points, drop, patience, ratio
        self.rise, self.n_boot, self.ci = disagreement_rise, n_boot, ci
        diverging = "divergence" in self.signals and ratio > 0
        self.alpha_drop = alpha * (1 - DIVERGENCE_SHARE) if diverging else alpha
        self.alpha_div = alpha * DIVERGENCE_SHARE if diverging else 0.0
        DropRule(self.alpha_drop)  # refuses an alpha outside the calibrated range, now
        self._cols = {k: np.empty(64) for k in ("steps", "kl", "proxy", "reference", "disagreement")}
        self._n = 0  # points so far: each column is an array that doubles when full (no copy of the log per update)
        self._ref_at: list[int] = []  # the points that have a reference
        self._ref_vals: list[tuple[float, float]] = []  # (reference, proxy) at each of them
        self._drop: DropRule | None = None  # made at the first reference (its mode: with or without standard errors)
        self._div = DropRule(self.alpha_div) if diverging else None
        self._runs = {"reference-drop": 0, "divergence": 0}  # looks in a row each rule has said stop
        self._ref_fired: tuple[list, list] = ([], [])  # the reference's last signals (warn, stop)
        self._next_fit = 0
        self._dis_n, self._dis_low = 0, (math.inf, math.nan)  # finite disagreements; (lowest, proxy there)
        self._best: tuple[float | None, list] = (None, [])
        self.history: list[Status] = []

    def update(self, step: float, kl: float | None, proxy: float, reference: float | None = None,
               members=None, disagreement: float | None = None, reference_se: float | None = None) -> Status:
        """Add one point and return the status with every reason that fired. ``kl`` None (or NaN): the trainer logs
        none. ``members``: the ensemble members' scores at this point (their spread is the disagreement), or
        ``disagreement``: a spread the trainer measured itself. ``reference_se``: the reference's standard error at
        this point (an evaluation's over its responses); without it the noise is estimated from the points."""
        kl = math.nan if kl is None else float(kl)
        if not (math.isfinite(step) and math.isfinite(proxy)) or kl == math.inf:
            raise ValueError(f"step {step}: step and proxy must be finite numbers, and kl finite or absent")
        if disagreement is None and members is not None:
            m = np.asarray(members, dtype=float)
            disagreement = float(m.std()) if m.size > 1 else None
        self._append(steps=float(step), kl=max(kl, 0.0) if math.isfinite(kl) else math.nan, proxy=float(proxy),
                     reference=math.nan if reference is None else float(reference),
                     disagreement=math.nan if disagreement is None else float(disagreement))
        warn, stop = [], []   # (signal, message)
        if reference is not None and math.isfinite(reference):
            self._ref_fired = ([], [])
            self._reference_signals(float(reference), reference_se, *self._ref_fired)
        warn += self._ref_fired[0]
        stop += self._ref_fired[1]
        self._disagreement_signals(warn, stop)
        warn = [w for w in warn if w[0] in self.signals]
        stop = [w for w in stop if w[0] in self.signals]
        fired = stop + warn
        state = "stop" if stop else ("warn" if warn else "ok")
        status = Status(state, [m for _, m in fired], float(step), float(self.kl[-1]), [n for n, _ in fired],
                        *self._best)
        self.history.append(status)
        return status

    def _append(self, **values) -> None:
        if self._n == len(self._cols["kl"]):
            self._cols = {k: np.concatenate([v, np.empty(len(v))]) for k, v in self._cols.items()}
        for k, v in values.items():
            self._cols[k][self._n] = v
        self._n += 1

    steps = property(lambda self: self._cols["steps"][: self._n])
    kl = property(lambda self: self._cols["kl"][: self._n])
    proxy = property(lambda self: self._cols["proxy"][: self._n])
    reference = property(lambda self: self._cols["reference"][: self._n])  # NaN where an update had none
    disagreement = property(lambda self: self._cols["disagreement"][: self._n])

    def best_step(self) -> float | None:
        """The reference's best checkpoint so far (None without a reference): on "stop", the one to roll back to."""
        return self._best[0]

    def _span(self, pts: tuple[int, int]) -> str:
        at = self._ref_at
        return f"steps {self.steps[at[pts[0]]]:g}-{self.steps[at[pts[1]]]:g}"

    def _rule(self, name: str, rule: DropRule, d, fires: bool, warn: list, stop: list, what: str) -> None:
        """A stop rule's decision as a signal: stop after ``patience`` looks in a row, warn before that."""
        if not fires:
            self._runs[name] = 0
            return
        self._runs[name] += 1
        msg = f"{what} ({d.z:.1f} standard errors against the {d.bound:.1f} noise reaches over the whole run at " \
              f"alpha {rule.alpha:g})"
        (stop if self._runs[name] >= self.patience else warn).append((name, msg))

    def _reference_signals(self, r: float, se: float | None, warn: list, stop: list) -> None:
        self._ref_at.append(self._n - 1)  # each update costs O(1) here: no array of the whole log is built
        self._ref_vals.append((r, float(self.proxy[-1])))
        if self._drop is None:
            self._drop = DropRule(self.alpha_drop, known=se is not None)
        d = self._drop.update(r, se if self._drop.mode.name == "known" else None)
        at, steps = self._ref_at, self.steps
        self._best = (float(steps[at[d.best]]), [float(steps[at[i]]) for i in d.tied] if d.stop else [])
        mean = lambda p, k=0: float(np.mean([v[k] for v in self._ref_vals[p[0]:p[1] + 1]]))  # noqa: E731
        start = float(np.median([v[0] for v in self._ref_vals[:3]]))
        gain = mean(d.block) - start if d.block else math.nan
        large = not (gain > 0 and d.fall < self.drop * gain)  # a fall below `drop` of the best gain is not acted on
        self._rule("reference-drop", self._drop, d, d.stop and large, warn, stop,
                   f"reference fell: {self._span(d.window)} are {d.fall:.3g} below {self._span(d.block)}"
                   if d.block else "")
        if self._div is not None:
            c = self._div.update(r - self.ratio * self.proxy[-1])
            what = ""
            if c.stop:
                dp, dr = mean(c.window, 1) - mean(c.block, 1), mean(c.window) - mean(c.block)
                what = (f"divergence: from {self._span(c.block)} to {self._span(c.window)} the proxy rose {dp:.3g} and "
                        f"the reference changed by {dr:+.3g}, less than {self.ratio:g} of the proxy's rise")
            self._rule("divergence", self._div, c, c.stop, warn, stop, what)
        if "fitted-peak" in self.signals and len(at) >= self._next_fit:
            self._fitted_peak(np.array(at), warn)

    def _fitted_peak(self, at: np.ndarray, warn: list) -> None:
        """The reference's curve in sqrt(KL) judged past its fitted peak: a warning (no stated error rate)."""
        self._next_fit = max(len(at) + 1, math.ceil(REFIT_GROWTH * len(at)))
        kl = self.kl[at]
        if not np.isfinite(kl).all():  # no KL logged (yet): no law to fit
            return
        try:
            v = judge(fit_log(self.steps[at], kl, self.reference[at], self.form, n_boot=self.n_boot, ci=self.ci))
        except FitError:
            return
        if v.stop:
            warn.append(("fitted-peak", f"KL {kl[-1]:.3g} is past the fitted peak of the reference: {v.reason}"))

    def summary(self) -> str:
        """One line: what the monitor saw, its last status and the checkpoint to roll back to, or why it cannot
        judge."""
        if not self.history:
            return "no line with a step and a reward was seen"
        last, n = self.history[-1], len(self.history)
        kl = f" (KL {last.kl:.3g})" if math.isfinite(last.kl) else " (no KL logged: judged on steps)"
        seen = f"{n} update{'s' if n != 1 else ''} to step {last.step:g}{kl}"
        if not self._ref_at and not np.isfinite(self.disagreement).any():
            return (f"{seen}; cannot judge overoptimization: no reference score (a second reward model or a "
                    "gold-labelled evaluation, --reference-col) and no ensemble members (--member-cols); the proxy "
                    "alone always rises")
        out = f"{seen}; last status {last.state}"
        if last.best_step is not None:
            tied = last.tied or [float(self.steps[self._ref_at[i]]) for i in self._drop.tied()]
            out += (f"; best checkpoint by the reference: step {last.best_step:g} (not distinguishable from it: steps "
                    f"{steps_text(tied)})")
        return out

    def _disagreement_signals(self, warn: list, stop: list) -> None:
        d, p = float(self.disagreement[-1]), float(self.proxy[-1])
        if not math.isfinite(d):
            return
        self._dis_n += 1
        if d < self._dis_low[0]:  # the current point is the lowest: no rise from it
            self._dis_low = (d, p)
            return
        low, p_low = self._dis_low
        if self._dis_n < self.min_points or low <= 0 or p <= p_low:
            return
        rise = d / low - 1
        if rise > self.rise:
            msg = (f"ensemble disagreement up {100 * rise:.0f}% from its low (step {self.steps[-1]:g}) while the proxy "
                   f"rose {p - p_low:.3g}")
            (stop if rise > 2 * self.rise else warn).append(("disagreement", msg))

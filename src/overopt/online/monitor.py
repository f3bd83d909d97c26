"""Online overoptimization detection from what a trainer sees: KL, the proxy reward, and optionally a reference
score (a second reward model, or a small gold-labelled evaluation set) and ensemble member scores. Never gold.

    mon = Monitor()
    status = mon.update(step, kl, proxy, reference=None, members=None)
    status.state      # "ok", "warn" or "stop"
    status.reasons    # one line per signal that fired

Signals (each a documented threshold, all arguments of `Monitor`):
  reference falls    the reference's gain over its baseline (the median of its first three values; the first value
                     itself, one batch at the start, is never the best gain) fell more than
                     ``drop`` of its best gain below that best, and more than the noise allows: warn; for
                     ``patience`` updates in a row: stop. The noise allowance is 2 sigma sqrt(2 ln m): sigma the
                     per-point noise (median absolute second difference, so trends and turns do not count), m the
                     reference points so far (the best of m noisy points sits up to sigma sqrt(2 ln m) too high, and
                     the point it is compared with, one of m such comparisons over the run, up to as much too low);
                     the best gain itself must exceed that allowance; judged from NOISE_POINTS points on;
  divergence         over the last ``window`` updates the proxy rose while the reference fell (least-squares
                     slopes against KL): warn;
  fitted peak        the reference's curve, binned and fitted with a free baseline, is judged past its peak by
                     `overopt.online.verdict.judge` (a fit that explains the curve, a bounded peak interval, points
                     beyond it whose fall exceeds the noise): stop; judged again whenever the reference's points
                     grew by REFIT_GROWTH (5%), so a long log costs a logarithmic number of fits;
  disagreement       the members' standard deviation rose more than ``disagreement_rise`` (relative) above its
                     lowest value while the proxy kept rising: warn; twice that: stop.

A line without a reference keeps the reference's last signals (it says nothing new about the reference). Without
any reference, only disagreement can fire: ``Monitor.summary()`` says so.

`OveroptCallback` runs a monitor inside a `transformers.Trainer` (TRL's trainers included) from its logs and sets
``should_training_stop`` on "stop".
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import MonitorConfig
from ..errors import LogError
from ..laws import FitError
from ..stats import ols_slope
from .logs import REWARD_NAMES, recognise
from .verdict import fit_log, judge

STATES = ("ok", "warn", "stop")
NOISE_POINTS = 5  # a drop is judged from this many reference points: three second differences, one turn outvoted
REFIT_GROWTH = 1.05  # the fitted peak is judged again once the reference points grew by 5% (or by one, early on)
SIGNALS = ("reference-drop", "divergence", "fitted-peak", "disagreement")
# what the callback reads as the proxy: the usual names, never gold (a log may carry gold at weight zero)
PROXY_NAMES = tuple(n for n in REWARD_NAMES if n != "gold")
_DEFAULT = MonitorConfig()  # the thresholds' defaults live in the config (monitor.*), one place for every caller


def point_noise(values) -> float:
    """The standard deviation of one point's noise, from the median absolute second difference (a second
    difference of independent noise has standard deviation sigma sqrt(6); a trend or a single turn does not move the
    median). 0 with fewer than 4 points."""
    v = np.asarray(values, dtype=float)
    if len(v) < 4:
        return 0.0
    d2 = np.diff(v, 2)
    return float(1.4826 * np.median(np.abs(d2 - np.median(d2))) / math.sqrt(6))


@dataclass
class Status:
    state: str
    reasons: list[str] = field(default_factory=list)
    step: float = 0.0
    kl: float = 0.0
    signals: list[str] = field(default_factory=list)  # which of SIGNALS fired, in the order of ``reasons``
    best_step: float | None = None  # the checkpoint to roll back to: where the reference was best so far


class Monitor:
    def __init__(self, form: str = "rl", min_points: int = _DEFAULT.min_points, window: int = _DEFAULT.window,
                 drop: float = _DEFAULT.drop, patience: int = _DEFAULT.patience,
                 disagreement_rise: float = _DEFAULT.disagreement_rise, n_boot: int = 100, ci: float = 0.9,
                 signals=SIGNALS):
        for ok, rule, value in ((min_points >= 3, "min_points >= 3", min_points), (window >= 2, "window >= 2", window),
                                (patience >= 1, "patience >= 1", patience), (0 < drop < 1, "0 < drop < 1", drop),
                                (disagreement_rise > 0, "disagreement_rise > 0", disagreement_rise)):
            if not ok:
                raise ValueError(f"Monitor needs {rule}, got {value:g}")
        unknown = set(signals) - set(SIGNALS)
        if unknown or not signals:
            raise ValueError(f"Monitor signals must be a non-empty subset of {', '.join(SIGNALS)}; got {sorted(unknown)}")
        self.signals = tuple(signals)
        self.form, self.min_points, self.window, self.drop, self.patience = form, min_points, window, drop, patience
        self.rise, self.n_boot, self.ci = disagreement_rise, n_boot, ci
        self._cols = {k: np.empty(64) for k in ("steps", "kl", "proxy", "reference", "disagreement")}
        self._n = 0  # points so far: each column is an array that doubles when full (no copy of the log per update)
        self._below = 0
        self._ref_fired: tuple[list, list] = ([], [])  # the reference's last signals (warn, stop)
        self._next_fit = 0  # reference points at which the fitted peak is next judged
        # running state, so that an update costs the same at the 100,000th line as at the 10th
        self._ref_at: list[int] = []  # the points that have a reference
        self._base = math.nan         # the reference's baseline: the median of its first three values
        self._best = (-1, -math.inf)  # (reference point, value): the best after the first
        self._top = (math.nan, -math.inf)  # (step, value): the best of all, the checkpoint to roll back to
        self._sigma, self._next_noise = 0.0, 0
        self._dis_n, self._dis_low = 0, (math.inf, math.nan)  # finite disagreements; (lowest, proxy there)
        self.history: list[Status] = []

    def update(self, step: float, kl: float, proxy: float, reference: float | None = None,
               members=None, disagreement: float | None = None) -> Status:
        """Add one point and return the status with every reason that fired.

        ``members``: the ensemble members' scores at this point (their spread is the disagreement), or
        ``disagreement``: a spread the trainer measured itself (e.g. the members' per-sample standard deviation,
        averaged), which is better: it has no offsets between members in it."""
        if not all(np.isfinite(v) for v in (step, kl, proxy)):
            raise ValueError(f"step {step}: step, kl and proxy must be finite numbers")
        if disagreement is None and members is not None:
            m = np.asarray(members, dtype=float)
            disagreement = float(m.std()) if m.size > 1 else None
        self._append(steps=float(step), kl=max(float(kl), 0.0), proxy=float(proxy),
                     reference=math.nan if reference is None else float(reference),
                     disagreement=math.nan if disagreement is None else float(disagreement))
        warn, stop = [], []   # (signal, message)
        if reference is not None and math.isfinite(reference):
            self._add_reference(float(step), float(reference))
            self._ref_fired = ([], [])
            self._reference_signals(*self._ref_fired)
        warn += self._ref_fired[0]
        stop += self._ref_fired[1]
        self._disagreement_signals(warn, stop)
        warn = [w for w in warn if w[0] in self.signals]
        stop = [w for w in stop if w[0] in self.signals]
        fired = stop + warn
        state = "stop" if stop else ("warn" if warn else "ok")
        status = Status(state, [m for _, m in fired], float(step), float(self.kl[-1]), [n for n, _ in fired],
                        self.best_step())
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
        """The step where the reference was highest so far (None without a reference): on "stop", the checkpoint
        to roll back to, since the point where a fall is seen is already past the peak."""
        return None if math.isnan(self._top[0]) else self._top[0]

    def _add_reference(self, step: float, r: float) -> None:
        """The running state of the reference, one value at a time."""
        self._ref_at.append(self._n - 1)
        j = len(self._ref_at) - 1
        if r > self._top[1]:
            self._top = (step, r)
        if j >= 1 and r > self._best[1]:  # the first point (a single batch at the start) is not a gain
            self._best = (j, r)
        if j < 3:
            self._base = float(np.median(self.reference[self._ref_at]))
        if j + 1 >= self._next_noise:  # the noise moves slowly: estimated again at 5% growth
            self._sigma = point_noise(self.reference[self._ref_at])
            self._next_noise = max(j + 2, math.ceil(REFIT_GROWTH * (j + 1)))

    def _reference_signals(self, warn: list, stop: list) -> None:
        m = len(self._ref_at)
        if m < self.min_points:
            return
        last = self._ref_at[-1]
        gain_now, (bj, br) = self.reference[last] - self._base, self._best
        gain_best = br - self._base
        allow = self._sigma * 2 * math.sqrt(2 * math.log(m))
        fall = gain_best - gain_now
        if m >= NOISE_POINTS and gain_best > allow and fall > max(self.drop * gain_best, allow):
            self._below += 1
            msg = (f"reference gain {gain_now:.3g} is {100 * fall / gain_best:.0f}% below its best {gain_best:.3g} "
                   f"(at KL {self.kl[self._ref_at[bj]]:.3g}; noise allowance {round(allow, 12):.2g})")
            (stop if self._below >= self.patience else warn).append(("reference-drop", msg))
        else:
            self._below = 0
        w = self._ref_at[-self.window:]
        kl_w = self.kl[w]
        if ols_slope(kl_w, self.proxy[w]) > 0 and ols_slope(kl_w, self.reference[w] - self._base) < 0:
            warn.append(("divergence", f"proxy rising while the reference falls over the last {self.window} points"))
        if "fitted-peak" not in self.signals or m < self._next_fit:
            return
        self._next_fit = max(m + 1, math.ceil(REFIT_GROWTH * m))
        at = np.array(self._ref_at)
        kl = self.kl[at]
        try:
            v = judge(fit_log(self.steps[at], kl, self.reference[at], self.form, n_boot=self.n_boot, ci=self.ci))
        except FitError:
            return
        if v.stop:
            stop.append(("fitted-peak", f"KL {kl[-1]:.3g} is past the fitted peak of the reference: {v.reason}"))

    def summary(self) -> str:
        """One line: what the monitor saw, its last status and the checkpoint to roll back to, or why it cannot
        judge."""
        if not self.history:
            return "no line with a KL and a reward was seen"
        last = self.history[-1]
        seen = f"{len(self.history)} updates to step {last.step:g} (KL {last.kl:.3g})"
        if not np.isfinite(self.reference).any() and not np.isfinite(self.disagreement).any():
            return (f"{seen}; cannot judge overoptimization: no reference score (a second reward model or a "
                    "gold-labelled evaluation, --reference-col) and no ensemble members (--member-cols); the proxy "
                    "alone always rises")
        out = f"{seen}; last status {last.state}"
        if last.state != "ok" and last.best_step is not None:
            out += f"; best checkpoint by the reference: step {last.best_step:g}"
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


def _proxy_name(logs: dict) -> str | None:
    """The proxy's column on a log line: the usual reward names, never gold (a log may carry gold at weight 0)."""
    return next((n for n in PROXY_NAMES if n in logs), None)


def OveroptCallback(monitor: Monitor | None = None, kl_key: str | None = None, reward_key: str | None = None,
                    reference_key: str | None = None, member_keys: tuple = (), judge=None, judge_prompts=(),
                    budget: int = 200, strategy: str = "sequential", **judge_kw):
    """A `transformers.TrainerCallback` that feeds each training log line to ``monitor`` and stops training on
    "stop". Keys default to the usual names (TRL: objective/kl or kl, objective/scores or reward, also under
    train/ or eval/); a per-token kl beside a mean completion length is multiplied by it, as `overopt fit` does.
    ``callback.monitor.history`` keeps every status.

    With ``judge`` (``judge(prompts, completions) -> scores``: a classifier, an LLM judge, human ratings) every saved
    checkpoint is judged on a label budget (`overopt.online.budget.CheckpointJudge`: completions of
    ``judge_prompts`` generated by the model, ``budget`` labels in all, ``strategy`` fixed, triggered or sequential;
    ``judge_kw`` go to it: ``pairwise=True`` for ``judge(prompts, completions, references)`` against the starting
    model's completions). A significant fall below the best judged checkpoint, or a spent budget, stops training;
    ``callback.best_checkpoint`` names the checkpoint folder to roll back to, ``callback.judged.watch.spent`` the
    labels paid for."""
    from transformers import TrainerCallback

    from .budget import CheckpointJudge

    class _Callback(TrainerCallback):
        def __init__(self):
            self.monitor = monitor or Monitor()
            self.judged = CheckpointJudge(judge, judge_prompts, budget, strategy, **judge_kw) if judge else None
            self.best_checkpoint: str | None = None
            self._last = (0.0, 0.0)  # the latest logged (KL, proxy), the judged checkpoint's x-axis

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            proxy_key = reward_key or _proxy_name(logs)
            if proxy_key is None or proxy_key not in logs:
                return control
            try:  # the names and the per-token KL rule of `overopt.online.logs`, on this one line
                cols = recognise(pd.DataFrame([logs]), "log line", kl_key, proxy_key)
            except LogError:  # a line of another kind (loss, evaluation)
                return control
            kl, proxy = logs[cols["kl"]], logs[cols["reward"]]
            if cols["kl_length"]:
                kl = kl * logs[cols["kl_length"]]
            self._last = (float(kl), float(proxy))
            members = [logs[k] for k in member_keys if k in logs] or None
            status = self.monitor.update(state.global_step, kl, proxy, logs.get(reference_key) if reference_key
                                         else None, members)
            if status.state == "stop":
                control.should_training_stop = True
            return control

        def on_train_begin(self, args, state, control, model=None, processing_class=None, **kwargs):
            if self.judged is not None:  # a pairwise judge compares with the starting model's completions
                self.judged.begin(model, processing_class)
            return control

        def on_save(self, args, state, control, model=None, processing_class=None, **kwargs):
            if self.judged is None:
                return control
            status = self.judged.evaluate(model, processing_class, state.global_step, *self._last)
            if status.best_step is not None:
                self.best_checkpoint = str(Path(args.output_dir) / f"checkpoint-{int(status.best_step)}")
            if status.state == "stop":
                control.should_training_stop = True
            return control

    return _Callback()

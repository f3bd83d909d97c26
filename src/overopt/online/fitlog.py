"""`overopt fit` without the command line: read a training log, fit a form to each of its curves, judge each.

    report = fit_log_file("out/", form=None, reward_col=None)   # CSV, JSONL, trainer_state.json, a run folder, ...
    report.rows      # one per curve: the fields of fits.csv, kl_now, points, verdict, stop_step, best_step (+ gamma)
    report.notes     # how the log was read (which columns, which KL, the form chosen, dropped lines)

Reading is `online.logs` and `online.columns`, fitting and judging `online.verdict`: the form's fit and its
forecast where a KL is logged, and the stop rule (`online.stoprule`) on the reward along the steps, which alone says
"past the peak". Without a KL column the fit's fields are NaN and the verdict is the rule's, on steps. A problem with
the log or the fit raises a one-line `LogError` or `FitError` naming the file, the column or the group.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..errors import FitError, LogError
from ..laws import FitResult, gamma
from .columns import recognise, show
from .logs import extra_column, read_log, tidy
from .stoprule import ALPHA
from .verdict import LogFit, fall_check, fit_log, forecast_verdict, steps_text


@dataclass
class LogReport:
    rows: list[dict]                                   # one per curve (group) of the log
    notes: list[str]                                   # remarks on how the log was read and fitted
    curves: list[tuple] = field(default_factory=list)  # (name, step, kl, reward, LogFit, verdict): --plot's


def fit_log_file(path: str, form: str | None = None, kl_col: str | None = None, reward_col: str | None = None,
                 group_col: str | None = None, n_boot: int = 200, step_col: str | None = None,
                 until_kl: float | None = None, baseline: str = "fit", bins: int = 20, kl_per_token: bool = False,
                 length_col: str | None = None, proxy_col: str | None = None, alpha: float = ALPHA) -> LogReport:
    """Fit ``form`` to each group of a training log (`online.logs`: CSV, JSONL, trainer_state.json, a run folder,
    TensorBoard events, W&B export), binned by step with a free baseline (`online.verdict`); rows with the fields of
    fits.csv, plus ``kl_now`` (the latest bin's KL), ``points``, ``verdict`` (`verdict.forecast_verdict`), and the
    stop rule's ``stop_step`` (its first stop at false-stop rate ``alpha``, else None), ``best_step`` and
    ``tied_steps``. ``until_kl`` keeps only the points up to that KL (a forecast from a partial curve). With
    ``proxy_col`` (the optimized reward, the reward column then being gold or a trusted judge) each row has
    ``gamma``: the area between the two fitted curves over the proxy's (`overopt.laws.gamma`). ``form`` None: bon for
    a best-of-n table (a kl_bound column), else rl."""
    if bins < 1:
        raise LogError(f"--bins must be at least 1 (got {bins})")
    df = read_log(path)
    if proxy_col and proxy_col not in df.columns:
        raise LogError(f"{path} has no column '{show(proxy_col)}' (--proxy-col)")
    cols = recognise(df, path, kl_col, reward_col, step_col, group_col, kl_per_token, length_col,
                     {"proxy": proxy_col})
    if cols["kl"] is None and until_kl is not None:
        raise LogError(f"{path}: --until-kl needs a KL column, and the log has none (--kl-col names one)")
    notes = []
    if form is None:  # best-of-n tables carry the analytic KL bound; everything else is a trainer's log
        form = "bon" if cols["kl"] == "kl_bound" else "rl"
        if cols["kl"] is not None:
            notes.append(f"form {form} ({'a best-of-n curve' if form == 'bon' else 'a trainer log'}; set --form to "
                         "change)")
    curve = tidy(df, cols, path, (proxy_col,) if proxy_col else ())
    report = LogReport([], curve.attrs["notes"] + notes)
    for name, g in curve.groupby("group", sort=False):
        if until_kl is not None:
            g = g[g["kl"] <= until_kl]
        lf = None
        if cols["kl"] is not None:
            try:
                lf = fit_log(g["step"], g["kl"], g["reward"], form, baseline, bins, n_boot)
            except FitError as e:
                raise FitError(f"{path}: group '{name}': {e}")
            report.notes += [f"'{name}': {m}" for m in lf.warnings]
        fall = fall_check(g["step"], g["reward"], alpha)  # the notes name the reward column
        verdict = forecast_verdict(lf, fall).text()
        fitted = lf.fit.to_dict() if lf else {**FitResult(form, *[math.nan] * 5).to_dict(), "n_points": len(g)}
        row = {"curve": str(name), **fitted, "kl_now": lf.kl_now if lf else math.nan, "points": len(g),
               "verdict": verdict, "stop_step": fall.step, "best_step": fall.best_step,
               "tied_steps": steps_text(fall.tied) if fall.stopped else None}
        if proxy_col:
            row["gamma"] = _gamma(path, name, g, form, baseline, bins, lf, extra_column(proxy_col), proxy_col) \
                if lf else math.nan
        report.rows.append(row)
        report.curves.append((str(name), *(g[c].to_numpy(float) for c in ("step", "kl", "reward")), lf, verdict))
    return report


def _gamma(path, name, g, form: str, baseline: str, bins: int, lf: LogFit, column: str, proxy_col: str) -> float:
    """gamma of one curve: its reward's fit against the proxy column's fit (of the same form) over its KL range."""
    p = g.dropna(subset=[column])
    try:
        pf = fit_log(p["step"], p["kl"], p[column], form, baseline, bins, 0).fit
    except FitError as e:
        raise FitError(f"{path}: group '{name}': the proxy column '{proxy_col}': {e}")
    return gamma(form, (lf.fit.alpha, lf.fit.beta), (pf.alpha, pf.beta), float(g["kl"].max()))

"""`overopt fit` without the command line: read a training log, fit a form to each of its curves, judge each.

    report = fit_log_file("out/", form=None, reward_col=None)   # CSV, JSONL, trainer_state.json, a run folder, ...
    report.rows      # one per curve: the fields of fits.csv, kl_now, points, verdict (and gamma with proxy_col)
    report.notes     # how the log was read (which KL, the form chosen, dropped lines), for the user to see

Reading is `online.logs`, fitting and judging `online.verdict`; a problem with the log or the fit raises a one-line
`LogError` or `FitError` naming the file, the column or the group.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import FitError, LogError
from ..laws import gamma
from .logs import extra_column, read_log, recognise, tidy
from .verdict import LogFit, fit_log, judge


@dataclass
class LogReport:
    rows: list[dict]                                   # one per curve (group) of the log
    notes: list[str]                                   # remarks on how the log was read and fitted
    curves: list[tuple] = field(default_factory=list)  # (name, kl, reward, LogFit, verdict): what --plot draws


def fit_log_file(path: str, form: str | None = None, kl_col: str | None = None, reward_col: str | None = None,
                 group_col: str | None = None, n_boot: int = 200, step_col: str | None = None,
                 until_kl: float | None = None, baseline: str = "fit", bins: int = 20, kl_per_token: bool = False,
                 length_col: str | None = None, proxy_col: str | None = None) -> LogReport:
    """Fit ``form`` to each group of a training log (`online.logs`: CSV, JSONL, trainer_state.json, a run folder,
    TensorBoard events, W&B export), binned by step with a free baseline (`online.verdict`); rows with the fields of
    fits.csv, plus ``kl_now`` (the latest KL), ``points`` and ``verdict``. ``until_kl`` keeps only the points up to
    that KL (a forecast from a partial curve). With ``proxy_col`` (the optimized reward, the reward column then being
    gold or a trusted judge) each row has ``gamma``: the area between the two fitted curves over the proxy's
    (`overopt.laws.gamma`). ``form`` None: bon for a best-of-n table (a kl_bound column), else rl."""
    if bins < 1:
        raise LogError(f"--bins must be at least 1 (got {bins})")
    notes = []
    df = read_log(path)
    cols = recognise(df, path, kl_col, reward_col, step_col, group_col, kl_per_token, length_col)
    if form is None:  # best-of-n tables carry the analytic KL bound; everything else is a trainer's log
        form = "bon" if cols["kl"] == "kl_bound" else "rl"
        notes.append(f"form {form} ({'a best-of-n curve' if form == 'bon' else 'a trainer log'}; set --form to "
                     "change)")
    if proxy_col and proxy_col not in df.columns:
        raise LogError(f"{path} has no column '{proxy_col}' (--proxy-col)")
    curve = tidy(df, cols, path, (proxy_col,) if proxy_col else ())
    notes += curve.attrs["notes"]
    report = LogReport([], notes)
    for name, g in curve.groupby("group", sort=False):
        if until_kl is not None:
            g = g[g["kl"] <= until_kl]
        try:
            lf = fit_log(g["step"], g["kl"], g["reward"], form, baseline, bins, n_boot)
        except FitError as e:
            raise FitError(f"{path}: group '{name}': {e}")
        notes += [f"'{name}': {m}" for m in lf.warnings]
        verdict = judge(lf).text()
        row = {"curve": str(name), **lf.fit.to_dict(), "kl_now": lf.kl_now, "points": lf.n_steps, "verdict": verdict}
        if proxy_col:
            row["gamma"] = _gamma(path, name, g, form, baseline, bins, lf, extra_column(proxy_col), proxy_col)
        report.rows.append(row)
        report.curves.append((str(name), g["kl"].to_numpy(float), g["reward"].to_numpy(float), lf, verdict))
    return report


def _gamma(path, name, g, form: str, baseline: str, bins: int, lf: LogFit, column: str, proxy_col: str) -> float:
    """gamma of one curve: its reward's fit against the proxy column's fit (of the same form) over its KL range."""
    p = g.dropna(subset=[column])
    try:
        pf = fit_log(p["step"], p["kl"], p[column], form, baseline, bins, 0).fit
    except FitError as e:
        raise FitError(f"{path}: group '{name}': the proxy column '{proxy_col}': {e}")
    return gamma(form, (lf.fit.alpha, lf.fit.beta), (pf.alpha, pf.beta), float(g["kl"].max()))

"""How well a partial RL curve forecasts its gold peak: the RL form fitted to every prefix of a curve, its peak
compared with the whole curve's (`forecast.csv`)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .fits import FitError, fit

FORECAST_COLUMNS = ["curve", "points", "kl_now", "seen", "kl_peak_full", "kl_peak", "kl_peak_lo", "kl_peak_hi",
                    "abs_log_error", "covered", "regret"]


def forecast_table(curves: dict, form: str = "rl", min_points: int = 4, n_boot: int = 100, ci: float = 0.9):
    """How well a partial curve forecasts its peak: for each curve {name: (kl, gain)} and each prefix of at least
    ``min_points`` points, the peak KL fitted on the prefix against the peak of the fit to the whole curve.

    seen: the prefix's last KL over that full-curve peak; abs_log_error: |ln(forecast / full-curve peak)|;
    covered: whether the prefix's bootstrap interval holds it; regret: the gain lost by stopping at the forecast,
    (max gain - gain there) / max gain, on the observed curve (interpolated in sqrt(KL)). Curves whose observed
    gain peaks at their last point, or whose full fit has no finite peak, are skipped."""
    rows = []
    for name, (kl, gain) in curves.items():
        kl, gain = np.asarray(kl, dtype=float), np.asarray(gain, dtype=float)
        order = np.argsort(kl, kind="stable")
        kl, gain = kl[order], gain[order]
        if int(np.argmax(gain)) == len(kl) - 1:
            continue
        try:
            full = fit(kl, gain, form, n_boot=0)
        except FitError:
            continue
        if not (np.isfinite(full.kl_peak) and full.kl_peak > 0):
            continue
        best = gain.max()
        for n in range(min_points, len(kl) + 1):
            try:
                r = fit(kl[:n], gain[:n], form, n_boot=n_boot, ci=ci)
            except FitError:
                continue
            ok = np.isfinite(r.kl_peak) and r.kl_peak > 0
            at = np.interp(np.sqrt(min(r.kl_peak, kl[-1])), np.sqrt(kl), gain) if ok else -math.inf
            rows.append({"curve": name, "points": n, "kl_now": kl[n - 1], "seen": kl[n - 1] / full.kl_peak,
                         "kl_peak_full": full.kl_peak, "kl_peak": r.kl_peak, "kl_peak_lo": r.kl_peak_lo,
                         "kl_peak_hi": r.kl_peak_hi,
                         "abs_log_error": abs(math.log(r.kl_peak / full.kl_peak)) if ok else math.inf,
                         "covered": bool(r.kl_peak_lo <= full.kl_peak <= r.kl_peak_hi),
                         "regret": float((best - at) / best) if best > 0 else math.nan})
    return pd.DataFrame(rows, columns=FORECAST_COLUMNS)

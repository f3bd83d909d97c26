"""Gao et al.'s headline (Figs. 3 and 4): the best-of-n coefficients move smoothly, near log-linearly, with the
proxy's parameter count and its preference data (`scaling_claims`, from scaling.csv: the fits study's), and again
over training draws of the family (`draw_claims`, from draws.csv: the draws study's)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..fits import SMOOTH_R2, SMOOTH_SPEARMAN, fit_scaling, is_smooth, trend_stats
from .base import ClaimInputs, support_text

SMOOTH_COEFS = {"alpha_bon": "alpha_bon", "beta_bon": "beta_bon", "gold_peak": "the best-of-n gold peak",
                "kl_peak_bon": "KL at the fitted gold peak"}
AXIS_TEXT = {"params": ("log parameters", "proxy family"), "data": ("log training pairs", "data sweep")}


def scaling_claims(t: ClaimInputs) -> list[dict]:
    """Gao et al.'s headline (Figs. 3 and 4): the coefficients move smoothly, near log-linearly, with the proxy's
    parameter count and with its preference data. One row per coefficient and axis: R^2 of the log-linear fit
    (value), Spearman's rank correlation (reference) and, where scaling.csv has it, the support."""
    scaling, rows = t.table("scaling"), []
    if scaling is None or "axis" not in scaling:
        return rows
    for r in scaling.itertuples(index=False):
        if r.coef not in SMOOTH_COEFS or r.axis not in AXIS_TEXT:
            continue
        axis, curve = AXIS_TEXT[r.axis]
        support = float(getattr(r, "support", np.nan))
        rows.append({"claim": f"{r.coef} varies log-linearly with {axis}", "curve": curve, "value": r.r2,
                     "reference": r.spearman, "holds": bool(is_smooth(r.r2, r.spearman)), "support": support,
                     "detail": f"value: R^2 of {SMOOTH_COEFS[r.coef]} = a + b log10({r.axis}) over {r.n} proxies "
                               f"(slope {r.slope:+.3g} per decade, interval {r.slope_lo:+.3g} to {r.slope_hi:+.3g}); "
                               f"reference: Spearman; holds when R^2 >= {SMOOTH_R2} and |Spearman| >= "
                               f"{SMOOTH_SPEARMAN}" + support_text(support)})
    return rows


DRAW_COEFS = {"alpha": "alpha_bon", "beta": "beta_bon", "kl_peak": "kl_peak_bon", "gold_peak": "gold_peak"}


def draw_trends(draws: pd.DataFrame, col: str) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """draws.csv's ``col`` as [sizes by parameters, draws], and each draw's R^2 and Spearman against log parameters."""
    wide = draws.pivot(index="rm_params", columns="draw", values=col).sort_index()
    return (wide, *trend_stats(wide.index.to_numpy(dtype=float), wide.to_numpy().T))


def draw_claims(t: ClaimInputs) -> list[dict]:
    """The smoothness claims again over training draws of the family (`studies.draws`: every size trained k times):
    holds when the trend of each size's mean over the draws is smooth (value: its R^2 against log parameters,
    reference: its Spearman), support the share of the single draws on which it is smooth too."""
    draws = t.table("draws")
    if draws is None:
        return []
    k = draws["draw"].nunique()
    if k < 2 or draws["rm"].nunique() < 3:
        return []
    rows = []
    for col, coef in DRAW_COEFS.items():
        wide, r2, rho = draw_trends(draws, col)
        smooth = is_smooth(r2, rho)
        mean = fit_scaling(wide.index.to_numpy(dtype=float), wide.mean(axis=1).to_numpy(), coef)
        rows.append({"claim": f"{coef} varies log-linearly with log parameters", "curve": f"proxy family, {k} draws",
                     "value": mean.r2, "reference": mean.spearman, "holds": bool(is_smooth(mean.r2, mean.spearman)),
                     "support": float(smooth.mean()),
                     "detail": f"value: R^2 against log10(params) of {SMOOTH_COEFS[coef]}, each size's mean over {k} "
                               "training draws; reference: its Spearman; support: the share of draws on which the "
                               "draw's own trend is smooth (Spearman per draw " + " ".join(f"{x:+.2f}" for x in rho)
                               + ")"})
    return rows

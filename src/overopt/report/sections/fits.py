"""What the run says of the papers: the claims (a summary first, every row later), how well a partial RL
curve forecasts its peak, and sample texts."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..kit import html_table
from ..page_context import Page


def _held(claims: pd.DataFrame) -> pd.Series:
    return claims["holds"].astype(str).str.lower() == "true"


def claims_summary(page: Page) -> list[str]:
    """Per claim of the papers: on how many curves it holds."""
    claims = page.table("claims", ("holds",))
    if claims is None:
        return []
    held = _held(claims)
    by = claims.assign(holds=held).groupby("claim", sort=False)["holds"].agg(["sum", "size"]).reset_index()
    by = by.rename(columns={"sum": "holds on", "size": "checked on"})
    return ["<h2>Which claims hold on this run</h2>", f"<p class='note'>{int(held.sum())} of {len(claims)} rows hold; "
            "every row is in the claims table below.</p>", html_table(by)]


def forecast(page: Page) -> list[str]:
    fc = page.table("forecast", ("curve", "seen", "abs_log_error", "covered", "regret"))
    if fc is None:
        return []
    bins = pd.cut(fc["seen"], [0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, np.inf], right=False)
    summary = fc.groupby(bins, observed=True).agg(
        prefixes=("curve", "size"), median_abs_log_error=("abs_log_error", "median"),
        covered=("covered", lambda x: float(np.mean(x.astype(str).str.lower() == "true"))),
        median_regret=("regret", "median")).reset_index().rename(columns={"seen": "KL seen / peak KL"})
    summary["KL seen / peak KL"] = summary["KL seen / peak KL"].astype(str)
    return ["<h2>Forecasting the peak from a partial curve</h2>", "<p class='note'>Each RL curve of the family cut "
            "after every evaluation (at least 4 points), R = d(alpha - beta ln d) fitted to the cut, and its peak KL "
            "compared with the fit to the whole curve: |ln(forecast / peak)|, whether the bootstrap interval holds it, "
            "and the gold lost by stopping at the forecast (regret, share of the best gain). Grouped by how far the "
            "cut curve had come (its last KL over the peak KL).</p>", html_table(summary)]


def claims(page: Page) -> list[str]:
    claims = page.table("claims", ("holds",))
    if claims is None:
        return []
    held = int(_held(claims).sum())
    return ["<h2>Claims of the papers, checked on this run</h2>",
            f"<p class='note'>{held} of {len(claims)} hold. Each row names what was measured (value) and what it is "
            "compared with (reference); a row that does not hold is where this world departs from the paper.</p>",
            html_table(claims)]


def samples(page: Page) -> list[str]:
    samples = page.table("samples")
    if samples is None:
        return []
    return ["<h2>Samples</h2>", "<p class='note'>pi0's first pool sample beside the best-of-N choice of the smallest "
            "and largest proxy.</p>", f"<div class='samples'>{html_table(samples)}</div>"]

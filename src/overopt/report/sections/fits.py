"""What the run says of the papers: the claims (a summary first, every row later), how well a partial RL
curve forecasts its peak, and sample texts."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ...laws.claims import AGREE, verdict_counts
from ..kit import html_table
from ..page_context import Page


def claims_summary(page: Page) -> list[str]:
    """Per claim of the papers: on how many curves it holds, and on how many the prompts leave it open."""
    claims = page.table("claims", ("holds",))
    if claims is None:
        return []
    by = verdict_counts(claims)
    return ["<h2>Which claims hold on this run</h2>", f"<p class='note'>{int(by['holds'].sum())} of {len(claims)} "
            f"rows hold, {int(by['inconclusive'].sum())} are inconclusive (the point estimate's verdict is not "
            f"reached on at least {AGREE:.0%} of the paired resamples of the evaluation prompts); every row is in "
            "the claims table below.</p>",
            html_table(by.rename(columns={"holds": "holds on", "inconclusive": "inconclusive on",
                                          "checked": "checked on"}))]


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
    held = int(verdict_counts(claims)["holds"].sum())
    return ["<h2>Claims of the papers, checked on this run</h2>",
            f"<p class='note'>{held} of {len(claims)} hold. Each row names what was measured (value) and what it is "
            "compared with (reference); holds is the run's point estimate, support the share of the paired prompt "
            "resamples on which the claim holds (the family's order, trend, form and peak claims, the ensembles' "
            "best-of-n peaks), and verdict what the two say together. "
            "A row that does not hold is where this world departs from the paper.</p>",
            html_table(claims)]


def samples(page: Page) -> list[str]:
    samples = page.table("samples")
    if samples is None:
        return []
    return ["<h2>Samples</h2>", "<p class='note'>pi0's first pool sample beside the best-of-N choice of the smallest "
            "and largest proxy.</p>", f"<div class='samples'>{html_table(samples)}</div>"]

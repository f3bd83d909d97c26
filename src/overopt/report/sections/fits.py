"""What the run says of the papers: the claims, a summary first (at the top of the page) and every row later."""
from __future__ import annotations

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

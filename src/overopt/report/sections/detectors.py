"""The gold-free signals measured as detectors along every family RL curve (the detectors study: detectors.csv,
detector_summary.csv)."""
from __future__ import annotations

from ..kit import html_table
from ..page_context import Page


def section(page: Page) -> list[str]:
    summary = page.table("detector_summary", ("signal", "auc", "regret", "early"))
    if summary is None:
        return []
    return ["<h3>Gold-free signals as detectors of a past peak</h3>",
            "<p class='note'>overopt.online.detectors at every evaluation of every family RL curve: the KL (the "
            "baseline: gold peaks at some KL), the KL per step, the proxy's gain per unit sqrt(KL) (negated), the "
            "Mahalanobis distance of the proxy's final hidden state of the policy's responses from pi0's (mean "
            "squared distance per dimension, and the share beyond the chi-square 99% quantile), the spread of the "
            "family's other sizes on the same responses, and with the monitor study the same-data members' "
            "disagreement. auc: P(the signal is higher at a point past gold's peak than at one before it). As a "
            "stop rule each stops at the first evaluation reaching a threshold chosen on the other curves; regret "
            "and early as above, with no rollback (no judge).</p>", html_table(summary)]

"""A judge on a label budget: gold regret against labels spent per strategy, and n for best-of-n from a few judged
prompts (the budget study)."""
from __future__ import annotations

import pandas as pd

from ..kit import html_table, plt
from ..page_context import Page


def plot_budget(summary: pd.DataFrame, choice: pd.DataFrame | None):
    """Median gold regret after rollback against median labels spent, one line per judge and strategy; the best-of-n
    choice's median regret against calibration prompts."""
    fig, axes = plt.subplots(1, 2 if choice is not None and len(choice) else 1, figsize=(10, 3.6), squeeze=False)
    ax = axes[0][0]
    for (judge, strategy), g in summary.groupby(["judge", "strategy"], sort=False):
        if strategy in ("none", "fixed set"):
            ax.scatter(g["labels"].clip(lower=1), g["regret_pick"], marker="x" if strategy == "none" else "s",
                       label=f"{strategy} ({judge})")
            continue
        g = g.sort_values("labels")
        ax.plot(g["labels"], g["regret_pick"], "-o" if judge == "pointwise" else "--o", ms=3,
                label=f"{strategy} ({judge})")
    ax.set_xscale("log")
    ax.set_xlabel("judge labels per run (median)")
    ax.set_ylabel("gold regret after rollback (median)")
    ax.axhline(0.1, color="grey", ls=":", lw=1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    if choice is not None and len(choice):
        ax = axes[0][1]
        for rm, g in choice.groupby("rm", sort=False):
            med = g.groupby("m")["regret"].median()
            ax.plot(med.index, med.values, "-o", ms=3, label=rm)
        ax.set_xscale("log")
        ax.set_xlabel("judged calibration prompts m")
        ax.set_ylabel("gold regret of the chosen n (median)")
        ax.axhline(0.1, color="grey", ls=":", lw=1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, title="proxy", title_fontsize=7)
    fig.tight_layout()
    return fig


def section(page: Page) -> list[str]:
    summary = page.table("budget_summary", ("judge", "strategy", "budget", "labels", "regret_pick", "early"))
    choice = page.table("bon_choice", ("rm", "m", "n", "n_best", "regret"))
    if summary is None and choice is None:
        return []
    out = ["<h2>A judge on a label budget: where to stop, which checkpoint to keep, which n</h2>",
           "<p class='note'>overopt.online.budget on every family RL curve, gold standing in for a trusted judge "
           "(pointwise: a response's gold; pairwise: a response against a pi0 response to its prompt, the win rate). "
           "Each strategy decides which evaluations get labels and how many, stops when the stop rule (overopt.online."
           "stoprule: a fall below the best judged checkpoint that noise reaches with probability at most alpha over "
           "the whole run) says so or the budget is spent, and keeps the checkpoint with the highest judged mean; gold "
           "on every evaluation response scores it: regret = (gold peak - gold there) / gold peak, medians over curves "
           "and label draws; early: stopped before the peak with less than half of its gain; false_stops: the rule "
           "stopped before gold's peak. "
           "none: no judge (training to the end); fixed set: the same labels at every evaluation without a cap.</p>"]
    if summary is not None:
        out += [page.img("budget", plot_budget(summary, choice)), html_table(summary)]
    if choice is not None:
        med = choice.groupby(["rm", "m"], sort=False).agg(labels=("labels", "first"), n=("n", "median"),
                                                           n_best=("n_best", "first"), regret=("regret", "median"),
                                                           regret_p90=("regret", lambda r: r.quantile(0.9)))
        out += ["<p class='note'>Best-of-n: n at the fitted gold peak of m judged calibration prompts (the proxy's "
                "top samples of each and a few of the rest, an unbiased estimate of best-of-n gold for every n), "
                "scored on the other held-out prompts' whole pool against the best n there.</p>",
                html_table(med.reset_index())]
    return out

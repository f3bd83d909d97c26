"""The monitor on every family RL curve: where it stopped and the gold regret there."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..kit import html_table, plt
from ..page_context import Page

from ...laws.curves import monitor_summary


def plot_monitor(trace: pd.DataFrame, mon: pd.DataFrame):
    """Per family curve: gold, the proxy and the reference against sqrt(KL), the monitor's stop marked."""
    curves = list(dict.fromkeys(trace["curve"]))
    fig, axes = plt.subplots(1, len(curves), figsize=(3.2 * len(curves) + 1, 3.4), squeeze=False)
    stops = mon[(mon["rule"] == "monitor") & (mon["reference"] == "ensemble")].set_index("curve")
    for ax, curve in zip(axes[0], curves):
        g = trace[trace["curve"] == curve]
        d = np.sqrt(g["kl"].clip(lower=0))
        ax.plot(d, g["gold"], "-o", color="k", ms=3, label="gold")
        ax.plot(d, g["proxy"] - g["proxy"].iloc[0], "--", color="tab:blue", label="proxy")
        ax.plot(d, g["reference"], "-", color="tab:orange", label="other members")
        if "second_rm_gain" in g and g["second_rm_gain"].notna().all():
            ax.plot(d, g["second_rm_gain"], "-", color="tab:green", label="second RM")
        if curve in stops.index:
            s = stops.loc[curve]
            ax.axvline(np.sqrt(max(float(s["stop_kl"]), 0)), color="tab:red" if s["stopped"] else "grey", ls=":",
                       label="stop (ensemble)" if s["stopped"] else "end (no stop)")
        ax.set_title(curve, fontsize=9)
        ax.set_xlabel("sqrt(KL)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("gain over pi0")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def section(page: Page) -> list[str]:
    mon = page.table("monitor", ("curve", "rule", "regret", "early", "stopped", "stop_kl"))
    trace = page.table("monitor_trace", ("curve", "kl", "proxy", "gold", "reference"))
    if mon is None or trace is None:
        return []
    for col in ("early", "stopped"):
        mon[col] = mon[col].astype(str).str.lower() == "true"
    return ["<h2>Monitor: stopping before gold falls</h2>", "<p class='note'>overopt.online.monitor.Monitor on every "
            "family RL curve. It sees the KL, the proxy and the reference (the mean of the ensemble members that were "
            "not optimized, each on one scale), and the members' disagreement; never gold. Gold scores where it "
            "stopped: regret = (gold peak - gold at the stop) / gold peak; early: stopped before the peak with less "
            "than half of the peak gain; a monitor that never stops is charged the last point. Its stops are the stop "
            "rule of overopt.online.stoprule (a fall of the reference below its best, and the proxy climbing while "
            "the reference does not keep up, judged against each evaluation's standard error; false stops at most "
            "alpha over a run: docs/STOPPING.md). Each rule is the "
            "monitor with one signal; none is training to the end. Reference: ensemble (the members not optimized), "
            "second RM (the largest other proxy of the family) or, for comparison only, a gold eval set (a few "
            "held-out prompts' responses gold-labelled at each evaluation: the monitor then sees gold). rollback: the "
            "gold regret of the checkpoint where the reference was best when it stopped.</p>",
            page.img("monitor", plot_monitor(trace, mon)), html_table(monitor_summary(mon)),
            html_table(mon[mon["rule"] == "monitor"].drop(columns=["rule"]))]

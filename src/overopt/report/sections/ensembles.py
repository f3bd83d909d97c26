"""Calibration of every proxy read as a preference model, and reward-model ensembles (Coste et al. 2023)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..kit import colors, html_table, plt
from ..page_context import Page


def plot_reliability(rel: pd.DataFrame, cal: pd.DataFrame):
    """Reliability diagrams (Guo et al. 2017): accuracy against confidence per bin, before and after the
    temperature, one line per proxy of the family and per noisy ensemble's first member (every member is in
    calibration.csv)."""
    first = cal[cal["member"] == 0]  # the family, and member 0 of each noisy ensemble
    rms = [r for r, nz in zip(first["rm"], first["noise"]) if "/" not in str(r) or nz > 0] or list(cal["rm"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), sharey=True)
    for ax, calibrated in zip(axes, (False, True)):
        for rm, col in zip(rms, colors(len(rms))):
            g = rel[(rel["rm"] == rm) & (rel["calibrated"].astype(str).str.lower() == str(calibrated).lower())]
            ece = cal.set_index("rm").loc[rm, "ece_calibrated" if calibrated else "ece"]
            ax.plot(g["confidence"], g["accuracy"], "-o", ms=3, color=col, label=f"{rm} (ECE {ece:.3f})")
        ax.plot([0.5, 1], [0.5, 1], ":", color="grey")
        ax.set_title("after temperature scaling" if calibrated else "raw scores, P = sigmoid(r1 - r2)")
        ax.set_xlabel("confidence")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("accuracy against gold")
    fig.tight_layout()
    return fig


def plot_ensembles(ens: pd.DataFrame, kl: str, title: str):
    """Per ensemble (columns): gold (top) and member disagreement (bottom) against sqrt(KL), one line per
    objective, the single member dashed."""
    names = list(dict.fromkeys(ens["ensemble"]))
    fig, axes = plt.subplots(2, len(names), figsize=(5.2 * len(names), 7), squeeze=False)
    for j, name in enumerate(names):
        g = ens[(ens["ensemble"] == name) & ~ens["objective"].str.startswith("member")]
        objs = list(dict.fromkeys(g["objective"]))
        for obj, col in zip(objs, plt.cm.tab10(np.arange(len(objs)))):
            c = g[g["objective"] == obj].sort_values(kl if kl == "kl_bound" else "step")
            d = np.sqrt(c[kl].to_numpy())
            style = "--o" if obj == "single" else "-o"
            axes[0, j].plot(d, c["gold"], style, ms=3, color=col, label=obj)
            axes[0, j].fill_between(d, c["gold_lo"], c["gold_hi"], color=col, alpha=0.12)
            axes[1, j].plot(d, c["disagreement"], style, ms=3, color=col, label=obj)
        axes[0, j].set_title(f"{title}: {name}")
        axes[0, j].set_ylabel("gold gain over pi0")
        axes[1, j].set_ylabel("member standard deviation")
        axes[1, j].set_xlabel("d = sqrt(KL)")
        for ax in axes[:, j]:
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def calibration(page: Page) -> list[str]:
    cal = page.table("calibration", ("rm", "member", "tau", "ece", "ece_calibrated"))
    rel = page.table("reliability", ("rm", "calibrated", "confidence", "accuracy"))
    if cal is None or rel is None:
        return []
    return ["<h2>Calibration</h2>", "<p class='note'>Each proxy read as a preference model, P(first preferred) = "
            "sigmoid((r1 - r2) / tau), against gold labels on held-out pairs: tau fitted by maximum likelihood on one "
            "half, expected calibration error (ECE, 10 bins of confidence) on the other, before (tau = 1) and "
            "after.</p>", page.img("reliability", plot_reliability(rel, cal)), html_table(cal)]


def section(page: Page) -> list[str]:
    ens_bon = page.table("ensembles", ("ensemble", "objective", "kl_bound", "gold", "gold_lo", "gold_hi",
                                       "disagreement"))
    ens_rl = page.table("ensemble_rl", ("ensemble", "objective", "step", "kl", "gold", "gold_lo", "gold_hi",
                                        "disagreement"))
    parts = []
    if ens_bon is not None:
        shown = ens_bon[~ens_bon["objective"].str.startswith("member")]
        peaks = shown.loc[shown.groupby(["ensemble", "objective"], sort=False)["gold"].idxmax(),
                          ["ensemble", "objective", "n", "kl_bound", "gold", "gold_lo", "gold_hi", "disagreement"]]
        parts += ["<h2>Reward-model ensembles (Coste et al. 2023)</h2>",
                  "<p class='note'>k proxies of one size that differ only by seed, each divided by its temperature, "
                  "combined by mean, WCO (the minimum) or UWO (mean - lambda variance); single: one member alone, "
                  "averaged over the members (each member's own curve is in ensembles.csv as member0, member1, ...). "
                  "Bottom: the members' standard deviation on what each optimizer picks. Best-of-n gold peak per "
                  "objective:</p>", page.img("ens_bon", plot_ensembles(ens_bon, "kl_bound", "best-of-n"), "ensembles_bon"),
                  html_table(peaks.reset_index(drop=True))]
    if ens_rl is not None:
        parts += ["<p class='note'>RL against one member and against each objective, KL as for every RL curve.</p>",
                  page.img("ens_rl", plot_ensembles(ens_rl, "kl", "RL"), "ensembles_rl")]
    return parts

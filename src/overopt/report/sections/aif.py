"""AI-labelled preferences (RLAIF): proxies trained on an AI labeller's labels, under best-of-n."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..kit import html_table, plt
from ..page_context import Page


def plot_aif(aif: pd.DataFrame):
    """Best-of-n gold against sqrt(KL) per proxy size (panels), one line per labeller (gold's solid black)."""
    sizes = list(dict.fromkeys(aif["rm"]))
    fig, axes = plt.subplots(1, len(sizes), figsize=(6 * len(sizes), 4.4), squeeze=False)
    for ax, size in zip(axes[0], sizes):
        g = aif[aif["rm"] == size]
        labellers = list(dict.fromkeys(g["labeller"]))
        for lab, col in zip(labellers, plt.cm.tab10(np.arange(len(labellers)))):
            c = g[g["labeller"] == lab]
            d = np.sqrt(c["kl_bound"].to_numpy())
            col = "black" if lab == "gold" else col
            ax.plot(d, c["gold"], "-o", ms=3, color=col, label=f"{lab} (agrees with gold {c['agreement'].iloc[0]:.2f})")
            ax.fill_between(d, c["gold_lo"], c["gold_hi"], color=col, alpha=0.12)
        ax.set_title(f"proxy {size} trained on each labeller's labels")
        ax.set_xlabel("d = sqrt(KL)")
        ax.set_ylabel("gold gain over pi0")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def section(page: Page) -> list[str]:
    aif = page.table("aif", ("labeller", "rm", "agreement", "val_acc", "n", "kl_bound", "gold", "gold_lo", "gold_hi",
                             "length"))
    if aif is None:
        return []
    peak = aif.loc[aif.groupby(["rm", "labeller"], sort=False)["gold"].idxmax(),
                   ["rm", "labeller", "agreement", "val_acc", "n", "kl_bound", "gold", "gold_lo", "gold_hi"]]
    at_n = aif[aif["n"] == aif["n"].max()].set_index(["rm", "labeller"])[["gold", "length"]]
    return ["<h2>AI-labelled preferences (RLAIF)</h2>", "<p class='note'>Proxies trained on the same pi0 pairs and as "
            "many of them, labelled by an AI labeller instead of gold: a reward model of the family (rm:SIZE), gold "
            "biased toward length (length:B, B per word) or toward one dimension (dim:NAME:F). agreement: the "
            "labeller's agreement with gold on the training pairs; val_acc: the proxy's accuracy against gold. "
            "Best-of-n peak, and gold and length at n = N:</p>", page.img("aif", plot_aif(aif)),
            html_table(peak.merge(at_n.reset_index(), on=["rm", "labeller"], suffixes=("", "_at_N")))]

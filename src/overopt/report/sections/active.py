"""Active learning: labels chosen by ensemble disagreement against labels at random."""
from __future__ import annotations

import pandas as pd

from ..kit import html_table, plt
from ..page_context import Page


def plot_active(active: pd.DataFrame):
    """Validation accuracy and best-of-n gold peak against the number of labels, per strategy."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for strategy, col in zip(list(dict.fromkeys(active["strategy"])), ("grey", "tab:red", "tab:blue")):
        g = active[active["strategy"] == strategy]
        axes[0].plot(g["labels"], g["val_acc"], "-o", color=col, label=strategy)
        axes[1].plot(g["labels"], g["gold_peak"], "-o", color=col, label=strategy)
        axes[1].fill_between(g["labels"], g["gold_peak_lo"], g["gold_peak_hi"], color=col, alpha=0.15)
    for ax, yl in zip(axes, ("validation accuracy against gold", "best-of-n gold peak")):
        ax.set_xlabel("labelled pairs")
        ax.set_ylabel(yl)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def section(page: Page) -> list[str]:
    active = page.table("active", ("strategy", "labels", "val_acc", "gold_peak", "gold_peak_lo", "gold_peak_hi"))
    if active is None:
        return []
    return ["<h2>Active learning</h2>", "<p class='note'>From the same random start, labels added each round either at "
            "random or where k proxies trained on the labels so far disagree most (standard deviation of P(first "
            "preferred) over members); the proxy of each round read against gold and under best-of-n. disagreement: "
            "the members' mean disagreement on the pairs chosen.</p>",
            page.img("active", plot_active(active)), html_table(active)]

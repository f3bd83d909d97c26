"""What each proxy learned of gold: its weight on each gold dimension relative to gold's own, against its size."""
from __future__ import annotations

import pandas as pd

from ..kit import colors, error_bars, html_table, plt
from ..page_context import Page


def plot_learned(learned: pd.DataFrame, family: list[str]):
    fam = learned[learned["rm"].isin(family)]
    dims = list(dict.fromkeys(fam["dimension"]))
    fig, ax = plt.subplots(figsize=(7, 4))
    for d, col in zip(dims, colors(len(dims))):
        g = fam[fam["dimension"] == d].set_index("rm").loc[family]
        ax.errorbar(g["rm_params"], g["weight"], yerr=error_bars(g["weight"], g["weight_lo"], g["weight_hi"]),
                    fmt="-o", ms=4, capsize=3, color=col, label=f"{d} (decides {g['decides'].iloc[0]:.0%} of pairs)")
    ax.axhline(1, color="grey", lw=0.8, ls="--")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xscale("log")
    ax.set_xlabel("proxy RM parameters")
    ax.set_ylabel("weight relative to gold's (1 = as gold)")
    ax.set_title("what each proxy learned of gold's dimensions")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def section(page: Page) -> list[str]:
    learned = page.table("learned", ("rm", "dimension", "weight", "weight_lo", "weight_hi", "decides", "acc_decided"))
    if learned is None:
        return []
    wide = learned.pivot_table(index="rm", columns="dimension", values="weight", sort=False, dropna=False)
    acc = learned.pivot_table(index="rm", columns="dimension", values="acc_decided", sort=False, dropna=False)
    acc = acc.reindex(index=wide.index, columns=wide.columns)  # a dimension that decides no pair has no accuracy
    table = pd.DataFrame({d: [f"{w:.2f} ({a:.2f})" for w, a in zip(wide[d], acc[d])] for d in wide.columns},
                         index=wide.index)
    table["R^2"] = learned.groupby("rm", sort=False)["r2"].first().round(3)
    family = [r for r in page.family if r in set(learned["rm"])]
    return ["<h2>What each proxy learned of gold</h2>", "<p class='note'>Each proxy's score differences on the "
            "validation pairs, regressed on each gold dimension's share of the gold difference: its weight on that "
            "dimension relative to gold's (1 = as gold, 0 = blind to it; 90% bootstrap interval over pairs in the "
            "plot). In brackets: its accuracy on the pairs that dimension decides (the largest share of the gold "
            "difference). A dimension no size learns is a limit of the world, the data or the training, not of "
            "size.</p>", page.img("learned", plot_learned(learned, family)), html_table(table.reset_index())]

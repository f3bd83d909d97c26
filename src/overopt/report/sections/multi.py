"""Multi-objective rewards: one proxy per gold dimension, aggregated; which dimension collapses first; the
Pareto front over weights."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..kit import html_table, plt
from ..page_context import Page


def plot_multi(multi: pd.DataFrame, pareto: pd.DataFrame):
    """Left: each gold dimension's gain along each multi-objective curve, as a share of its largest gain there
    (where each peaks and which falls first). Right: the Pareto front of best-of-n over weights, in the two
    dimensions whose gains are least correlated across weight vectors."""
    dims = [c[len("gold_"):] for c in multi.columns if c.startswith("gold_") and c not in ("gold_lo", "gold_hi")]
    curves = list(multi.groupby(["method", "objective"], sort=False))
    fig, axes = plt.subplots(1, len(curves) + 1, figsize=(5 * (len(curves) + 1), 4.4), squeeze=False)
    axes = axes[0]
    for ax, ((method, obj), g) in zip(axes, curves):
        g = g.sort_values("kl")
        d = np.sqrt(g["kl"].to_numpy())
        for dim, col in zip(dims, plt.cm.tab10(np.arange(len(dims)))):
            y = g[f"gold_{dim}"].to_numpy()
            ax.plot(d, y / (np.abs(y).max() or 1.0), "-o", ms=3, color=col, label=dim)
        ax.plot(d, g["gold"] / (np.abs(g["gold"]).max() or 1.0), "k--", label="gold")
        ax.set_title(f"{method}, {obj}")
        ax.set_xlabel("d = sqrt(KL)")
        ax.set_ylabel("gain / its largest |gain|")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    gains = pareto[[f"gold_{d}" for d in dims]].to_numpy()
    corr = np.corrcoef(gains.T) if len(gains) > 2 else np.zeros((len(dims), len(dims)))
    i, j = np.unravel_index(np.nanargmin(np.where(np.eye(len(dims), dtype=bool), np.inf, np.nan_to_num(corr))),
                            corr.shape)
    ax = axes[-1]
    front = pareto["on_front"].astype(str).str.lower() == "true"
    ax.scatter(gains[~front, i], gains[~front, j], s=14, color="grey", label="dominated")
    ax.scatter(gains[front, i], gains[front, j], s=22, c=pareto.loc[front, "gold"], cmap="viridis",
               label="on the 5-dimension front (colour: gold)")
    ax.set_xlabel(f"{dims[i]} gain")
    ax.set_ylabel(f"{dims[j]} gain")
    ax.set_title("best-of-n over weights")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def section(page: Page) -> list[str]:
    multi = page.table("multi", ("method", "objective", "kl", "gold"))
    pareto = page.table("pareto", ("on_front", "gold"))
    collapse = page.table("collapse", ("method", "objective", "dimension", "kl_peak", "falls"))
    if multi is None or pareto is None:
        return []
    peaks = multi.loc[multi.groupby(["method", "objective"], sort=False)["gold"].idxmax(),
                      ["method", "objective", "n", "step", "kl", "gold", "gold_lo", "gold_hi"]]
    parts = ["<h2>Multi-objective rewards</h2>", "<p class='note'>One proxy per gold dimension, trained on the pairs "
             "that dimension alone orders, mapped onto its share of gold on pi0's samples and summed (the aggregate); "
             "beside it the single proxy of the same size trained on gold itself. Gold peak per curve:</p>",
             html_table(peaks.reset_index(drop=True)), page.img("multi", plot_multi(multi, pareto))]
    if collapse is not None:
        falls = collapse[collapse["falls"].astype(str).str.lower() == "true"].sort_values(
            ["method", "objective", "kl_peak"])
        parts += ["<p class='note'>Dimensions that fall after their peak, in the order they peak (the first "
                  "collapses first):</p>", html_table(falls.reset_index(drop=True))]
    front = pareto[pareto["on_front"].astype(str).str.lower() == "true"]
    return parts + ["<p class='note'>The Pareto front over weights (best-of-n, weights multiply the gold's own):</p>",
                    html_table(front.sort_values("gold", ascending=False).head(12).reset_index(drop=True))]

"""The family's coefficients over training draws (`studies.draws`): each size's beta_bon on every draw beside the
size-wise mean, and each draw's trend against log parameters."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ...laws.claims import draw_trends
from ...laws.fits import SMOOTH_R2, SMOOTH_SPEARMAN, is_smooth
from ..kit import colors, html_table, plt
from ..page_context import Page


def plot_draws(draws: pd.DataFrame):
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, col, label in zip(axes, ("beta", "gold_peak"), ("beta_bon", "best-of-n gold peak")):
        wide = draw_trends(draws, col)[0]
        for d, c in zip(wide.columns, colors(len(wide.columns))):
            ax.plot(wide.index, wide[d], "o", ms=4, color=c, alpha=0.7, label=f"draw {d}")
        ax.plot(wide.index, wide.mean(axis=1), "-k", lw=1.5, label="mean over draws")
        ax.set_xscale("log")
        ax.set_xlabel("proxy RM parameters")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("the family's coefficients on each training draw")
    fig.tight_layout()
    return fig


def section(page: Page) -> list[str]:
    draws = page.table("draws", ("rm", "rm_params", "draw", "val_acc", "alpha", "beta", "kl_peak", "gold_peak"))
    if draws is None:
        return []
    rows, sizes = [], draws.drop_duplicates("rm").sort_values("rm_params")["rm"]  # draw_trends' row order
    for col in ("val_acc", "alpha", "beta", "kl_peak", "gold_peak"):
        wide, r2, rho = draw_trends(draws, col)
        rows += [{"coefficient": col, "draw": d, "R^2": r, "Spearman": s, "smooth": bool(is_smooth(r, s)),
                  **dict(zip(sizes, wide[d]))} for d, r, s in zip(wide.columns, r2, rho)]
    table = pd.DataFrame(rows)
    return ["<h2>Training draws of the family</h2>", "<p class='note'>Every size trained again on the same pairs with "
            "other initialisation and data-order seeds (draw 0 is the family's proxy), each draw's best-of-n curve on "
            "the run's pool fitted with d(alpha - beta d). Per coefficient and draw: the value at each size, and the "
            f"trend against log parameters (smooth: R^2 >= {SMOOTH_R2} and |Spearman| >= {SMOOTH_SPEARMAN}). A trend "
            "that holds on one draw and not on another is the proxies' draw, not the size.</p>",
            page.img("draws", plot_draws(draws)), html_table(table.round(4).replace({np.nan: None}))]

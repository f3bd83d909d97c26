"""Direct alignment (Rafailov et al. 2024): gold, win rate and length against KL per loss, beta and pi0 size."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..kit import colors, html_table, plt
from ..page_context import Page

from ... import laws
from ...laws.curves import daa_summary_table


def plot_daa(daa: pd.DataFrame, fits: pd.DataFrame, y: str = "gold"):
    """Rafailov et al. 2024 Fig. 1: per loss (columns) and policy size (rows), ``y`` against sqrt(KL) over
    checkpoints, one line per beta, with the loss's pooled fit R = d(alpha - beta ln d) for gold."""
    losses, policies = list(dict.fromkeys(daa["loss"])), list(dict.fromkeys(daa["policy"]))
    betas = sorted(daa["beta"].unique())
    fig, axes = plt.subplots(len(policies), len(losses), figsize=(3.4 * len(losses), 3.0 * len(policies)),
                             squeeze=False, sharey=True)
    for i, pol in enumerate(policies):
        for j, loss in enumerate(losses):
            ax = axes[i][j]
            for beta, col in zip(betas, colors(len(betas))):
                g = daa[(daa["policy"] == pol) & (daa["loss"] == loss) & (daa["beta"] == beta)]
                d = np.sqrt(g["kl"].to_numpy())
                ax.plot(d, g[y], "-o", ms=2.5, color=col, label=f"beta {beta:g}")
                if y == "gold":
                    ax.fill_between(d, g["gold_lo"], g["gold_hi"], color=col, alpha=0.1)
            f = fits[(fits["curve"] == f"daa/gold/{loss}/pi0-{pol}") & (fits["form"] == "rl")]
            if y == "gold" and len(f):
                dd = np.linspace(1e-3, np.sqrt(daa[(daa["policy"] == pol) & (daa["loss"] == loss)]["kl"].max()), 100)
                ax.plot(dd, laws.predict("rl", f["alpha"].iloc[0], f["beta"].iloc[0], dd ** 2), ":", color="black",
                        label=f"fit, R^2 {f['r2'].iloc[0]:.2f}")
            ax.set_title(f"{loss}, pi0 {pol}", fontsize=9)
            ax.grid(alpha=0.3)
            if i == len(policies) - 1:
                ax.set_xlabel("d = sqrt(KL(pi || pi_ref))")
            if j == 0:
                ax.set_ylabel({"gold": "gold gain over pi_ref", "winrate": "gold win rate vs pi_ref",
                               "length": "mean length (words)"}[y])
            ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


DAA_COLS = ("curve", "loss", "beta", "policy", "policy_params", "kl", "gold", "gold_lo", "gold_hi", "winrate", "length",
            "epoch_frac", "implicit_len_r2", "implicit_acc")


def section(page: Page) -> list[str]:
    daa = page.table("daa", DAA_COLS)
    if daa is None:
        return []
    fits = page.fits
    parts = ["<h2>Direct alignment (Rafailov et al. 2024)</h2>",
             "<p class='note'>DPO, IPO, SLiC and R-DPO on the same gold-labelled pi0 pairs, from each pi0 size as "
             "reference; one line per beta through its checkpoints. Gold, its win rate against pi_ref samples, and "
             "length against d = sqrt(KL) with KL measured as for RL. The dotted line is R = d(alpha - beta ln d) "
             "fitted to every beta and checkpoint of the panel.</p>",
             page.img("daa_gold", plot_daa(daa, fits, "gold")), page.img("daa_winrate", plot_daa(daa, fits, "winrate")),
             page.img("daa_length", plot_daa(daa, fits, "length"))]
    dfits = fits[fits["method"] == "daa"]
    if len(dfits):
        comp = dfits.pivot(index="curve", columns="form", values="r2").reset_index()
        parts += ["<p class='note'>Fit quality (R^2) of the RL form and of a quadratic in KL.</p>", html_table(comp)]
    return parts + ["<p class='note'>Each run: its gold peak, where in training it came (epoch fraction), whether gold "
                    "then fell below the peak's interval, length growth, and the R^2 of the implicit reward "
                    "beta log(pi/pi_ref) against response length on held-out pairs.</p>",
                    html_table(daa_summary_table(daa))]

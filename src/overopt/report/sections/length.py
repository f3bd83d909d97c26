"""Length: how each proxy scores length within pi0's lengths and beyond, and best-of-n against each proxy as
trained and length-normalised."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..kit import colors, html_table, plt
from ..page_context import Page


def plot_length(length: pd.DataFrame, lbon: pd.DataFrame, family: list[str]):
    """Left: each proxy's mean score against response length, on pi0's samples (solid) and on grammar texts
    longer than any the world writes (dashed); gold beside it. Right: best-of-n gold against sqrt(KL) for
    each proxy as trained (solid) and length-normalised (dotted)."""
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    for rm, col in zip(family, colors(len(family))):
        for source, style in (("pi0", "-"), ("beyond (6-9 sentences)", "--")):
            g = length[(length["rm"] == rm) & (length["source"] == source)]
            axes[0].plot(g["words"], g["proxy"], style, color=col, label=rm if source == "pi0" else None)
        for variant, style in (("as trained", "-o"), ("length-normalised", ":o")):
            g = lbon[(lbon["rm"] == rm) & (lbon["variant"] == variant)]
            axes[2].plot(np.sqrt(g["kl_bound"]), g["gold"], style, ms=3, color=col,
                         label=f"{rm}, {variant}" if variant == "as trained" or rm == family[0] else None)
    first = length[length["rm"] == family[0]]
    for source, style in (("pi0", "-"), ("beyond (6-9 sentences)", "--")):
        g = first[first["source"] == source]
        axes[1].plot(g["words"], g["gold"], style, color="black", label=f"gold, {source}")
    axes[0].set_title("proxy score against length (dashed: beyond pi0's lengths)")
    axes[1].set_title("gold against length")
    axes[2].set_title("best-of-n: as trained (solid), length-normalised (dotted)")
    for ax, xl, yl in zip(axes, ("words", "words", "d = sqrt(KL)"), ("mean proxy score", "mean gold", "gold gain")):
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def section(page: Page) -> list[str]:
    length = page.table("length", ("rm", "source", "words", "proxy", "gold"))
    lbon = page.table("length_bon", ("rm", "variant", "n", "kl_bound", "gold", "length"))
    if length is None or lbon is None:
        return []
    peaks = lbon.loc[lbon.groupby(["rm", "variant"], sort=False)["gold"].idxmax(),
                     ["rm", "variant", "length_coef", "n", "kl_bound", "gold", "gold_lo", "gold_hi"]]
    at_n = lbon[lbon["n"] == lbon["n"].max()].set_index(["rm", "variant"])[["gold", "length"]]
    peaks = peaks.merge(at_n.reset_index(), on=["rm", "variant"], suffixes=("", "_at_N"))
    return ["<h2>Length</h2>", "<p class='note'>How each proxy scores length where pi0 writes and beyond (grammar "
            "texts of 6-9 sentences; the world writes at most 5), against gold; and best-of-n against each proxy as "
            "trained and length-normalised (its least-squares slope on length under pi0 removed, length_coef per "
            "token). A linear correction follows the average slope: where the score-length relation is not linear it "
            "can add length instead of removing it.</p>",
            page.img("length", plot_length(length, lbon, page.family)), html_table(peaks.reset_index(drop=True))]

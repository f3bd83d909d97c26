"""GRPO and its variants beside RLOO on the same proxies (the GRPO study): gold against sqrt(KL) per proxy, the
summary with its intervals over prompt resamples, and what the run's own numbers say (claims.csv's GRPO rows)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..kit import colors, html_table, plt
from ..page_context import Page

GRPO_COLS = ("curve", "rm", "variant", "step", "kl", "gold", "gold_lo", "gold_hi", "proxy")
SUMMARY_COLS = ("curve", "variant", "rm", "gold_peak", "kl_peak", "step_peak", "fall", "gap_vs_rloo", "best_form")


def plot_grpo(df: pd.DataFrame):
    """One panel per proxy: gold (90% interval) against d = sqrt(KL) for RLOO (black) and each GRPO variant."""
    rms = list(dict.fromkeys(df["rm"]))
    variants = [v for v in dict.fromkeys(df["variant"]) if v != "rloo"]
    cols = dict(zip(variants, colors(len(variants))))
    fig, axes = plt.subplots(1, len(rms), figsize=(4.2 * len(rms), 3.6), squeeze=False, sharey=True)
    for ax, rm in zip(axes[0], rms):
        for v in ["rloo", *variants]:
            g = df[(df["rm"] == rm) & (df["variant"] == v)]
            if not len(g):
                continue
            d, col = np.sqrt(g["kl"].to_numpy()), cols.get(v, "black")
            ax.plot(d, g["gold"], "-o", ms=2.5, color=col, lw=2 if v in ("rloo", "base") else 1,
                    label="RLOO" if v == "rloo" else f"GRPO {v}")
            ax.fill_between(d, g["gold_lo"], g["gold_hi"], color=col, alpha=0.1)
        ax.set_title(f"proxy {rm}", fontsize=9)
        ax.set_xlabel("d = sqrt(KL(pi || pi0))")
        ax.axhline(0, color="grey", lw=0.5)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    axes[0][0].set_ylabel("gold gain over pi0")
    fig.tight_layout()
    return fig


def section(page: Page) -> list[str]:
    df = page.table("grpo", GRPO_COLS)
    if df is None:
        return []
    summary = page.table("grpo_summary", SUMMARY_COLS)
    parts = ["<h2>GRPO and its variants (Shao et al. 2024; DAPO, Dr. GRPO, GSPO)</h2>",
             "<p class='note'>GRPO against the family's proxies beside RLOO on the same proxies, steps, group size "
             "and learning rate, evaluated on the same schedule with the full-vocabulary KL. base is TRL's GRPOConfig "
             "defaults (beta 0, advantages scaled by the group's std, DAPO's token-level loss); each other variant "
             "changes the options its name gives.</p>", page.img("grpo_gold", plot_grpo(df))]
    if summary is not None:
        show = summary.copy()
        for q in ("gold_peak", "kl_peak", "step_peak", "fall", "gap_vs_rloo"):
            if f"{q}_lo" in show:
                show[q] = [f"{v:.3g} [{lo:.3g}, {hi:.3g}]" if v == v else "" for v, lo, hi in
                           zip(show[q], show[f"{q}_lo"], show[f"{q}_hi"])]
        keep = ["curve", "gold_peak", "kl_peak", "step_peak", "fall", "gap_vs_rloo", "r2_rl", "best_form",
                "rl_best_share"]
        parts += ["<p class='note'>Per curve, with 90% intervals over prompt resamples: the gold peak, the KL and "
                  "step at it, the fall from it to the last evaluation, the mean gold gap to RLOO at equal KL, the "
                  "RL form's R^2, the best form by R^2 (rl, log1p, quad_kl, bon) and the share of resamples on which "
                  "the RL form fits best.</p>", html_table(show[[k for k in keep if k in show]])]
    claims = page.table("claims", ("claim", "curve", "verdict"))
    if claims is not None:
        mine = claims[claims["claim"].str.contains("GRPO")]
        if len(mine):
            counts = mine.groupby(["claim", "verdict"]).size().unstack(fill_value=0).reset_index()
            parts += ["<p class='note'>What this run measures (claims.csv; a verdict stands where 90% of the paired "
                      "prompt resamples agree, otherwise inconclusive): rows per finding and verdict. The support "
                      "covers the evaluation prompts of one training draw per curve; whether a finding survives other "
                      "draws is a sweep over run.seed (`overopt sweep`, claims counted per seed; docs/FINDINGS.md "
                      "for seeds 0-2, where several per-seed verdicts reverse).</p>",
                      html_table(counts)]
    return parts

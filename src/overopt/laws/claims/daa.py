"""Rafailov et al. 2024's findings on direct alignment, from daa_summary.csv (one row per run): the direct-alignment
study's claims."""
from __future__ import annotations

import numpy as np

from .base import ClaimInputs


def daa_claims(t: ClaimInputs) -> list[dict]:
    """Rafailov et al. 2024's findings, from daa_summary.csv (`laws.curves.summarise_daa`: one row per run)."""
    summary, rows = t.table("daa_summary"), []
    if summary is None:
        return rows
    sizes = summary.groupby("policy")["policy_params"].first().sort_values()
    small = sizes.index[0]
    low, high = summary["beta"].min(), summary["beta"].max()
    for loss, g in summary[(summary["policy"] == small) & (summary["beta"] == low)].groupby("loss", sort=False):
        r = g.iloc[0]
        rows.append({"claim": "daa gold humps at the lowest beta (smallest policy)", "curve": r["curve"],
                     "value": r["peak_kl"], "reference": r["peak_gold"], "holds": bool(r["falls"]),
                     "detail": "value: KL at the gold peak; reference: gold there; holds when gold then falls "
                               "below the peak's interval"})
    early = summary[summary["falls"].astype(bool) & (summary["peak_epoch_frac"] < 1)]
    rows.append({"claim": "daa gold starts to fall within the first epoch", "curve": "all runs",
                 "value": float(len(early)), "reference": float(len(summary)), "holds": len(early) > 0,
                 "detail": "value: runs whose gold peaks before the end of epoch 1 and then falls; reference: runs"
                           + (f"; earliest: {early.sort_values('peak_epoch_frac').iloc[0]['curve']} at epoch "
                              f"{early['peak_epoch_frac'].min():.3f}" if len(early) else "")})
    if len(sizes) > 1:
        big = sizes.index[-1]
        for loss, g in summary.groupby("loss", sort=False):
            a = g[g["policy"] == small].set_index("beta")
            b = g[g["policy"] == big].set_index("beta")
            both = a.index.intersection(b.index)
            more = [(a.loc[x, "peak_gold"] < b.loc[x, "peak_gold"]) or
                    (a.loc[x, "falls"] and a.loc[x, "peak_epoch_frac"] < b.loc[x, "peak_epoch_frac"]) for x in both]
            frac = float(np.mean(more)) if more else float("nan")
            rows.append({"claim": "the smaller policy overoptimizes more", "curve": f"{loss}: pi0-{small} vs pi0-{big}",
                         "value": frac, "reference": float(len(both)), "holds": bool(frac >= 0.5),
                         "detail": "value: share of betas where the smaller policy peaks lower, or falls and peaks "
                                   "earlier; reference: betas compared"})
    for (loss, policy), g in summary.groupby(["loss", "policy"], sort=False):
        if low == high:
            break
        gl = float(g.loc[g["beta"] == low, "length_growth"].iloc[0])
        gh = float(g.loc[g["beta"] == high, "length_growth"].iloc[0])
        rows.append({"claim": "low beta lengthens outputs more than high beta", "curve": f"{loss}/pi0-{policy}",
                     "value": gl, "reference": gh, "holds": gl > gh,
                     "detail": f"value: length growth (words, mean over checkpoints) at beta {low:g}; reference: "
                               f"at beta {high:g}"})
    if {"dpo", "rdpo"} <= set(summary["loss"]):
        for policy, g in summary.groupby("policy", sort=False):
            r = g[g["loss"] == "rdpo"]["length_growth"].mean()
            dp = g[g["loss"] == "dpo"]["length_growth"].mean()
            rows.append({"claim": "R-DPO reduces length growth", "curve": f"pi0-{policy}", "value": float(r),
                         "reference": float(dp), "holds": bool(r < dp),
                         "detail": "value: R-DPO's length growth (words, mean over checkpoints and betas); "
                                   "reference: DPO's"})
    return rows

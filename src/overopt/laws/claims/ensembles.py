"""Coste et al. 2023's claims on reward-model ensembles, from ensembles.csv and ensemble_rl.csv: the ensembles study's."""
from __future__ import annotations

import numpy as np

from ..curves import CurveId, peak_of
from .base import ClaimInputs, paired_share, support_text


def ensemble_claims(t: ClaimInputs) -> list[dict]:
    """Coste et al. 2023: an ensemble objective reaches a higher gold peak than a single member (most of all
    under label noise), and the members' disagreement grows as gold falls. Each best-of-n curve's gold peak on the
    paired prompt resamples (its CurveId("ensembles", "<ensemble>/<objective>") replicates) gives the support."""
    ens_bon, ens_rl, rows = t.table("ensembles"), t.table("ensemble_rl"), []
    if ens_bon is None:
        return rows
    tables = [("best-of-n", ens_bon, "kl_bound")] + ([("rl", ens_rl, "kl")] if ens_rl is not None else [])
    for method, df, kl in tables:
        for name, g in df.groupby("ensemble", sort=False):
            curves = {o: c for o, c in g.groupby("objective", sort=False)}
            if "single" not in curves:
                continue
            single = curves["single"]
            ref = float(single["gold"].max())
            for obj, c in curves.items():
                if obj == "single" or obj.startswith("member"):
                    continue
                a, b = (t.replicate(CurveId("ensembles", f"{name}/{o}")).get("gold_peak") for o in (obj, "single"))
                support = paired_share(a, b) if method == "best-of-n" else np.nan
                rows.append({"claim": f"ensemble {obj} reaches a higher {method} gold peak than one member",
                             "curve": f"{name}/{obj}", "value": float(c["gold"].max()), "reference": ref,
                             "holds": bool(c["gold"].max() > ref), "support": support,
                             "detail": "value: the objective's gold peak; reference: one member's alone (for best-of-n "
                                       "averaged over the members, for RL member 0)" + support_text(support)})
            p = peak_of(single[kl].to_numpy(), single["gold"].to_numpy(), single["gold_lo"].to_numpy())
            i = int(np.argmax(single["gold"].to_numpy()))
            dis = single["disagreement"].to_numpy()
            rise = float(dis[-1] - dis[i])
            rows.append({"claim": f"ensemble disagreement rises as gold falls ({method}, one member optimized)",
                         "curve": f"{name}/single", "value": rise, "reference": float(single["gold"].iloc[-1] - p["gold"]),
                         "holds": bool(p["falls"] and rise > 0),
                         "detail": "value: disagreement at the last point minus at the gold peak; reference: the gold "
                                   "change over the same span (the claim needs gold to fall below the peak's interval)"})
    return rows

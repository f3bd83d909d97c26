"""Gao et al. 2022's claims on the run's best-of-n and RL curves: each curve peaks and falls and follows its form,
the family's order by size (claim 3), RL against best-of-n (claim 4), and the RL variants: the KL penalty (Fig. 9),
the policy size and iterated RLHF (sec. 4.3). `bon_claims` is the best-of-n study's, `rl_claims` the RL study's."""
from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd

from ..curves import CurveId, peak_of, with_variants
from .base import FORM_R2, ClaimInputs, family_replicates, paired_share, support_text


def frontier_gap(kl0, gold0, hw0, kl1, gold1, hw1) -> tuple[float, float]:
    """Largest |gold1 - gold0(kl1)| over the points of curve 1 inside curve 0's KL range, with
    curve 0 (and its interval half-width) interpolated linearly in sqrt(KL); returns (gap, gap / combined
    half-width) at the point where that ratio is largest."""
    d0, d1 = np.sqrt(np.asarray(kl0)), np.sqrt(np.asarray(kl1))
    order = np.argsort(d0)
    d0, gold0, hw0 = d0[order], np.asarray(gold0)[order], np.asarray(hw0)[order]
    inside = (d1 > 0) & (d1 <= d0.max())
    if not inside.any():
        return float("nan"), float("nan")
    g0 = np.interp(d1[inside], d0, gold0)
    h0 = np.interp(d1[inside], d0, hw0)
    gap = np.asarray(gold1)[inside] - g0
    ratio = np.abs(gap) / np.sqrt(h0 ** 2 + np.asarray(hw1)[inside] ** 2).clip(min=1e-9)
    j = int(np.argmax(ratio))
    return float(gap[j]), float(ratio[j])


def inversions(values, rising: bool) -> np.ndarray:
    """Adjacent steps against the claimed direction, along the last axis (values in proxy-size order)."""
    steps = np.diff(np.asarray(values, dtype=np.float64), axis=-1)
    return ((steps < 0) if rising else (steps > 0)).sum(-1)


def _order_row(claim: str, values: np.ndarray, params: np.ndarray, rising: bool, what: str,
               replicates: np.ndarray | None) -> dict:
    """Adjacent inversions of ``values`` ordered by parameter count (value; at most one holds) and
    their Spearman rank correlation with it (reference); ``replicates`` ([B, sizes]) gives the support."""
    n_inv = int(inversions(values, rising))
    rho = float(pd.Series(values).corr(pd.Series(params), method="spearman"))
    support = float((inversions(replicates, rising) <= 1).mean()) if replicates is not None else np.nan
    return {"claim": claim, "curve": "proxy family", "value": n_inv, "reference": rho, "holds": n_inv <= 1,
            "support": support, "detail": f"value: adjacent inversions of {what} by proxy size; reference: "
                                          "Spearman correlation with parameter count" + support_text(support)}


def _size_order_claims(family: pd.DataFrame, fits: pd.DataFrame, replicates) -> list[dict]:
    """Gao's claim 3 on best-of-n: larger proxies reach more gold and overoptimize less (beta falls)."""
    if "rm_params" not in family or family["rm"].nunique() < 3:
        return []
    params = family.groupby("rm", sort=False)["rm_params"].first().sort_values()
    reps = partial(family_replicates, replicates, params.index)
    at_n = family[family["n"] == family["n"].max()].set_index("rm")["gold"].reindex(params.index)
    rows = [_order_row("gold at n = N grows with proxy size", at_n.to_numpy(), params.to_numpy(), True,
                       "gold at n = N", reps("gold_at_N"))]
    keys = [(f"bon/gold/{rm}", "bon") for rm in params.index]
    if "beta" in fits and all(k in fits.index for k in keys):
        beta = np.array([float(fits.loc[k, "beta"]) for k in keys])
        rows.append(_order_row("beta_bon falls with proxy size", beta, params.to_numpy(), False, "beta_bon",
                               reps("beta_bon")))
    return rows


def _peak_and_fit(t: ClaimInputs, fits: pd.DataFrame, method: str, rm: str, p: dict, form_text: str) -> list[dict]:
    """A curve's peak-and-fall claim and its form claim (the form beats a quadratic in KL)."""
    def r2(curve, form):
        return float(fits.loc[(curve, form), "r2"]) if (curve, form) in fits.index else float("nan")
    curve = CurveId(method, rm)
    a, q = r2(curve.fit_name(), method), r2(curve.fit_name(), "quad_kl")
    reps = t.replicate(curve)
    support = (float(np.mean((reps[f"r2/{method}"] >= FORM_R2) & (reps[f"r2/{method}"] > reps["r2/quad_kl"])))
               if f"r2/{method}" in reps and "r2/quad_kl" in reps else np.nan)
    return [{"claim": f"{method} gold peaks and falls", "curve": f"{method}/{rm}", "value": p["kl"],
             "reference": p["gold"], "holds": p["falls"], "detail": "value: KL at the gold peak; reference: gold there"},
            {"claim": f"{method} form fits (R^2 >= {FORM_R2}) and beats a quadratic in KL", "curve": f"{method}/{rm}",
             "value": a, "reference": q, "holds": bool(a >= FORM_R2 and a > q), "support": support,
             "detail": f"value: R^2 of {form_text}; reference: R^2 of the quadratic" + support_text(support)}]


def _bon_family(bon_df: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """bon.csv's family rows (the most training pairs) and each family proxy's observed gold peak."""
    family = bon_df[bon_df["n_train"] == bon_df["n_train"].max()]
    return family, {rm: peak_of(g["kl_bound"].to_numpy(), g["gold"].to_numpy(), g["gold_lo"].to_numpy())
                    for rm, g in family.groupby("rm", sort=False)}


def bon_claims(t: ClaimInputs) -> list[dict]:
    """Every family best-of-n curve peaks, falls and follows d(alpha - beta d); the family's order by size."""
    bon, fits = t.table("bon"), t.tables["fits"].set_index(["curve", "form"])
    if bon is None:
        return []
    family, peaks = _bon_family(bon)
    rows = [row for rm, p in peaks.items() for row in _peak_and_fit(t, fits, "bon", rm, p, "d(alpha - beta d)")]
    return rows + _size_order_claims(family, fits, t.replicates)


def rl_claims(t: ClaimInputs) -> list[dict]:
    """Every family RL curve peaks, falls and follows d(alpha - beta ln d); against best-of-n on the same proxy, its
    peak's KL and the KL it spends for the same gain; then each variant curve against its proxy's family curve."""
    rl, bon = t.table("rl"), t.table("bon")
    if rl is None or bon is None:
        return []
    fits = t.tables["fits"].set_index(["curve", "form"])
    family, bon_peaks = _bon_family(bon)
    rows = []
    curves = {c: g for c, g in with_variants(rl).groupby("curve", sort=False)}
    family_rl = {c: g for c, g in curves.items() if g["variant"].iloc[0] == "family"}
    for rm in bon_peaks:
        if rm not in family_rl:
            continue
        g = family_rl[rm]
        p = peak_of(g["kl"].to_numpy(), g["gold"].to_numpy(), g["gold_lo"].to_numpy())
        rows += _peak_and_fit(t, fits, "rl", rm, p, "d(alpha - beta ln d)")
        if p["interior"] and bon_peaks[rm]["interior"]:
            support = paired_share(*(t.replicate(CurveId(m, rm)).get("kl_at_peak") for m in ("rl", "bon")))
            rows.append({"claim": "rl gold peaks at a larger KL than bon", "curve": rm, "value": p["kl"],
                         "reference": bon_peaks[rm]["kl"], "holds": p["kl"] > bon_peaks[rm]["kl"], "support": support,
                         "detail": "value: RL KL at the gold peak; reference: best-of-n's" + support_text(support)})
        # Gao's claim 4: RL spends more KL for the same gold gain, at the largest gain both reach.
        b = family[family["rm"] == rm]
        target = 0.9 * min(p["gold"], bon_peaks[rm]["gold"])
        if target <= 0:
            continue
        kl_rl = float(g["kl"].to_numpy()[np.argmax(g["gold"].to_numpy() >= target)])
        kl_bon = float(b["kl_bound"].to_numpy()[np.argmax(b["gold"].to_numpy() >= target)])
        rows.append({"claim": "rl spends more KL than bon for the same gold gain", "curve": rm, "value": kl_rl,
                     "reference": kl_bon, "holds": kl_rl > kl_bon,
                     "detail": f"first KL reaching gold {target:.3f} (90% of the lower peak): RL, best-of-n"})
    return rows + _variant_claims(curves, family_rl)
def _variant_claims(curves: dict, family: dict) -> list[dict]:
    """Each variant curve on a proxy (rl.csv's variant column) against that proxy's family curve: the KL penalty
    (Gao Fig. 9), the policy size and iterated RLHF (sec. 4.3)."""
    rows = []
    for curve, g in curves.items():
        variant, rm = g["variant"].iloc[0], g["rm"].iloc[0]
        if variant == "family" or rm not in family:
            continue
        base = family[rm]
        if variant == "kl_penalty":
            gap, ratio = frontier_gap(base["kl"], base["gold"], (base["gold_hi"] - base["gold_lo"]) / 2,
                                      g["kl"], g["gold"], (g["gold_hi"] - g["gold_lo"]) / 2)
            rows.append({"claim": "a KL penalty leaves the gold-KL frontier unchanged", "curve": curve,
                         "value": gap, "reference": ratio, "holds": bool(ratio <= 1.0),
                         "detail": "value: largest gold gap to the unpenalized curve at equal KL; reference: that "
                                   "gap over the combined interval half-widths (<= 1: within the intervals)"})
        if variant == "policy_size":
            p0 = peak_of(base["kl"].to_numpy(), base["gold"].to_numpy(), base["gold_lo"].to_numpy())
            p1 = peak_of(g["kl"].to_numpy(), g["gold"].to_numpy(), g["gold_lo"].to_numpy())
            if not (p0["interior"] and p1["interior"]):
                continue
            ratio = p1["kl"] / p0["kl"]
            rows.append({"claim": "policy size moves the peak KL little", "curve": curve, "value": p1["kl"],
                         "reference": p0["kl"], "holds": bool(0.5 <= ratio <= 2.0),
                         "detail": "value: KL at the gold peak with this pi0; reference: with the default pi0 "
                                   "(holds within a factor of 2)"})
        if variant == "iterated":
            kl_end, gold_end = float(g["kl"].iloc[-1]), float(g["gold"].iloc[-1])
            d0 = np.sqrt(base["kl"].to_numpy())
            one = float(np.interp(np.sqrt(kl_end), d0[np.argsort(d0)], base["gold"].to_numpy()[np.argsort(d0)]))
            rows.append({"claim": "iterated RLHF beats one round at equal KL", "curve": curve, "value": gold_end,
                         "reference": one, "holds": gold_end > one,
                         "detail": "value: gold at the iterated curve's end; reference: one round at that KL"})
    return rows

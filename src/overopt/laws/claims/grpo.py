"""GRPO against RLOO and its variants against each other (the GRPO study, issue 31), from grpo_summary.csv and each
curve's quantities on the paired prompt resamples (`studies.grpo.curve_replicates`). Nothing here is a paper's
claim: no paper measured GRPO against a gold reward, so each row is a finding this run measures, with its support."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..curves import CurveId
from .base import ClaimInputs, paired_share, support_text

FRONTIER_BAND = 0.1  # "one frontier": GRPO's gold at equal KL within this share of RLOO's gold peak
BASE, RLOO = "base", "rloo"


def _reps(t: ClaimInputs, curve: str) -> dict:
    return t.replicate(CurveId("grpo", curve))


def frontier_rows(s: pd.DataFrame, t: ClaimInputs) -> list[dict]:
    """Per GRPO curve with RLOO on its proxy: is its gold at equal KL within FRONTIER_BAND x RLOO's gold peak of
    RLOO's (the mean gap over GRPO's points inside RLOO's KL range)?"""
    rows = []
    for _, r in s[(s["variant"] != RLOO) & s["gap_vs_rloo"].notna()].iterrows():
        rloo = s[(s["rm"] == r["rm"]) & (s["variant"] == RLOO)].iloc[0]
        band = FRONTIER_BAND * abs(rloo["gold_peak"])
        gaps = _reps(t, r["curve"]).get("gap_vs_rloo")
        support = float(np.mean(np.abs(gaps) <= band)) if gaps is not None else np.nan
        rows.append({"claim": "GRPO reaches RLOO's gold at equal KL (one frontier)", "curve": r["curve"],
                     "value": float(r["gap_vs_rloo"]), "reference": band, "holds": bool(abs(r["gap_vs_rloo"]) <= band),
                     "support": support,
                     "detail": f"value: mean gold gap (GRPO - RLOO) at GRPO's evaluations inside RLOO's KL range, RLOO "
                               f"interpolated in sqrt(KL); reference: {FRONTIER_BAND:g} x RLOO's gold peak on "
                               f"{r['rm']}" + support_text(support)})
    return rows


QUANTITIES = (("gold_peak", "peaks higher"), ("kl_peak", "peaks at a larger KL"), ("step_peak", "peaks at a later step"),
              ("fall", "falls further after its peak"))


def _directions(s: pd.DataFrame, t: ClaimInputs, who, against: str, subject: str, quantities) -> list[dict]:
    """Rows of curves ``who`` (a mask of the summary) against the curve of variant ``against`` on the same proxy:
    is each quantity larger (a direction, its support the share of paired resamples that agree)?"""
    rows = []
    for _, r in s[who].iterrows():
        other = s[(s["rm"] == r["rm"]) & (s["variant"] == against)]
        if not len(other):
            continue
        b = other.iloc[0]
        for q, text in quantities:
            support = paired_share(_reps(t, r["curve"]).get(q), _reps(t, b["curve"]).get(q))
            rows.append({"claim": f"{subject} {text} than {against}", "curve": r["curve"], "value": float(r[q]),
                         "reference": float(b[q]), "holds": bool(r[q] > b[q]), "support": support,
                         "detail": f"value: {q} of {r['variant']}; reference: {q} of {against} on {r['rm']}"
                                   + support_text(support)})
    return rows


def variant_rows(s: pd.DataFrame, t: ClaimInputs) -> list[dict]:
    """GRPO (base) against RLOO on each proxy, and each other variant against base: does it peak higher, at a
    larger KL, later, and fall further by the last step?"""
    return _directions(s, t, s["variant"] == BASE, RLOO, "GRPO", QUANTITIES) + \
        _directions(s, t, ~s["variant"].isin([BASE, RLOO]), BASE, "a GRPO variant", QUANTITIES[1:])


def size_rows(s: pd.DataFrame, t: ClaimInputs) -> list[dict]:
    """Does the KL at GRPO's (base) gold peak grow with proxy size: Spearman's rho of kl_peak against parameters
    > 0, on the run and on each paired resample?"""
    base = s[s["variant"] == BASE].sort_values("rm_params")
    if len(base) < 3:
        return []
    rho = float(pd.Series(base["kl_peak"].to_numpy()).corr(pd.Series(base["rm_params"].to_numpy()), method="spearman"))
    reps = [_reps(t, c).get("kl_peak") for c in base["curve"]]
    support = np.nan
    if all(x is not None for x in reps):
        ranks = pd.DataFrame(np.stack(reps, 1)).rank(axis=1).to_numpy()
        order = np.arange(len(base)) - (len(base) - 1) / 2
        support = float(np.mean((ranks - ranks.mean(1, keepdims=True)) @ order > 0))
    return [{"claim": "the KL at GRPO's gold peak grows with proxy size", "curve": f"GRPO base, {len(base)} proxies",
             "value": rho, "reference": 0.0, "holds": bool(rho > 0), "support": support,
             "detail": "value: Spearman correlation of the KL at the gold peak with proxy parameters"
                       + support_text(support)}]


def grpo_claims(t: ClaimInputs) -> list[dict]:
    s = t.table("grpo_summary")
    if s is None:
        return []
    return frontier_rows(s, t) + variant_rows(s, t) + size_rows(s, t)

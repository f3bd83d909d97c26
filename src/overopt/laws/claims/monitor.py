"""The monitor's own targets (issue 6), from monitor.csv: the monitor study's claims."""
from __future__ import annotations

from .base import ClaimInputs


def monitor_claims(t: ClaimInputs) -> list[dict]:
    """The monitor's targets (issue 6), for each reference it was given: median gold regret at its stop <= 10%,
    and it stops before half of the peak gain in at most 1 curve in 10."""
    mon, rows = t.table("monitor"), []
    if mon is None:
        return rows
    for ref, m in mon[mon["rule"] == "monitor"].groupby("reference", sort=False):
        early = m["early"].astype(str).str.lower() == "true"
        n = f"{len(m)} family RL curves, reference: {ref}"
        rows += [{"claim": "the monitor's median gold regret is at most 10%", "curve": n,
                  "value": float(m["regret"].median()), "reference": 0.1, "holds": bool(m["regret"].median() <= 0.1),
                  "detail": "regret = (gold peak - gold at the stop) / gold peak; " + (
                      "for comparison: this reference is gold labels of a small evaluation set" if "gold" in ref
                      else "the monitor never sees gold")},
                 {"claim": "the monitor stops before half of the peak gain in at most 1 run in 10", "curve": n,
                  "value": float(early.mean()), "reference": 0.1, "holds": bool(early.mean() <= 0.1),
                  "detail": "value: the share of curves stopped that early"}]
    return rows

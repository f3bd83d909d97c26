"""What every claim of `claims.csv` shares: the row's shape, the verdict rule, what a claim reads, and the table.

A claim is a function from the run's tables (`ClaimInputs`) to rows of `CLAIM_COLUMNS` (less ``verdict``, which
`claim_table` adds); each study declares its own (`studies.base.Study.claims`) and the fits study gathers them in
the registry's order. Each row states what was measured (``value``), what it is compared with (``reference``),
whether the claim holds on this run (``holds``) and, where the claim was measured again on every paired resample of
the evaluation prompts, the share on which it holds (``support``): a verdict stands only where AGREE of them agree.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np
import pandas as pd

from ..curves import CurveId

CLAIM_COLUMNS = ["claim", "curve", "value", "reference", "holds", "support", "verdict", "detail"]
# A verdict stands when at least this share of the paired prompt resamples reaches it too.
AGREE = 0.9
FORM_R2 = 0.9  # a curve follows its form when the form's R^2 is at least this (and above the quadratic's)


@dataclass(frozen=True)
class ClaimInputs:
    """What a claim reads: every table of the run so far by name (fits.csv and scaling.csv included), and each
    curve's quantities on the paired prompt resamples (`studies.fits`: curve -> quantity -> values)."""
    tables: Mapping[str, pd.DataFrame | None]
    replicates: Mapping[CurveId, Mapping[str, np.ndarray]] = field(default_factory=dict)

    def table(self, name: str) -> pd.DataFrame | None:
        """The named table, or None where the run has none (or an empty one)."""
        df = self.tables.get(name)
        return df if df is not None and len(df) else None

    def replicate(self, curve: CurveId) -> Mapping[str, np.ndarray]:
        return self.replicates.get(curve, {})


Claims = Callable[[ClaimInputs], list]


def claim_table(checks: list[Claims], inputs: ClaimInputs) -> pd.DataFrame:
    """Every row of every claim function in ``checks``, in order, with its verdict."""
    rows = [row for check in checks for row in check(inputs)]
    table = pd.DataFrame(rows, columns=CLAIM_COLUMNS)  # support is NaN on a row that has none
    table["verdict"] = [verdict(bool(h), float(s)) for h, s in zip(table["holds"], table["support"])]
    return table


def verdict(holds: bool, support: float) -> str:
    """"holds" or "does not hold" as the run's point estimate says, where at least AGREE of the prompt resamples
    say the same (or none were measured: ``support`` NaN); "inconclusive" otherwise."""
    if support != support:  # NaN
        return "holds" if holds else "does not hold"
    if holds and support >= AGREE:
        return "holds"
    if not holds and 1 - support >= AGREE:
        return "does not hold"
    return "inconclusive"


def verdict_counts(claims: pd.DataFrame) -> pd.DataFrame:
    """Per claim of a claims table as read back from disk (one run's or a sweep's): on how many rows it holds, on
    how many it is inconclusive, and how many were checked. A row written before claims.csv had a verdict
    column takes it from ``holds``."""
    old = (claims["holds"].astype(str).str.lower() == "true").map({True: "holds", False: "does not hold"})
    v = claims["verdict"].fillna(old) if "verdict" in claims else old
    return claims.assign(held=v == "holds", open=v == "inconclusive").groupby("claim", sort=False).agg(
        holds=("held", "sum"), inconclusive=("open", "sum"), checked=("held", "size")).reset_index()


def paired_share(a, b) -> float:
    """Share of resamples on which ``a`` exceeds ``b``, replicate by replicate (the shorter sets the count); NaN
    when either was not resampled."""
    if a is None or b is None or not min(len(a), len(b)):
        return np.nan
    n = min(len(a), len(b))
    return float(np.mean(np.asarray(a[:n]) > np.asarray(b[:n])))


def support_text(support: float) -> str:
    return "" if support != support else "; support: share of the paired prompt resamples on which it holds"


def family_replicates(replicates: Mapping, names, coef: str) -> np.ndarray | None:
    """[B, len(names)]: ``coef`` of each named proxy's best-of-n gold curve on the paired prompt resamples
    (`studies.fits`); None unless every one of them has it."""
    curves = [replicates.get(CurveId("bon", rm), {}) for rm in names]
    return np.stack([c[coef] for c in curves], 1) if all(coef in c for c in curves) else None

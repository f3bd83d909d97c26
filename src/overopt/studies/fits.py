"""The laws fitted to every curve of the run, and what the run says of the papers' claims: `fits.csv` (the chosen
and rejected forms per curve, with bootstrap intervals), `scaling.csv` (coefficients against proxy size and data
size, Gao et al. Figs. 3 and 4) and `claims.csv`.

Nothing here names another study: each registered study declares the fit rows of its curves (``fits``), their
quantities on the prompt resamples (``replicates``) and the claims it checks (``claims``), and `fits_study`, given
the registry's studies, reads every declaration in the registry's order and needs every study that makes one."""
from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd

from .. import laws
from ..laws.claims import ClaimInputs, claim_table, family_replicates, scaling_claims
from ..laws.curves import FIT_ID_COLUMNS, data_sweep
from ..pipeline.artifacts import Artifacts
from ..pipeline.run import Run
from .base import Output, Study

FIT_COLUMNS = ["curve", "form", "alpha", "beta", "alpha_lo", "alpha_hi", "beta_lo", "beta_hi", "r2",
               "kl_peak", "gain_peak", "kl_peak_lo", "kl_peak_hi", "gain_peak_lo", "gain_peak_hi", "n_points", "gamma"]
FIT_TABLE_COLUMNS = FIT_COLUMNS + FIT_ID_COLUMNS
OWN_CLAIMS = (scaling_claims,)  # the fits study's own: the coefficients' trends in scaling.csv


def scaling_axes(c, rm_df: pd.DataFrame) -> list[tuple[str, list[str], np.ndarray]]:
    """(axis, proxy names, axis values): the family against parameters, and the data-size sweep (one size at every
    n_train, the family's own included) against training pairs when the run has one."""
    family = rm_df[rm_df["n_train"] == c.rm.n_train]
    axes = [("params", family["rm"].tolist(), family["params"].to_numpy(dtype=float))]
    sweep = data_sweep(rm_df)
    if sweep is not None:
        axes.append(("data", sweep["rm"].tolist(), sweep["n_train"].to_numpy(dtype=float)))
    return axes


def scaling_table(c, bon_df: pd.DataFrame, fits_df: pd.DataFrame, rm_df: pd.DataFrame,
                  replicates: dict | None = None) -> pd.DataFrame:
    """Each best-of-n coefficient, the observed gold peak, gold at n = N and validation accuracy against proxy size
    (Gao et al. Fig. 3) and against training pairs (Fig. 4): coef = intercept + slope log10(axis); the RL betas
    against size. ``replicates`` (the studies' prompt resamples) gives the best-of-n rows their support."""
    chosen = fits_df[fits_df["form"] == "bon"].set_index("curve")
    acc = rm_df.set_index("rm")["val_acc"]
    replicates = replicates or {}
    scal, axes = [], scaling_axes(c, rm_df)
    for axis, names, x in axes:
        def fit(values, coef):
            reps = family_replicates(replicates, names, coef)
            scal.append(vars(laws.fit_scaling(x, np.asarray(values, dtype=float), coef, axis, c.fit.ci, reps)))
        for coef in ("alpha", "beta", "kl_peak", "gain_peak"):
            fit([chosen[coef].get(f"bon/gold/{rm}", np.nan) for rm in names], f"{coef}_bon")
        curves = [bon_df[bon_df["rm"] == rm] for rm in names]
        fit([g["gold"].max() for g in curves], "gold_peak")
        fit([g.loc[g["n"].idxmax(), "gold"] for g in curves], "gold_at_N")
        fit(acc[names].to_numpy(), "val_acc")
    params = rm_df.set_index("rm")["params"]
    for form, name in (("rl", "beta_rl"), ("rl_shared_alpha", "beta_rl_shared_alpha")):
        rows = fits_df[(fits_df["form"] == form) & (fits_df["method"] == "rl") & (fits_df["variant"] == "family")]
        rows = rows[rows["rm"].isin(axes[0][1])]
        if len(rows) > 1:
            scal.append(vars(laws.fit_scaling(params[rows["rm"]].to_numpy(), rows["beta"].to_numpy(), name,
                                              "params", c.fit.ci)))
    return pd.DataFrame(scal)


def run_fits(studies, run: Run, art: Artifacts, before: dict) -> Output:
    """fits.csv from every study's ``fits``, scaling.csv, and claims.csv from every study's ``claims`` (then the
    fits study's own), all in the registry's order; a study that did not run adds nothing."""
    c = run.cfg
    ran = [s for s in studies if s.name in before]
    with run.stage("tables"):
        fits_df = pd.DataFrame([row for s in ran if s.fits for row in s.fits(c, before[s.name])]
                               ).reindex(columns=FIT_TABLE_COLUMNS)
        replicates = {curve: q for s in ran if s.replicates for curve, q in s.replicates(c, before[s.name]).items()}
        tables = {name: df for out in before.values() for name, df in out.tables.items()}
        scaling = scaling_table(c, tables["bon"], fits_df, pd.DataFrame([p.row() for p in art.proxies]), replicates)
        inputs = ClaimInputs({**tables, "fits": fits_df, "scaling": scaling}, replicates)
        claims = claim_table([check for s in ran for check in s.claims] + list(OWN_CLAIMS), inputs)
        return Output({"fits": fits_df, "scaling": scaling, "claims": claims})


def fits_study(studies) -> Study:
    """The fits study over ``studies`` (those that run before it): it needs every one that declares fits,
    replicates or claims."""
    needs = tuple(s.name for s in studies if s.fits or s.replicates or s.claims)
    return Study("fits", partial(run_fits, tuple(studies)), tables=("fits", "scaling", "claims"), needs=needs,
                 claims=OWN_CLAIMS)

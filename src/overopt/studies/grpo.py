"""GRPO and its variants against the family's proxies, beside RLOO on the same proxies and steps: `grpo.csv` (every
evaluation of every GRPO curve, and RLOO's curves on those proxies copied from rl.csv with variant "rloo") and
`grpo_summary.csv` (per curve: the gold peak, the KL and the step at it, the fall after it, the gold gap to RLOO at
equal KL, and the RL form against its alternatives, each with a 90% interval over prompt resamples). The curves are
evaluated as every RL curve (`pipeline.curves.run_curve`), so GRPO, RLOO and best-of-n share one x-axis. Its claims
(`laws.claims.grpo_claims`) read the summary and each curve's quantities on the paired resamples."""
from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pandas as pd

from .. import laws
from ..config import parse_grpo_variant
from ..laws.claims.grpo import grpo_claims
from ..laws.curves import CurveId
from ..measure.evaluator import EVAL_VERSION
from ..pipeline.artifacts import Artifacts
from ..pipeline.build import pi0_name
from ..pipeline.curves import curve_key, grpo_settings, pool_evaluator, rl_columns, run_curve
from ..pipeline.parallel import prefetch
from ..pipeline.run import Run
from ..stats import interval
from .base import Output, Study
from .rl import CurveJob

OPTION_COLUMNS = ["variant", "beta", "scale_rewards", "loss_type", "epsilon_high", "importance_sampling_level",
                  "kl_penalty"]
FORMS = ("rl", *laws.ALTERNATIVES["rl"], "bon")
RLOO = "rloo"  # the variant name of RLOO's curves in grpo.csv


def grpo_table_columns(dims) -> list[str]:
    return rl_columns(dims) + OPTION_COLUMNS


def grpo_jobs(run: Run, art: Artifacts) -> list[CurveJob]:
    """The base variant against grpo.sizes (every proxy when empty), every other variant against
    grpo.variant_sizes (grpo.sizes when empty); keyed like every RL curve, with the variant's settings."""
    c = run.cfg
    evaluator = pool_evaluator(run, art, art.scores)
    family = {p.name: p for p in art.family}
    sizes = list(c.grpo.sizes) or list(family)
    jobs = []
    for spec in c.grpo.variants:
        settings = grpo_settings(c, parse_grpo_variant(spec))
        for name in (sizes if spec == "base" else list(c.grpo.variant_sizes) or sizes):
            p = family[name]
            curve = f"{name}/grpo:{spec}"
            key = curve_key(c, asdict(settings.grpo), settings.kl_coef, p.key, art.pool.key, curve, EVAL_VERSION)
            jobs.append(CurveJob(p, curve, settings, art.pi0, evaluator, spec, pi0_name(c), penalty=settings.kl_coef,
                                 key=key))
    return jobs


def options(job: CurveJob) -> dict:
    g = job.settings.grpo
    return {"variant": job.variant, "beta": g.beta, "scale_rewards": g.scale_rewards, "loss_type": g.loss_type,
            "epsilon_high": g.upper, "importance_sampling_level": g.importance_sampling_level,
            "kl_penalty": job.settings.kl_coef}


def run_grpo(run: Run, art: Artifacts, before: dict) -> Output:
    c = run.cfg
    jobs = grpo_jobs(run, art)
    prefetch(run, [(j.key, lambda j=j: run_curve(run, art.world, j.ref, j.proxy, j.ev, j.key, f"grpo {j.curve}",
                                                 j.settings, j.curve)) for j in jobs], "rl", "grpo curves")
    rows, boots = [], {}
    for j in jobs:
        with run.stage(f"grpo {j.curve}") as st:
            st["cached"] = run.cache.has("rl", j.key)
            res = run_curve(run, art.world, j.ref, j.proxy, j.ev, j.key, f"grpo {j.curve}", j.settings, j.curve)
        rows += [{**r, **options(j)} for r in res["rows"]]
        boots[CurveId("grpo", j.curve)] = res["boot"]
    rl = before.get("rl")  # absent with rl.enabled false: GRPO's curves alone, no comparison with RLOO
    rl_df = rl.tables.get("rl") if rl is not None else None
    names = {j.proxy.name for j in jobs}
    if rl_df is not None and len(rl_df):  # RLOO's family curves on the same proxies, beside GRPO's
        fam = rl_df[(rl_df["variant"] == "family") & rl_df["rm"].isin(names)]
        for rm, g in fam.groupby("rm", sort=False):
            curve = f"{rm}/{RLOO}"
            rows += [{**r, "curve": curve, "variant": RLOO, "kl_penalty": r["kl_coef"]}
                     for r in g.drop(columns=["variant"]).to_dict("records")]
            boots[CurveId("grpo", curve)] = rl.boots[CurveId("rl", rm)]
    df = pd.DataFrame(rows).reindex(columns=grpo_table_columns(art.world.dims))
    return Output({"grpo": df, "grpo_summary": grpo_summary(df, boots, c.fit.ci)}, boots=boots)


def peak_replicates(g: pd.DataFrame, boot: np.ndarray) -> dict[str, np.ndarray]:
    """A curve's gold peak, the KL and step at it, and the fall from it to the last evaluation, on each prompt
    resample ([B] each; boot: [B, points] of the curve's gold)."""
    i = boot.argmax(1)
    return {"gold_peak": boot.max(1), "kl_peak": g["kl"].to_numpy()[i], "step_peak": g["step"].to_numpy()[i],
            "fall": boot.max(1) - boot[:, -1]}


def equal_kl_gap(kl0, gold0, kl1, gold1) -> np.ndarray:
    """Mean of gold1 - gold0 at curve 1's points inside curve 0's KL range (curve 0 interpolated linearly in
    sqrt(KL)); gold0, gold1: [..., points] (one curve or its resamples); NaN where no point is inside."""
    d0, d1 = np.sqrt(np.asarray(kl0, float)), np.sqrt(np.asarray(kl1, float))
    order = np.argsort(d0)
    inside = (d1 > 0) & (d1 <= d0.max())
    if not inside.any():
        return np.full(np.shape(gold1)[:-1], np.nan)
    g0 = np.apply_along_axis(lambda row: np.interp(d1[inside], d0[order], row[order]), -1, np.asarray(gold0))
    return (np.asarray(gold1)[..., inside] - g0).mean(-1)


def curve_replicates(df: pd.DataFrame, boots: dict) -> dict[CurveId, dict[str, np.ndarray]]:
    """Every curve of grpo.csv on the paired prompt resamples: its peak quantities, the R^2 of each form, and (GRPO
    curves) the equal-KL gold gap to RLOO on the same proxy."""
    out = {}
    for curve, g in df.groupby("curve", sort=False):
        b = boots[CurveId("grpo", curve)]
        reps = peak_replicates(g, b)
        kl = g["kl"].to_numpy()
        reps.update({f"r2/{form}": laws.replicate_fits(form, kl, b)[1] for form in FORMS})
        rloo = df[(df["rm"] == g["rm"].iloc[0]) & (df["variant"] == RLOO)]
        if g["variant"].iloc[0] != RLOO and len(rloo):
            reps["gap_vs_rloo"] = equal_kl_gap(rloo["kl"], boots[CurveId("grpo", rloo["curve"].iloc[0])], kl, b)
        out[CurveId("grpo", curve)] = reps
    return out


def grpo_summary(df: pd.DataFrame, boots: dict, ci: float) -> pd.DataFrame | None:
    """One row per curve: each quantity of `curve_replicates` measured on the curve itself, with its interval."""
    if not len(df):
        return None
    reps = curve_replicates(df, boots)
    rows = []
    for curve, g in df.groupby("curve", sort=False):
        r = reps[CurveId("grpo", curve)]
        gold, kl = g["gold"].to_numpy(), g["kl"].to_numpy()
        i = int(np.argmax(gold))
        point = {"gold_peak": gold[i], "kl_peak": kl[i], "step_peak": g["step"].iloc[i], "fall": gold[i] - gold[-1]}
        rloo = df[(df["rm"] == g["rm"].iloc[0]) & (df["variant"] == RLOO)]
        point["gap_vs_rloo"] = float(equal_kl_gap(rloo["kl"], rloo["gold"], kl, gold)) if "gap_vs_rloo" in r \
            else np.nan  # RLOO's own curves, and GRPO's where RLOO did not run
        row = {"curve": curve, "algo": g["algo"].iloc[0], "variant": g["variant"].iloc[0], "rm": g["rm"].iloc[0],
               "rm_params": g["rm_params"].iloc[0], "steps": int(g["step"].max()), "kl_end": kl[-1]}
        for name, v in point.items():
            q = r.get(name)
            lo, hi = interval(q, ci) if q is not None and np.isfinite(q).any() else (np.nan, np.nan)
            row.update({name: float(v), f"{name}_lo": float(lo), f"{name}_hi": float(hi)})
        r2 = {form: laws.fit(kl, gold, form, n_boot=0).r2 for form in FORMS}
        row.update({f"r2_{form}": v for form, v in r2.items()})
        row["best_form"] = max(r2, key=r2.get)
        rest = np.stack([r[f"r2/{f}"] for f in FORMS[1:]], 1)
        row["rl_best_share"] = float(np.mean(r["r2/rl"] >= np.nanmax(rest, 1)))
        rows.append(row)
    return pd.DataFrame(rows)


def grpo_replicates(c, out: Output) -> dict[CurveId, dict[str, np.ndarray]]:
    df = out.tables.get("grpo")
    return curve_replicates(df, out.boots) if df is not None and len(df) else {}


STUDY = Study("grpo", run_grpo, tables=("grpo", "grpo_summary"), section="grpo", needs=("rl",),
              claims=(grpo_claims,), replicates=grpo_replicates)

"""The laws fitted to every curve of the run, and what the run says of the papers' claims: `fits.csv` (the chosen
and rejected forms per curve, with bootstrap intervals), `scaling.csv` (coefficients against proxy size and
data size, Gao et al. Figs. 3 and 4), `extrapolation.csv` (fit on small n, predict at N), `claims.csv`, `forecast.csv` (the peak forecast
from every prefix of each family RL curve) and `samples.csv` (texts a reader can look at)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .. import laws
from ..laws.claims import claim_table, family_replicates
from ..laws.curves import FIT_ID_COLUMNS, data_sweep
from ..pipeline.artifacts import Artifacts
from ..pipeline.run import Run
from .base import Output, Study

FIT_COLUMNS = ["curve", "form", "alpha", "beta", "alpha_lo", "alpha_hi", "beta_lo", "beta_hi", "r2",
               "kl_peak", "gain_peak", "kl_peak_lo", "kl_peak_hi", "gain_peak_lo", "gain_peak_hi", "n_points", "gamma"]
FIT_TABLE_COLUMNS = FIT_COLUMNS + FIT_ID_COLUMNS


def _gamma(gold: laws.FitResult, proxy: laws.FitResult, kl: np.ndarray) -> float:
    """A curve's gamma (`laws.gamma`: the proxy-gold gap over the proxy's area) from its gold and proxy fits."""
    return laws.gamma(gold.form, (gold.alpha, gold.beta), (proxy.alpha, proxy.beta), float(np.max(kl)))


def bon_fits(c, bon_df: pd.DataFrame, boots: dict) -> tuple[list[dict], list[dict]]:
    """Every best-of-n curve: the chosen form and its alternatives on gold, the chosen form on the proxy, and the
    extrapolation check (fit on n <= fit.extrap_frac * N, predict at N)."""
    fits, extrap = [], []
    for rm, g in bon_df.groupby("rm", sort=False):
        kl, gold = g["kl_bound"].to_numpy(), g["gold"].to_numpy()
        ident = {"method": "bon", "rm": rm, "variant": "family" if g["n_train"].iloc[0] == c.rm.n_train else "data_size"}
        proxy = laws.fit(kl, g["proxy"].to_numpy(), "bon", ci=c.fit.ci, n_boot=c.bon.n_boot)
        for form in ("bon", *laws.ALTERNATIVES["bon"]):
            r = laws.fit(kl, gold, form, boot_gains=boots.get(rm), ci=c.fit.ci)
            fits.append({"curve": f"bon/gold/{rm}", **r.to_dict(), **ident, "reward": "gold",
                         **({"gamma": _gamma(r, proxy, kl)} if form == "bon" else {})})
        fits.append({"curve": f"bon/proxy/{rm}", **proxy.to_dict(), **ident, "reward": "proxy"})
        n = g["n"].to_numpy()
        N = int(n.max())
        early = n <= max(4, int(c.fit.extrap_frac * N))
        if early.sum() >= 3:
            r = laws.fit(kl[early], gold[early], "bon", ci=c.fit.ci, n_boot=c.bon.n_boot)
            pred = float(r.predict(kl[-1]))
            extrap.append({"rm": rm, "n_fit_max": int(n[early].max()), "n_target": N, "kl_target": kl[-1],
                           "gold_target": gold[-1], "gold_predicted": pred, "abs_error": abs(pred - gold[-1]),
                           "r2_early": r.r2})
    return fits, extrap


def curve_replicates(bon_df: pd.DataFrame, boots: dict, rl_df: pd.DataFrame | None, rl_boots: dict,
                     ens_boots: dict | None = None) -> dict[str, dict[str, np.ndarray]]:
    """fits.csv's curve id -> quantity -> its value on each bootstrap resample of the evaluation prompts: for every
    best-of-n gold curve the form's alpha, beta, KL and gain at the peak, the curve's peak and its value at n = N,
    and for it and every family RL curve the KL of its observed peak and the R^2 of its form and of the quadratic in
    KL ("r2/<form>"), and for every ensembles.csv curve its gold peak ("ensembles/<ensemble>/<objective>").
    `studies.bon` draws the same resamples for every proxy (and `studies.ensembles` for every ensemble curve), so a
    trend across proxies can be read on each resample (`laws.fit_scaling`'s support, the claims' support); RL curves
    resample their own prompts."""
    out = {}
    for rm, g in bon_df.groupby("rm", sort=False):
        reps, kl = boots.get(rm), g["kl_bound"].to_numpy()
        if reps is None:
            continue
        (coefs, r2), (_, r2_quad) = laws.replicate_fits("bon", kl, reps), laws.replicate_fits("quad_kl", kl, reps)
        peaks = np.array([laws.peak("bon", a, b) for a, b in coefs])
        out[f"bon/gold/{rm}"] = {"alpha_bon": coefs[:, 0], "beta_bon": coefs[:, 1], "kl_peak_bon": peaks[:, 0],
                                 "gain_peak_bon": peaks[:, 1], "gold_peak": reps.max(1),
                                 "gold_at_N": reps[:, int(np.argmax(g["n"].to_numpy()))],
                                 "kl_at_peak": kl[reps.argmax(1)], "r2/bon": r2, "r2/quad_kl": r2_quad}
    for curve, (kl, _) in family_curves(rl_df).items():
        if curve in rl_boots:
            reps = rl_boots[curve]
            out[f"rl/gold/{curve}"] = {"kl_at_peak": kl[reps.argmax(1)],
                                       **{f"r2/{form}": laws.replicate_fits(form, kl, reps)[1]
                                          for form in ("rl", "quad_kl")}}
    for curve, reps in (ens_boots or {}).items():
        out[f"ensembles/{curve}"] = {"gold_peak": reps.max(1)}
    return out


def family_curves(rl_df: pd.DataFrame | None) -> dict:
    """{curve: (kl, gold)} of the family's RL curves (one per proxy, no variant)."""
    if rl_df is None or not len(rl_df):
        return {}
    family = rl_df[rl_df["variant"] == "family"]
    return {c: (g["kl"].to_numpy(), g["gold"].to_numpy()) for c, g in family.groupby("curve", sort=False)}


def rl_fits(c, rl_df: pd.DataFrame | None, rl_boots: dict) -> list[dict]:
    """Every RL curve: the RL form, its alternatives and the best-of-n form; the family with one alpha shared."""
    fits = []
    if rl_df is None or not len(rl_df):
        return fits
    for curve, g in rl_df.groupby("curve", sort=False):
        kl, gold = g["kl"].to_numpy(), g["gold"].to_numpy()
        ident = {"method": "rl", "reward": "gold", "rm": g["rm"].iloc[0], "variant": g["variant"].iloc[0],
                 "policy": g["policy"].iloc[0]}
        proxy = g["proxy"].to_numpy()
        for form in ("rl", *laws.ALTERNATIVES["rl"], "bon"):
            r = laws.fit(kl, gold, form, boot_gains=rl_boots.get(curve), ci=c.fit.ci)
            extra = {"gamma": _gamma(r, laws.fit(kl, proxy, "rl", n_boot=0), kl)} if form == "rl" and np.isfinite(
                proxy).all() else {}
            fits.append({"curve": f"rl/gold/{curve}", **r.to_dict(), **ident, **extra})
    family = family_curves(rl_df)
    if len(family) > 1:
        alpha, betas, r2 = laws.fit_shared_alpha(family, "rl")
        for rm, b in betas.items():
            kp, gp = laws.peak("rl", alpha, b)
            fits.append({"curve": f"rl/gold/{rm}", "form": "rl_shared_alpha", "alpha": alpha, "beta": b,
                         "r2": r2[rm], "kl_peak": kp, "gain_peak": gp, "n_points": len(family[rm][0]),
                         "method": "rl", "reward": "gold", "rm": rm, "variant": "family"})
    return fits


def daa_fits(c, daa_df: pd.DataFrame | None) -> list[dict]:
    """Rafailov et al.: one curve per loss and policy size, pooling every beta and checkpoint."""
    fits = []
    if daa_df is None or not len(daa_df):
        return fits
    for (loss, policy), g in daa_df.groupby(["loss", "policy"], sort=False):
        for form in ("rl", "quad_kl"):
            r = laws.fit(g["kl"].to_numpy(), g["gold"].to_numpy(), form, ci=c.fit.ci, n_boot=c.bon.n_boot)
            fits.append({"curve": f"daa/gold/{loss}/pi0-{policy}", **r.to_dict(), "method": "daa", "reward": "gold",
                         "loss": loss, "policy": policy})
    return fits


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
    against size. ``replicates`` (`curve_replicates`) gives the best-of-n rows their support."""
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


def sample_table(run: Run, art: Artifacts) -> pd.DataFrame:
    """pi0's text beside the best-of-N choice of the smallest and largest proxy, for a few prompts."""
    c, world = run.cfg, art.world
    P, N = len(world.eval_prompt_idx), c.bon.pool_size
    family = art.family
    chosen = [family[0], family[-1]] if len(family) > 1 else family
    gold = art.pool_gold[0].reshape(P, N)
    toks = art.pool.tokens.reshape(P, N, -1)
    rows = []
    for i in run.rng("report.sample_prompts").choice(P, size=min(c.bon.n_examples, P), replace=False):
        prompt = world.prompt_text(world.eval_prompt_idx[i])
        rows.append({"prompt": prompt, "policy": "pi0", "rm": "", "text": world.decode(toks[i, 0]),
                     "gold": gold[i, 0], "proxy": np.nan})
        for p in chosen:
            scores = art.scores[p.name].reshape(P, N)
            j = int(np.argmax(scores[i]))
            rows.append({"prompt": prompt, "policy": f"best-of-{N}", "rm": p.name, "text": world.decode(toks[i, j]),
                         "gold": gold[i, j], "proxy": scores[i, j]})
    return pd.DataFrame(rows)


def run_fits(run: Run, art: Artifacts, before: dict) -> Output:
    c = run.cfg
    table = lambda study, name: before[study].tables.get(name) if study in before else None  # noqa: E731
    bon_df, rl_df, daa_df = table("bon", "bon"), table("rl", "rl"), table("daa", "daa")
    with run.stage("tables"):
        fits, extrap = bon_fits(c, bon_df, before["bon"].boots)
        rl_boots = before["rl"].boots if "rl" in before else {}
        fits += rl_fits(c, rl_df, rl_boots)
        fits += daa_fits(c, daa_df)
        fits_df = pd.DataFrame(fits).reindex(columns=FIT_TABLE_COLUMNS)
        replicates = curve_replicates(bon_df, before["bon"].boots, rl_df, rl_boots,
                                      before["ensembles"].boots if "ensembles" in before else None)
        scaling = scaling_table(c, bon_df, fits_df, pd.DataFrame([p.row() for p in art.proxies]), replicates)
        claims = claim_table(bon_df, rl_df, fits_df, table("daa", "daa_summary"), table("ensembles", "ensembles"),
                             table("ensembles", "ensemble_rl"), table("monitor", "monitor"), scaling, replicates,
                             table("draws", "draws"))
        # how well a partial RL curve forecasts its gold peak: every family curve, every prefix
        family = family_curves(rl_df)
        forecast = laws.forecast_table(family, "rl", n_boot=c.bon.n_boot // 2, ci=c.fit.ci) if family else None
        return Output({"fits": fits_df, "scaling": scaling,
                       "extrapolation": pd.DataFrame(extrap), "claims": claims, "forecast": forecast,
                       "samples": sample_table(run, art)})


STUDY = Study("fits", run_fits, tables=("fits", "scaling", "extrapolation", "claims", "forecast", "samples"),
              needs=("bon", "rl", "daa", "ensembles", "monitor", "draws"))

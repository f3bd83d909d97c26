"""Best-of-n against every proxy (Gao et al. 2022): the unbiased estimator over one pool of N pi0 samples per
held-out prompt, gold and proxy gains with bootstrap intervals over prompts, the analytic KL bound and the
Beirami et al. estimate (`bon.csv`); each proxy's KL-regularised optimum pi0 exp(r / beta) / Z estimated on
the same pool (`tilt.csv`), which RL curves are read against; the extrapolation check (`extrapolation.csv`: fit on
n <= fit.extrap_frac * N, predict at N) and texts a reader can look at (`samples.csv`). Its curves' fits, their
prompt resamples and its claims (`laws.claims.bon_claims`) go to the fits study."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .. import laws
from ..laws.claims import bon_claims
from ..laws.curves import CurveId
from ..measure import bon
from ..pipeline.artifacts import Artifacts
from ..pipeline.run import Run
from ..stats import bootstrap_rows, interval
from .base import Output, Study

def bon_columns(dims) -> list[str]:
    """bon.csv's columns in a world whose gold names ``dims`` (`World.dims`)."""
    return ["rm", "rm_params", "n_train", "n", "kl_bound", "kl_est", "proxy", "proxy_lo", "proxy_hi", "gold", "gold_lo",
            "gold_hi"] + [f"gold_{d}" for d in dims] + ["length"]
TILT_COLUMNS = ["rm", "rm_params", "beta", "kl", "proxy", "gold", "gold_lo", "gold_hi", "length"]


def bon_table(run: Run, art: Artifacts) -> tuple[pd.DataFrame, dict]:
    """bon.csv rows and, per proxy, the bootstrap replicates of the gold curve (for fit intervals)."""
    c, pool_gold = run.cfg, art.pool_gold
    P, N = len(art.world.eval_prompt_idx), c.bon.pool_size
    ns = bon.default_ns(N)
    gold = pool_gold.gold.reshape(P, N)
    dims = {k: v.reshape(P, N).astype(float) for k, v in pool_gold.dims.items()}
    logprob = art.pool.logprob.reshape(P, N)
    rows, boots = [], {}
    for p in art.proxies:
        proxy = art.scores[p.name].reshape(P, N)
        per_gold = bon.best_of_n_per_prompt(proxy, gold, ns)
        per_proxy = bon.best_of_n_per_prompt(proxy, proxy, ns)
        gain_gold = per_gold - per_gold[:, :1]   # n = 1 is pi0 itself
        gain_proxy = per_proxy - per_proxy[:, :1]
        bg = bootstrap_rows(gain_gold, c.bon.n_boot, run.seed("bon.resamples"))
        bp = bootstrap_rows(gain_proxy, c.bon.n_boot, run.seed("bon.resamples"))
        boots[CurveId("bon", p.name)] = bg
        (g_lo, g_hi), (p_lo, p_hi) = interval(bg, c.fit.ci), interval(bp, c.fit.ci)
        kl_est = bon.kl_estimate_pool(proxy, logprob, ns)
        dim_gain = {d: bon.best_of_n(proxy, dims[d], ns) - dims[d].mean() for d in art.world.dims}
        length = bon.best_of_n(proxy, dims["n_words"], ns)
        for j, n in enumerate(ns):
            rows.append({"rm": p.name, "rm_params": p.params, "n_train": p.n_train, "n": n,
                         "kl_bound": float(bon.kl_bound(n)), "kl_est": float(kl_est[j]),
                         "proxy": gain_proxy[:, j].mean(), "proxy_lo": p_lo[j], "proxy_hi": p_hi[j],
                         "gold": gain_gold[:, j].mean(), "gold_lo": g_lo[j], "gold_hi": g_hi[j],
                         **{f"gold_{d}": dim_gain[d][j] for d in art.world.dims}, "length": length[j]})
    return pd.DataFrame(rows, columns=bon_columns(art.world.dims)), boots


def tilt_table(run: Run, art: Artifacts) -> pd.DataFrame:
    """tilt.csv: per proxy, the KL-regularised optimum pi0 exp(r / beta) / Z estimated on the best-of-n pool
    (`bon.tilt_per_prompt`): the gold a KL-penalised optimizer converges to at each beta, and the most any
    optimizer gets at that KL within pi0's support. RL curves are read against it."""
    c, pool_gold = run.cfg, art.pool_gold
    P, N = len(art.world.eval_prompt_idx), c.bon.pool_size
    gold = pool_gold.gold.reshape(P, N)
    length = pool_gold.dims["n_words"].reshape(P, N).astype(float)
    rows = []
    for p in art.proxies:
        proxy = art.scores[p.name].reshape(P, N)
        betas = bon.tilt_betas(proxy)
        kl, w = bon.tilt_weights(proxy, betas)  # one set of weights for gold, proxy and length
        g, pr, ln = (np.einsum("pbn,pn->pb", w, v) for v in (gold, proxy, length))
        gain = g - gold.mean(1, keepdims=True)
        lo, hi = interval(bootstrap_rows(gain, c.bon.n_boot, run.seed("tilt.resamples")), c.fit.ci)
        for j, b in enumerate(betas):
            rows.append({"rm": p.name, "rm_params": p.params, "beta": b, "kl": kl[:, j].mean(),
                         "proxy": (pr[:, j] - proxy.mean(1)).mean(), "gold": gain[:, j].mean(),
                         "gold_lo": lo[j], "gold_hi": hi[j], "length": ln[:, j].mean()})
    return pd.DataFrame(rows, columns=TILT_COLUMNS)


def bon_fits(c, out: Output) -> list[dict]:
    """Every best-of-n curve: the chosen form and its alternatives on gold, the chosen form on the proxy."""
    fits = []
    for rm, g in out.tables["bon"].groupby("rm", sort=False):
        kl, gold = g["kl_bound"].to_numpy(), g["gold"].to_numpy()
        ident = {"method": "bon", "rm": rm, "variant": "family" if g["n_train"].iloc[0] == c.rm.n_train else "data_size"}
        proxy = laws.fit(kl, g["proxy"].to_numpy(), "bon", ci=c.fit.ci, n_boot=c.bon.n_boot)
        for form in ("bon", *laws.ALTERNATIVES["bon"]):
            r = laws.fit(kl, gold, form, boot_gains=out.boots.get(CurveId("bon", rm)), ci=c.fit.ci)
            fits.append({"curve": CurveId("bon", rm).fit_name(), **r.to_dict(), **ident, "reward": "gold",
                         **({"gamma": laws.fit_gamma(r, proxy, kl)} if form == "bon" else {})})
        fits.append({"curve": CurveId("bon", rm).fit_name("proxy"), **proxy.to_dict(), **ident, "reward": "proxy"})
    return fits


def extrapolation_table(c, bon_df: pd.DataFrame) -> pd.DataFrame:
    """Each proxy's best-of-n form fitted on n <= fit.extrap_frac * N and its prediction at N (Gao et al. fit on
    small n and predict large n)."""
    rows = []
    for rm, g in bon_df.groupby("rm", sort=False):
        kl, gold, n = g["kl_bound"].to_numpy(), g["gold"].to_numpy(), g["n"].to_numpy()
        N = int(n.max())
        early = n <= max(4, int(c.fit.extrap_frac * N))
        if early.sum() >= 3:
            r = laws.fit(kl[early], gold[early], "bon", ci=c.fit.ci, n_boot=c.bon.n_boot)
            pred = float(r.predict(kl[-1]))
            rows.append({"rm": rm, "n_fit_max": int(n[early].max()), "n_target": N, "kl_target": kl[-1],
                         "gold_target": gold[-1], "gold_predicted": pred, "abs_error": abs(pred - gold[-1]),
                         "r2_early": r.r2})
    return pd.DataFrame(rows)


def bon_replicates(c, out: Output) -> dict[CurveId, dict[str, np.ndarray]]:
    """For every best-of-n gold curve, on each prompt resample: the form's alpha, beta, KL and gain at the peak,
    the curve's peak and its value at n = N, the KL of its observed peak and the R^2 of its form and of the
    quadratic in KL ("r2/<form>"). Every proxy's curve is resampled on the same prompts, so a trend across proxies
    can be read on each resample (`laws.fit_scaling`'s support, the claims' support)."""
    out_reps = {}
    for rm, g in out.tables["bon"].groupby("rm", sort=False):
        reps, kl = out.boots.get(CurveId("bon", rm)), g["kl_bound"].to_numpy()
        if reps is None:
            continue
        (coefs, r2), (_, r2_quad) = laws.replicate_fits("bon", kl, reps), laws.replicate_fits("quad_kl", kl, reps)
        peaks = np.array([laws.peak("bon", a, b) for a, b in coefs])
        out_reps[CurveId("bon", rm)] = {
            "alpha_bon": coefs[:, 0], "beta_bon": coefs[:, 1], "kl_peak_bon": peaks[:, 0],
            "gain_peak_bon": peaks[:, 1], "gold_peak": reps.max(1), "gold_at_N": reps[:, int(np.argmax(g["n"].to_numpy()))],
            "kl_at_peak": kl[reps.argmax(1)], "r2/bon": r2, "r2/quad_kl": r2_quad}
    return out_reps


def sample_table(run: Run, art: Artifacts) -> pd.DataFrame:
    """pi0's text beside the best-of-N choice of the smallest and largest proxy, for a few prompts."""
    c, world = run.cfg, art.world
    P, N = len(world.eval_prompt_idx), c.bon.pool_size
    family = art.family
    chosen = [family[0], family[-1]] if len(family) > 1 else family
    gold = art.pool_gold.gold.reshape(P, N)
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


def run_bon(run: Run, art: Artifacts, before: dict) -> Output:
    with run.stage("bon table"):
        bon_df, boots = bon_table(run, art)
        return Output({"bon": bon_df, "tilt": tilt_table(run, art), "extrapolation": extrapolation_table(run.cfg, bon_df),
                       "samples": sample_table(run, art)}, boots=boots)


STUDY = Study("bon", run_bon, tables=("bon", "tilt", "extrapolation", "samples"), claims=(bon_claims,),
              fits=bon_fits, replicates=bon_replicates)

"""Best-of-n against every proxy (Gao et al. 2022): the unbiased estimator over one pool of N pi0 samples per
held-out prompt, gold and proxy gains with bootstrap intervals over prompts, the analytic KL bound and the
Beirami et al. estimate (`bon.csv`); and each proxy's KL-regularised optimum pi0 exp(r / beta) / Z estimated on
the same pool (`tilt.csv`), which RL curves are read against."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..config import GOLD_DIMS
from ..measure import bon
from ..pipeline.artifacts import Artifacts
from ..pipeline.run import Run
from ..stats import bootstrap_rows, interval
from .base import Output, Study

BON_COLUMNS = ["rm", "rm_params", "n_train", "n", "kl_bound", "kl_est", "proxy", "proxy_lo", "proxy_hi",
               "gold", "gold_lo", "gold_hi"] + [f"gold_{d}" for d in GOLD_DIMS] + ["length"]
TILT_COLUMNS = ["rm", "rm_params", "beta", "kl", "proxy", "gold", "gold_lo", "gold_hi", "length"]


def bon_table(run: Run, art: Artifacts) -> tuple[pd.DataFrame, dict]:
    """bon.csv rows and, per proxy, the bootstrap replicates of the gold curve (for fit intervals)."""
    c, pool_gold = run.cfg, art.pool_gold
    P, N = len(art.world.eval_prompt_idx), c.bon.pool_size
    ns = bon.default_ns(N)
    gold = pool_gold[0].reshape(P, N)
    dims = {k: v.reshape(P, N).astype(float) for k, v in pool_gold[1].items()}
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
        boots[p.name] = bg
        (g_lo, g_hi), (p_lo, p_hi) = interval(bg, c.fit.ci), interval(bp, c.fit.ci)
        kl_est = bon.kl_estimate_pool(proxy, logprob, ns)
        dim_gain = {d: bon.best_of_n(proxy, dims[d], ns) - dims[d].mean() for d in GOLD_DIMS}
        length = bon.best_of_n(proxy, dims["n_words"], ns)
        for j, n in enumerate(ns):
            rows.append({"rm": p.name, "rm_params": p.params, "n_train": p.n_train, "n": n,
                         "kl_bound": float(bon.kl_bound(n)), "kl_est": float(kl_est[j]),
                         "proxy": gain_proxy[:, j].mean(), "proxy_lo": p_lo[j], "proxy_hi": p_hi[j],
                         "gold": gain_gold[:, j].mean(), "gold_lo": g_lo[j], "gold_hi": g_hi[j],
                         **{f"gold_{d}": dim_gain[d][j] for d in GOLD_DIMS}, "length": length[j]})
    return pd.DataFrame(rows, columns=BON_COLUMNS), boots


def tilt_table(run: Run, art: Artifacts) -> pd.DataFrame:
    """tilt.csv: per proxy, the KL-regularised optimum pi0 exp(r / beta) / Z estimated on the best-of-n pool
    (`bon.tilt_per_prompt`): the gold a KL-penalised optimizer converges to at each beta, and the most any
    optimizer gets at that KL within pi0's support. RL curves are read against it."""
    c, pool_gold = run.cfg, art.pool_gold
    P, N = len(art.world.eval_prompt_idx), c.bon.pool_size
    gold = pool_gold[0].reshape(P, N)
    length = pool_gold[1]["n_words"].reshape(P, N).astype(float)
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


def run_bon(run: Run, art: Artifacts, before: dict) -> Output:
    with run.stage("bon table"):
        bon_df, boots = bon_table(run, art)
        return Output({"bon": bon_df, "tilt": tilt_table(run, art)}, boots=boots)


STUDY = Study("bon", run_bon, tables=("bon", "tilt"))

"""Training draws of the proxy family: how much of a seed's size trend is the draw of its proxies.

A run's family is one proxy per size, and its trend in beta_bon can turn on one proxy's initialisation. With
rm.draws = k every size trains k - 1 more times on the same pairs with other initialisation and data-order seeds
(`pipeline.proxies.train_members`: the monitor's members, whose cache they share); each draw's best-of-n gold curve
on the run's pool is fitted with the best-of-n form (Gao et al. 2022 eq. 1). `draws.csv`: per size and draw, its
validation accuracy, alpha, beta, KL and gain at the fitted peak, the observed gold peak and the fit's R^2 (draw 0 is
the family's proxy: its row is bon.csv's fit). `laws.claims.draw_claims` says on how many draws each trend is smooth.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .. import laws
from ..laws.claims import draw_claims
from ..measure import bon
from ..pipeline.artifacts import Artifacts
from ..pipeline.proxies import score_pool, train_members
from ..pipeline.run import Run
from .base import Output, Study

DRAW_COLUMNS = ["rm", "rm_params", "draw", "val_acc", "alpha", "beta", "kl_peak", "gain_peak", "gold_peak", "r2"]


def draw_table(run: Run, art: Artifacts) -> pd.DataFrame:
    c = run.cfg
    P, N = len(art.world.eval_prompt_idx), c.bon.pool_size
    ns = bon.default_ns(N)
    kl = bon.kl_bound(np.array(ns))
    gold = art.pool_gold.gold.reshape(P, N)
    rows = []
    draws = train_members(run, art.world, art.labelled, art.family, c.rm.draws, "draws")
    scores = {**art.scores, **score_pool(run, art.world, art.pool, [q for ps in draws.values() for q in ps[1:]])}
    for name, proxies in draws.items():
        for m, p in enumerate(proxies):
            value = bon.best_of_n(scores[p.name].reshape(P, N), gold, ns)
            gain = value - value[0]  # n = 1 is pi0
            f = laws.fit(kl, gain, "bon", n_boot=0)
            rows.append({"rm": name, "rm_params": p.params, "draw": m, "val_acc": p.val_acc, "alpha": f.alpha,
                         "beta": f.beta, "kl_peak": f.kl_peak, "gain_peak": f.gain_peak, "gold_peak": gain.max(),
                         "r2": f.r2})
    return pd.DataFrame(rows, columns=DRAW_COLUMNS)


def run_draws(run: Run, art: Artifacts, before: dict) -> Output:
    with run.stage("draws table"):
        return Output({"draws": draw_table(run, art)})


STUDY = Study("draws", run_draws, tables=("draws",), enabled=lambda c: c.rm.draws > 1, claims=(draw_claims,))

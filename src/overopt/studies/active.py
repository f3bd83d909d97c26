"""Active learning of a proxy: which pairs to send to the labeller.

Both strategies start from the same random active.start pairs and add active.per_round labels per round, up to
active.rounds rounds, from the family's unlabelled pi0 pairs:
  random         pairs drawn uniformly;
  disagreement   the pairs on which k proxies trained on the labels so far (differing by seed) disagree most:
                 the largest standard deviation over members of P(first preferred) = sigmoid(r(a) - r(b)).
After each round, member 0 of the round is read like any proxy: its accuracy against gold on the validation
pairs and best-of-n on the pool. `active.csv`: strategy, round, labels, val_acc, and the best-of-n gold peak
(its KL and gold at n = N).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..measure import bon
from ..models.reward import score
from ..pipeline.artifacts import Artifacts
from ..pipeline.proxies import score_pool, train_proxies
from ..pipeline.run import Run
from .base import Output, Study

ACTIVE_COLUMNS = ["strategy", "round", "labels", "val_acc", "disagreement", "gold_peak", "gold_peak_lo",
                  "gold_peak_hi", "kl_peak", "gold_at_N"]


def select_by_disagreement(margins: np.ndarray, labelled: np.ndarray, m: int) -> np.ndarray:
    """Indices of the ``m`` unlabelled pairs whose members disagree most.

    ``margins`` [members, pairs]: each member's r(a) - r(b); disagreement is the standard deviation over members of
    sigmoid(margin). Ties keep the lower index."""
    p = 1.0 / (1.0 + np.exp(-np.asarray(margins, dtype=np.float64)))
    d = np.where(labelled, -np.inf, p.std(0))
    order = np.argsort(-d, kind="stable")
    return order[: min(m, int((~labelled).sum()))]


def active_table(run: Run, art: Artifacts) -> pd.DataFrame:
    c, a, world, pool_gold = run.cfg, run.cfg.active, art.world, art.pool_gold
    train_all, val_true, center = art.labelled
    n = len(train_all)
    prompts = torch.tensor(world.prompt_ids[train_all.prompt_idx], device=run.device)
    ta = torch.tensor(art.pairs.a[:n].astype(np.int64), device=run.device)
    tb = torch.tensor(art.pairs.b[:n].astype(np.int64), device=run.device)
    P, N = len(world.eval_prompt_idx), c.bon.pool_size
    ns = bon.default_ns(N)
    gold = pool_gold.gold.reshape(P, N)
    rng = run.rng("active.start")
    start = rng.permutation(n)[: a.start]
    rows = []
    for strategy in ("random", "disagreement"):
        labelled = np.zeros(n, dtype=bool)
        labelled[start] = True
        pick = run.rng("active.random_pick")
        for r in range(a.rounds + 1):
            idx = np.flatnonzero(labelled)
            # round 0 is the same random start for both strategies: trained once
            tag = f"active/{strategy if r else 'start'}/r{r}/{a.start}/{a.per_round}/{a.k}"
            members = train_proxies(run, world, [
                dict(size=a.size, n=len(idx), train_all=train_all.subset(idx), val_true=val_true, center=center,
                     name=f"{a.size}@{strategy}/r{r}#{m}", member=m, tag=tag)
                for m in range(a.k if strategy == "disagreement" and r < a.rounds else 1)], f"active {strategy} r{r}")
            p0 = members[0]
            s = score_pool(run, world, art.pool, [p0])[p0.name].reshape(P, N)  # cached with the proxy
            g, lo, hi, _ = bon.gain_curve(s, gold, ns, c.bon.n_boot, run.seed("active.resamples"), c.fit.ci)
            j = int(np.argmax(g))
            dis = np.nan
            if r < a.rounds:
                if strategy == "disagreement":
                    margins = np.stack([score(m.model, prompts, ta, world.pad) - score(m.model, prompts, tb, world.pad)
                                        for m in members])
                    new = select_by_disagreement(margins, labelled, a.per_round)
                    dis = float((1 / (1 + np.exp(-margins[:, new]))).std(0).mean())
                else:
                    new = pick.choice(np.flatnonzero(~labelled), size=min(a.per_round, int((~labelled).sum())),
                                      replace=False)
                labelled[new] = True
            rows.append({"strategy": strategy, "round": r, "labels": len(idx), "val_acc": p0.val_acc,
                         "disagreement": dis, "gold_peak": float(g[j]), "gold_peak_lo": float(lo[j]),
                         "gold_peak_hi": float(hi[j]), "kl_peak": float(bon.kl_bound(ns[j])),
                         "gold_at_N": float(g[-1])})
    return pd.DataFrame(rows, columns=ACTIVE_COLUMNS)


def run_active(run: Run, art: Artifacts, before: dict) -> Output:
    return Output({"active": active_table(run, art)})


STUDY = Study("active", run_active, tables=("active",), section="active")

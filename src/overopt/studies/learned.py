"""What each proxy learned of gold. Gold is a weighted sum of named dimensions (`world.toy`), so a proxy's score
differences on the validation pairs can be read back as a weight on each dimension's share of the gold
difference, relative to its slope on the whole gold difference: 1 everywhere for a proxy that scores a multiple of
gold, 0 on a dimension it is blind to (and then above 1 on the others it scores instead). A family whose
larger members learn more of gold shows it here first; a dimension no size learns says where the world, the data
or the training, not the size, is the limit.

`learned.csv`: per proxy and dimension, its relative weight with a bootstrap interval over pairs, the share of
pairs that dimension decides (the largest share of the gold difference) and the proxy's accuracy on them, and the
R^2 of the proxy's score differences on the dimensions' shares. Toy world only (a Hugging Face gold has no named
dimensions).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..config import active_dims
from ..models.reward import score
from ..pipeline.artifacts import Artifacts
from ..pipeline.run import Run
from ..stats import interval
from .base import Output, Study

LEARNED_COLUMNS = ["rm", "rm_params", "n_train", "dimension", "weight", "weight_lo", "weight_hi", "decides",
                   "acc_decided", "r2"]


def dimension_weights(score_diff: np.ndarray, shares: np.ndarray) -> tuple[np.ndarray, float]:
    """Least squares score_diff ~ c0 + sum_d c_d x_d over pairs, x_d: dimension d's share of the gold difference
    (columns of ``shares``, summing to the gold difference); returns (c_d / k, R^2), k the least-squares slope of
    score_diff on the whole gold difference, so a proxy that scores k times gold weighs every dimension 1."""
    X = np.c_[shares, np.ones(len(shares))]
    coef, *_ = np.linalg.lstsq(X, score_diff, rcond=None)
    g = shares.sum(1)
    gc = g - g.mean()
    k = float((gc * (score_diff - score_diff.mean())).sum() / max((gc * gc).sum(), 1e-12))
    resid = score_diff - X @ coef
    ss = ((score_diff - score_diff.mean()) ** 2).sum()
    return coef[:-1] / (k if k != 0 else np.nan), float(1 - (resid ** 2).sum() / ss) if ss > 0 else np.nan


def gold_shares(world, gcfg, std: float, prompt_idx, a, b) -> np.ndarray:
    """[pairs, weighted dimensions]: each gold dimension's weighted difference a - b, in gold standard deviations."""
    da, db = world.gold_dims(prompt_idx, a, gcfg), world.gold_dims(prompt_idx, b, gcfg)
    return np.stack([getattr(gcfg, f"w_{d}") * (da[d] - db[d]) / std for d in active_dims(gcfg)], 1)


def learned_table(run: Run, art: Artifacts) -> pd.DataFrame:
    c, world = run.cfg, art.world
    _, val, _ = art.labelled
    shares = gold_shares(world, c.gold, art.gold_norm[1], val.prompt_idx, val.chosen, val.rejected)
    decides = np.abs(shares).argmax(1)
    gold_diff = shares.sum(1)
    prompts = torch.tensor(world.prompt_ids[val.prompt_idx], device=run.device)
    t = lambda a: torch.tensor(a.astype(np.int64), device=run.device)  # noqa: E731
    rng = run.rng("learned.resamples")
    boot = rng.integers(len(shares), size=(c.bon.n_boot // 2, len(shares)))
    rows = []
    for p in art.proxies:
        s = score(p.model, prompts, t(val.chosen), world.pad) - score(p.model, prompts, t(val.rejected), world.pad)
        w, r2 = dimension_weights(s, shares)
        lo, hi = interval(np.stack([dimension_weights(s[i], shares[i])[0] for i in boot]), c.fit.ci)
        right = np.sign(s) == np.sign(gold_diff)
        for j, d in enumerate(active_dims(c.gold)):
            on = decides == j
            rows.append({"rm": p.name, "rm_params": p.params, "n_train": p.n_train, "dimension": d, "weight": w[j],
                         "weight_lo": lo[j], "weight_hi": hi[j], "decides": float(on.mean()),
                         "acc_decided": float(right[on].mean()) if on.any() else np.nan, "r2": r2})
    return pd.DataFrame(rows, columns=LEARNED_COLUMNS)


def run_learned(run: Run, art: Artifacts, before: dict) -> Output:
    with run.stage("learned"):
        return Output({"learned": learned_table(run, art)})


STUDY = Study("learned", run_learned, tables=("learned",), enabled=lambda cfg: not cfg.hf.policy)

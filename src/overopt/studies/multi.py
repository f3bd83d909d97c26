"""Multi-objective rewards: one proxy per gold dimension, combined by weights.

Each dimension's proxy learns from the same pi0 pairs, labelled by that dimension alone (tied pairs left out).
On pi0's samples each is mapped to its dimension's share of gold (least squares: a_d), so the aggregate
sum_d v_d a_d r_d with v = 1 weighs the dimensions as gold does; ``multi.weights`` sets other v.

Tables: `multi.csv` (best-of-n and RL against the aggregate, with the single proxy of the same size beside it,
every gold dimension along each curve), `pareto.csv` (best-of-n at n = multi.pareto_n for random weight
vectors, and which are on the Pareto front of the dimensions' gains), `collapse.csv` (per curve and dimension:
where its gain peaks and whether it then falls, so the first to collapse is read off).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from ..config import GOLD_DIMS, active_dims
from ..measure import bon
from ..measure.evaluator import EVAL_VERSION
from ..measure.labels import label_pairs
from ..models.ensemble import WeightedSumRM
from ..models.reward import Proxy
from ..pipeline.artifacts import Artifacts
from ..pipeline.curves import curve_key, pool_evaluator, rl_settings, run_curve
from ..pipeline.proxies import score_pool, train_proxies
from ..pipeline.run import Run
from ..stats import ols_slope
from .base import Output, Study

MULTI_COLUMNS = ["method", "objective", "step", "n", "kl", "proxy", "gold", "gold_lo", "gold_hi"] + \
    [f"gold_{d}" for d in GOLD_DIMS] + ["length"]
PARETO_COLUMNS = ["point"] + [f"w_{d}" for d in GOLD_DIMS] + [f"gold_{d}" for d in GOLD_DIMS] + ["gold", "on_front"]
COLLAPSE_COLUMNS = ["method", "objective", "dimension", "kl_peak", "gain_peak", "gain_last", "falls"]


def pareto_front(points) -> np.ndarray:
    """Boolean mask of the points no other point dominates (every coordinate >=, one >; all maximised).

    A skyline sweep: in order of falling coordinate sum a point can only be dominated by one already seen, so
    each is checked against the front found so far only."""
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError("points must be [n, dims]")
    order = np.argsort(-p.sum(1), kind="stable")
    front: list[int] = []
    for i in order:
        f = p[front]
        if not len(front) or not np.any(np.all(f >= p[i], 1) & np.any(f > p[i], 1)):
            front.append(int(i))
    mask = np.zeros(len(p), dtype=bool)
    mask[front] = True
    return mask


def _dim_pairs(pairs: dict, dim_a: np.ndarray, dim_b: np.ndarray):
    """The pairs ordered by one gold dimension, ties left out (they say nothing about it)."""
    keep = dim_a != dim_b
    lab = label_pairs(pairs["prompt_idx"][keep], pairs["a"][keep], pairs["b"][keep], dim_a[keep], dim_b[keep], 0.0,
                      np.random.default_rng(0))
    return lab, keep


def build_dimension_proxies(run: Run, art: Artifacts) -> list[Proxy]:
    """One proxy of multi.size per gold dimension, trained (or loaded) on the pairs that dimension orders."""
    c, world, pairs_data, center = run.cfg, art.world, art.pairs, art.labelled.center
    n_tr = c.rm.n_train
    da = world.gold_dims(pairs_data.prompt_idx, pairs_data.a, c.gold)
    db = world.gold_dims(pairs_data.prompt_idx, pairs_data.b, c.gold)
    sides = {"prompt_idx": pairs_data.prompt_idx, "a": pairs_data.a, "b": pairs_data.b}
    split = {k: v[:n_tr] for k, v in sides.items()}
    val_split = {k: v[n_tr:] for k, v in sides.items()}
    jobs, dims = [], active_dims(c.gold)
    for d in dims:
        train, _ = _dim_pairs(split, da[d][:n_tr], db[d][:n_tr])
        val, keep = _dim_pairs(val_split, da[d][n_tr:], db[d][n_tr:])
        # the centring set is the validation pairs' two sides, in the order train_proxy expects
        n_val = len(pairs_data.prompt_idx) - n_tr
        idx = np.concatenate([np.flatnonzero(keep), n_val + np.flatnonzero(keep)])
        cen = (center[0][idx], center[1][idx]) if len(idx) else center
        jobs.append(dict(size=c.multi.size, n=len(train), train_all=train, val_true=val, center=cen, name=f"dim/{d}",
                         tag=f"dim/{d}"))
    proxies = train_proxies(run, world, jobs, "dimension proxies")
    return [replace(p, dimension=d) for p, d in zip(proxies, dims)]


def _to_gold_units(run: Run, dims: dict, scores: dict, gold_norm) -> dict[str, float]:
    """a_d: least-squares slope of dimension d's share of gold (w_d dim_d / gold std) on its proxy's score."""
    g = run.cfg.gold
    return {d: ols_slope(scores[d], getattr(g, f"w_{d}") * dims[d] / gold_norm[1]) for d in scores}


def multi_tables(run: Run, art: Artifacts, dim_proxies: list[Proxy]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    c, m, world, pool_gold, family_scores = run.cfg, run.cfg.multi, art.world, art.pool_gold, art.scores
    P, N = len(world.eval_prompt_idx), c.bon.pool_size
    ns = bon.default_ns(N)
    raw = score_pool(run, world, art.pool, dim_proxies)
    scores = {p.dimension: raw[p.name] for p in dim_proxies}
    a = _to_gold_units(run, pool_gold.dims, scores, art.gold_norm)
    v = np.array(m.weights, dtype=float) if m.weights else np.ones(len(scores))
    agg = sum(v[i] * a[d] * scores[d] for i, d in enumerate(active_dims(c.gold)))
    gold = pool_gold.gold.reshape(P, N)
    dims = {d: pool_gold.dims[d].reshape(P, N).astype(float) for d in GOLD_DIMS}
    words = pool_gold.dims["n_words"].reshape(P, N).astype(float)
    objectives = {"aggregate": agg}
    if m.size in family_scores:
        objectives[f"single proxy {m.size}"] = family_scores[m.size]
    rows = []
    for obj, r in objectives.items():
        r = r.reshape(P, N)
        g, lo, hi, _ = bon.gain_curve(r, gold, ns, c.bon.n_boot, run.seed("multi.resamples"), c.fit.ci)
        px = bon.best_of_n(r, r, ns)
        dg = {d: bon.best_of_n(r, dims[d], ns) - dims[d].mean() for d in GOLD_DIMS}
        ln = bon.best_of_n(r, words, ns)
        for j, n in enumerate(ns):
            rows.append({"method": "best-of-n", "objective": obj, "step": np.nan, "n": n, "kl": float(bon.kl_bound(n)),
                         "proxy": px[j] - px[0], "gold": g[j], "gold_lo": lo[j], "gold_hi": hi[j],
                         **{f"gold_{d}": dg[d][j] for d in GOLD_DIMS},
                         "length": ln[j]})
    if m.rl and c.rl.enabled:
        rows += _rl_rows(run, art, dim_proxies, a, v, agg)
    multi = pd.DataFrame(rows, columns=MULTI_COLUMNS)
    return multi, pareto_table(run, world, scores, a, pool_gold), collapse_table(multi)


def _rl_rows(run: Run, art: Artifacts, dim_proxies: list[Proxy], a: dict, v, agg) -> list[dict]:
    c = run.cfg
    coefs = [v[i] * a[p.dimension] for i, p in enumerate(dim_proxies)]
    model = WeightedSumRM([p.model for p in dim_proxies], coefs).to(run.device)
    proxy = Proxy("multi/aggregate", sum(p.params for p in dim_proxies), model)
    evaluator = pool_evaluator(run, art, {"multi/aggregate": agg})
    key = curve_key(c, [p.key for p in dim_proxies], list(coefs), art.pool.key, EVAL_VERSION)
    with run.stage("rl multi/aggregate") as st:
        st["cached"] = run.cache.get("rl", key) is not None
        res = run_curve(run, art.world, art.pi0, proxy, evaluator, key, "rl multi/aggregate", rl_settings(c),
                        "multi/aggregate")
    return [{"method": "rl", "objective": "aggregate", "n": np.nan, **r} for r in res["rows"]]


def pareto_table(run: Run, world, scores: dict, a: dict, pool_gold) -> pd.DataFrame:
    """Best-of-n at n = multi.pareto_n for weight vectors drawn uniformly on the simplex (and each dimension
    alone; weights multiply the gold's own, as multi.weights): each dimension's gain (its own units, as in
    bon.csv), the gold gain, and whether the point is on the Pareto front of the dimensions' gains."""
    c, m = run.cfg, run.cfg.multi
    P, N = len(world.eval_prompt_idx), c.bon.pool_size
    active = active_dims(c.gold)
    k = len(active)
    rng = run.rng("multi.pareto_weights")
    W = np.concatenate([np.eye(k), rng.dirichlet(np.ones(k), size=max(m.pareto_points - k, 0))]) * k
    dims = {d: pool_gold.dims[d].reshape(P, N).astype(float) for d in GOLD_DIMS}
    gold = pool_gold.gold.reshape(P, N)
    rows = []
    for i, w in enumerate(W):
        r = sum(w[j] * a[d] * scores[d] for j, d in enumerate(active)).reshape(P, N)
        gains = {f"gold_{d}": float(bon.best_of_n(r, dims[d], [m.pareto_n])[0] - dims[d].mean()) for d in GOLD_DIMS}
        rows.append({"point": i, **{f"w_{d}": 0.0 for d in GOLD_DIMS}, **{f"w_{d}": w[j] for j, d in enumerate(active)},
                     **gains,
                     "gold": float(bon.best_of_n(r, gold, [m.pareto_n])[0] - gold.mean())})
    df = pd.DataFrame(rows)
    df["on_front"] = pareto_front(df[[f"gold_{d}" for d in active]].to_numpy())
    return df.reindex(columns=PARETO_COLUMNS)


def collapse_table(multi: pd.DataFrame) -> pd.DataFrame:
    """Per curve and gold dimension: the KL where its gain peaks, the gain there and at the end, and whether it
    falls after the peak (by more than a tenth of the peak's size, or below zero)."""
    rows = []
    for (method, obj), g in multi.groupby(["method", "objective"], sort=False):
        g = g.sort_values("kl")
        for d in GOLD_DIMS:
            y = g[f"gold_{d}"].to_numpy()
            i = int(np.argmax(y))
            falls = bool(i < len(y) - 1 and (y[-1] < y[i] - 0.1 * abs(y[i]) or y[-1] < 0 < y[i]))
            rows.append({"method": method, "objective": obj, "dimension": d, "kl_peak": float(g["kl"].iloc[i]),
                         "gain_peak": float(y[i]), "gain_last": float(y[-1]), "falls": falls})
    return pd.DataFrame(rows, columns=COLLAPSE_COLUMNS)


def run_multi(run: Run, art: Artifacts, before: dict) -> Output:
    dim_proxies = build_dimension_proxies(run, art)
    with run.stage("multi-objective"):
        multi, pareto, collapse = multi_tables(run, art, dim_proxies)
    return Output({"multi": multi, "pareto": pareto, "collapse": collapse})


STUDY = Study("multi", run_multi, tables=("multi", "pareto", "collapse"), section="multi")

"""Gold-free signals as detectors of "gold is past its peak", on every family RL curve of the run
(`overopt.online.detectors` defines them). Gold only labels the points afterwards: past_peak is 1 at every
evaluation after the curve's gold peak.

Each signal is oriented so that larger means later (proxy_slope and entropy are negated: the proxy's gain per
unit sqrt(KL) shrinks as optimization goes on, and the policy narrows) and scored two ways: its ROC AUC against
past_peak over every evaluation of every curve (0.5: no better than chance; the KL's own AUC is the baseline to
beat), and as a stop rule, stop at the first evaluation where it reaches a threshold chosen on the other curves
(`detectors.leave_one_out`), with the gold regret there and whether it stopped before half of the peak gain (early).

detectors.csv: curve, rm, step, kl, gold, past_peak, and one column per signal (as computed, not oriented)
Each family size also gets budget.disjoint_members proxies trained on disjoint slices of its pairs (an ensemble
diverse by construction, against the monitor's same-data members): their spread is disjoint_spread.
detector_summary.csv: signal, direction, auc, regret (median over curves), regret_max, early (fraction of curves)
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..models.reward import features, score
from ..online.detectors import leave_one_out, mahalanobis, outlier_share, regret, roc_auc, stopped_early
from ..pipeline.artifacts import Artifacts
from ..pipeline.proxies import calibrate, train_proxies
from ..pipeline.run import Run
from .base import Output, Study

DIRECTION = {"kl": 1, "kl_rate": 1, "proxy_slope": -1, "entropy": -1, "mahalanobis": 1, "outliers": 1, "size_spread": 1,
             "disjoint_spread": 1, "disagreement": 1}
REFERENCE_SAMPLES = 8  # pi0 responses per held-out prompt (from the best-of-n pool) that define "like pi0"
SUMMARY_COLUMNS = ["signal", "direction", "auc", "regret", "regret_max", "early"]


def _diff_rate(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """(y_j - y_{j-1}) / (x_j - x_{j-1}), NaN at the first point and where x did not move."""
    dx, dy = np.diff(x), np.diff(y)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.concatenate([[np.nan], np.where(dx > 0, dy / dx, np.nan)])


def _spread(scores: list, scales: list) -> float:
    """The members' standard deviation per response, each score divided by its member's scale, averaged over the
    responses; NaN with fewer than two members."""
    if len(scores) < 2:
        return float("nan")
    return float(np.std([s / k for s, k in zip(scores, scales)], axis=0).mean())


def disjoint_members(run: Run, art: Artifacts) -> dict[str, list]:
    """{family proxy: budget.disjoint_members proxies of its size, each trained on its own disjoint slice of the
    family's pairs and calibrated (``scale``: its fitted temperature), so that they share no training pair}."""
    k = run.cfg.budget.disjoint_members
    if k < 2:
        return {}
    train_all, val_true, center = art.labelled
    trained = iter(train_proxies(run, art.world, [
        dict(size=p.size, n=p.n_train, train_all=train_all, val_true=val_true, center=center,
             name=f"{p.name}/slice{m}", member=m + 1, slices=k) for p in art.family for m in range(k)],
        "disjoint members"))
    out = {}
    for p in art.family:
        ms = [next(trained) for _ in range(k)]
        with run.stage(f"detectors calibration {p.name}"):
            out[p.name], _, _ = calibrate(run, art.world, ms, val_true)
    return out


@torch.no_grad()
def signal_table(run: Run, art: Artifacts, rl_df: pd.DataFrame, samples: dict, trace: pd.DataFrame | None = None,
                 disjoint: dict | None = None) -> pd.DataFrame:
    """One row per evaluation of every family curve: each signal, and past_peak from gold. ``disjoint``: the
    members of `disjoint_members`."""
    disjoint = disjoint or {}
    c, world = run.cfg, art.world
    P, S = c.rl.eval_prompts, c.rl.eval_samples
    prompts = torch.tensor(world.prompt_ids[np.repeat(world.eval_prompt_idx[:P], S)], device=run.device)
    n_pool = len(world.eval_prompt_idx)
    pool = art.pool.tokens.reshape(n_pool, c.bon.pool_size, -1)[:P, :REFERENCE_SAMPLES].reshape(-1, art.pool.tokens.shape[1])
    pool_prompts = torch.tensor(world.prompt_ids[np.repeat(world.eval_prompt_idx[:P], min(REFERENCE_SAMPLES,
                                                                                            c.bon.pool_size))],
                                device=run.device)
    family = {p.name: p for p in art.family}
    spread_of = {n: float(np.std(art.scores[n])) or 1.0 for n in family}
    rows = []
    for curve, toks in samples.items():
        name = curve.name
        if name not in family:
            continue
        g = rl_df[rl_df["curve"] == name].sort_values("step")
        proxy = family[name]
        ref = features(proxy.model, pool_prompts, torch.tensor(pool.astype(np.int64), device=run.device), world.pad)
        resp = [torch.tensor(t.astype(np.int64), device=run.device) for t in toks]
        d2 = [mahalanobis(ref, features(proxy.model, prompts, r, world.pad)) for r in resp]
        others = [q for q in family.values() if q.name != name]
        spread = [_spread([score(q.model, prompts, r, world.pad) for q in others], [spread_of[q.name] for q in others])
                  for r in resp]
        members = disjoint.get(name, [])
        dspread = [_spread([score(q.model, prompts, r, world.pad) for q in members], [q.scale for q in members])
                   for r in resp]
        kl, step, proxy_gain = g["kl"].to_numpy(), g["step"].to_numpy(float), g["proxy"].to_numpy()
        gold = g["gold"].to_numpy()
        dis = (trace[trace["curve"] == name].set_index("step")["disagreement"].reindex(g["step"]).to_numpy()
               if trace is not None and len(trace) else np.full(len(g), np.nan))
        peak = int(np.argmax(gold))
        kl_rate, proxy_slope = _diff_rate(kl, step), _diff_rate(proxy_gain, np.sqrt(kl))
        for j in range(len(g)):
            rows.append({"curve": name, "rm": name, "step": int(step[j]), "kl": float(kl[j]), "gold": float(gold[j]),
                         "past_peak": j > peak, "kl_rate": kl_rate[j],
                         "proxy_slope": proxy_slope[j], "entropy": float(g["entropy"].iloc[j]),
                         "mahalanobis": float(d2[j].mean() / ref.shape[1]),
                         "outliers": outlier_share(d2[j], ref.shape[1]), "size_spread": float(spread[j]),
                         "disjoint_spread": float(dspread[j]),
                         "disagreement": float(dis[j])})
    return pd.DataFrame(rows)


def summary_table(df: pd.DataFrame, group: str | None = None) -> pd.DataFrame:
    """One row per signal: its AUC over every point, and its stop rule's regret with thresholds from the other
    curves; with ``group`` (a column such as run.seed in a sweep's detectors.csv) from the other groups' curves."""
    rows = []
    keys = [group, "curve"] if group else ["curve"]
    for signal, sign in DIRECTION.items():
        if signal not in df or not df[signal].notna().any():
            continue
        parts = dict(list(df.groupby(keys, sort=False)))
        curves = {k: (sign * g[signal].to_numpy(float), g["gold"].to_numpy(float)) for k, g in parts.items()}
        groups = {k: k[0] for k in curves} if group else None
        stops = leave_one_out(curves, groups) if len({*groups.values()} if groups else curves) > 1 else {}
        reg = [regret(curves[k][1], i) for k, (_, i) in stops.items()]
        early = [stopped_early(curves[k][1], i) for k, (_, i) in stops.items()]
        rows.append({"signal": signal, "direction": sign, "auc": roc_auc(sign * df[signal], df["past_peak"]),
                     "regret": float(np.nanmedian(reg)) if reg else np.nan,
                     "regret_max": float(np.nanmax(reg)) if reg else np.nan,
                     "early": float(np.mean(early)) if early else np.nan})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def run_detectors(run: Run, art: Artifacts, before: dict) -> Output:
    rl = before.get("rl")
    if rl is None or not rl.samples:
        return Output({})
    trace = before["monitor"].tables.get("monitor_trace") if "monitor" in before else None
    disjoint = disjoint_members(run, art)
    with run.stage("detectors"):
        df = signal_table(run, art, rl.tables["rl"], rl.samples, trace, disjoint)
        return Output({"detectors": df, "detector_summary": summary_table(df)})


STUDY = Study("detectors", run_detectors, tables=("detectors", "detector_summary"),
              enabled=lambda cfg: cfg.budget.enabled and cfg.rl.enabled, needs=("rl", "monitor"))

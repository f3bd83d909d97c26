"""Reward-model ensembles and calibration (Coste et al. 2023), on the best-of-n and RL yardsticks.

For each size in ensemble.sizes and each label-flip rate in ensemble.noise, k proxies that differ only
by seed are trained on the same pairs; member 0 at the run's own noise is the family's proxy. Each
member is put on one scale (its scores divided by its fitted temperature, so they are calibrated
logits), then combined by mean, WCO or UWO (`reward.ensemble_objective`). Every curve, the single
member's included, logs the ensemble's disagreement (the members' standard deviation).

Tables: `calibration.csv` and `reliability.csv` (every proxy of the run, against gold labels),
`ensembles.csv` (best-of-n per ensemble and objective), `ensemble_rl.csv` (RL per ensemble and objective).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from . import bon
from .reward import EnsembleRM, fit_temperature, reliability, score
from .rlrun import EVAL_VERSION, RL_COLUMNS, Evaluator, rl_settings, run_curve

CALIBRATION_COLUMNS = ["rm", "size", "noise", "member", "n_train", "val_acc", "tau", "ece", "ece_calibrated"]
RELIABILITY_COLUMNS = ["rm", "calibrated", "bin_lo", "bin_hi", "count", "confidence", "accuracy"]
ENSEMBLE_COLUMNS = ["ensemble", "size", "noise", "objective", "n", "kl_bound", "proxy", "gold", "gold_lo", "gold_hi",
                    "disagreement", "length"]
ENSEMBLE_RL_COLUMNS = ["ensemble", "noise", "objective"] + RL_COLUMNS + ["disagreement"]


def ensemble_name(size: str, noise: float) -> str:
    return f"{size}/noise{noise:g}"


def build_ensembles(run, world, pairs_data) -> list[dict]:
    """Train (or load) k members per size and noise rate: [{"name", "size", "noise", "members", "val", "center"}]."""
    from .experiment import labelled_pairs, train_proxy

    c, e = run.cfg, run.cfg.ensemble
    out = []
    for size in e.sizes:
        for noise in e.noise:
            train_all, val_true, center = labelled_pairs(run, world, pairs_data, noise)
            name = ensemble_name(size, noise)
            members = [train_proxy(run, world, size, c.rm.n_train, train_all, val_true, center, f"{name}#{m}",
                                   noise=float(noise), member=m, bootstrap=e.bootstrap) for m in range(e.k)]
            for m, p in enumerate(members):
                p.update(noise=float(noise), member=m, ensemble=name)
            out.append({"name": name, "size": size, "noise": float(noise), "members": members, "val": val_true,
                        "center": center})
    return out


def _val_diffs(run, world, proxy: dict, val) -> tuple[np.ndarray, np.ndarray]:
    """Score differences on the validation pairs, each pair shown in a random order, and which side gold prefers."""
    prompts = torch.tensor(world.prompt_ids[val.prompt_idx], device=run.device)
    rc = score(proxy["model"], prompts, torch.tensor(val.chosen.astype(np.int64), device=run.device), world.pad)
    rr = score(proxy["model"], prompts, torch.tensor(val.rejected.astype(np.int64), device=run.device), world.pad)
    first = np.random.default_rng([run.cfg.run.seed, 70]).random(len(rc)) < 0.5
    return np.where(first, rc - rr, rr - rc), first


def calibrate(run, world, proxies: list[dict], val) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Temperature of every proxy fitted on the first half of the validation pairs; ECE before and after on the
    second half, with the reliability diagram of each. Sets ``proxy["tau"]``."""
    rows, bins = [], []
    for p in proxies:
        d, y = _val_diffs(run, world, p, val)
        h = len(d) // 2
        tau = fit_temperature(d[:h], y[:h])
        p["tau"] = tau
        ece_raw, rel_raw = reliability(d[h:], y[h:], 1.0)
        ece_cal, rel_cal = reliability(d[h:], y[h:], tau)
        rows.append({"rm": p["rm"], "size": p["size"], "noise": p.get("noise", run.cfg.rm.label_noise),
                     "member": p.get("member", 0), "n_train": p["n_train"], "val_acc": p["val_acc"], "tau": tau,
                     "ece": ece_raw, "ece_calibrated": ece_cal})
        bins += [{"rm": p["rm"], "calibrated": False, **r} for r in rel_raw]
        bins += [{"rm": p["rm"], "calibrated": True, **r} for r in rel_cal]
    return (pd.DataFrame(rows, columns=CALIBRATION_COLUMNS), pd.DataFrame(bins, columns=RELIABILITY_COLUMNS))


def member_pool_scores(run, world, pool, ens: dict) -> np.ndarray:
    """[k, pool] member scores on the best-of-n pool (cached per member), divided by each member's tau
    when ensemble.calibrate is on."""
    from .experiment import score_pool

    raw = score_pool(run, world, pool, ens["members"])
    S = np.stack([raw[p["rm"]] for p in ens["members"]])
    return S / np.array(_taus(run, ens))[:, None]


def _taus(run, ens: dict) -> list[float]:
    return [p["tau"] if run.cfg.ensemble.calibrate and np.isfinite(p["tau"]) else 1.0 for p in ens["members"]]


def _objectives(run, S: np.ndarray) -> dict[str, np.ndarray]:
    from .reward import ensemble_objective

    e = run.cfg.ensemble
    return {"single": S[0], **{k: ensemble_objective(S, k, e.lam) for k in e.kinds}}


def ensemble_bon(run, world, ensembles: list[dict], pool_scores: dict, pool_gold) -> pd.DataFrame:
    """ensembles.csv: best-of-n gold, objective gain and disagreement for the single member and each objective."""
    c = run.cfg
    P, N = len(world.eval_prompt_idx), c.bon.pool_size
    ns = bon.default_ns(N)
    gold = pool_gold[0].reshape(P, N)
    length = pool_gold[1]["n_words"].reshape(P, N).astype(float)
    q = [(1 - c.fit.ci) / 2 * 100, (1 + c.fit.ci) / 2 * 100]
    rows = []
    for ens in ensembles:
        S = pool_scores[ens["name"]]
        spread = S.std(0).reshape(P, N)

        def curve(r):  # per-prompt gold gain, and the mean objective gain, disagreement and length
            r = r.reshape(P, N)
            g = bon.best_of_n_per_prompt(r, gold, ns)
            px = bon.best_of_n(r, r, ns)
            return g - g[:, :1], px - px[0], bon.best_of_n(r, spread, ns), bon.best_of_n(r, length, ns)

        objectives = _objectives(run, S)
        members = [curve(S[m]) for m in range(len(S))]
        # "single" is one member alone, averaged over the k members (the expected single proxy);
        # each member's own curve is kept as member<m>
        curves = {"single": tuple(np.mean([mc[i] for mc in members], 0) for i in range(4)),
                  **{k: curve(v) for k, v in objectives.items() if k != "single"},
                  **{f"member{m}": mc for m, mc in enumerate(members)}}
        for obj, (g, px, dis, ln) in curves.items():
            bg = bon.bootstrap_rows(g, c.bon.n_boot, run.seed(71))
            for j, n in enumerate(ns):
                rows.append({"ensemble": ens["name"], "size": ens["size"], "noise": ens["noise"], "objective": obj,
                             "n": n, "kl_bound": float(bon.kl_bound(n)), "proxy": px[j],
                             "gold": g[:, j].mean(), "gold_lo": np.percentile(bg[:, j], q[0]),
                             "gold_hi": np.percentile(bg[:, j], q[1]), "disagreement": dis[j], "length": ln[j]})
    return pd.DataFrame(rows, columns=ENSEMBLE_COLUMNS)


def ensemble_rl(run, world, pi0, pool, ensembles: list[dict], pool_scores: dict, gold_norm) -> pd.DataFrame | None:
    """ensemble_rl.csv: RL against the single member and against each objective, disagreement at every point."""
    c = run.cfg
    if not (c.ensemble.rl and c.rl.enabled):
        return None
    shared = {k: v for k, v in c.to_dict()["rl"].items()
              if k not in ("enabled", "kl_sweep", "sweep_rm", "policy_sizes", "iterated_rounds", "iterated_pairs")}
    rows = []
    for ens in ensembles:
        taus = _taus(run, ens)
        objectives = _objectives(run, pool_scores[ens["name"]])
        watch = EnsembleRM([p["model"] for p in ens["members"]], "mean", taus=taus).to(run.device)
        base = {f"{ens['name']}/{obj}": v for obj, v in objectives.items()}
        single = ens["members"][0]
        # the single member is read in its own units: its baseline is its raw pool score
        base[f"{ens['name']}/single"] = objectives["single"] * taus[0]
        evaluator = Evaluator(run, world, pi0, pool["prompt_idx"], pool["tokens"], base, gold_norm)
        for obj in ["single", *c.ensemble.kinds]:
            curve = f"{ens['name']}/{obj}"
            if obj == "single":
                model, params = single["model"], single["params"]
            else:
                model = EnsembleRM([p["model"] for p in ens["members"]], obj, c.ensemble.lam, taus).to(run.device)
                params = sum(p["params"] for p in ens["members"])
            proxy = {"rm": curve, "params": params, "model": model, "watch": watch}
            key = c.section_hash("world", "gold", "policy", extra=[
                shared, [c.ensemble.lam, c.ensemble.calibrate], [p["key"] for p in ens["members"]], obj, pool["key"], EVAL_VERSION])
            with run.stage(f"rl {curve}") as st:
                st["cached"] = run.cache.get("rl", key) is not None
                res = run_curve(run, world, pi0, proxy, evaluator, key, f"rl {curve}", rl_settings(c), curve)
            rows += [{"ensemble": ens["name"], "noise": ens["noise"], "objective": obj, **r} for r in res["rows"]]
    return pd.DataFrame(rows).reindex(columns=ENSEMBLE_RL_COLUMNS)


def ensemble_labellers(run, ensembles: list[dict]) -> dict[str, dict]:
    """Each ensemble objective as a reward model, by name SIZE/noiseRATE/KIND (daa.labels)."""
    e = run.cfg.ensemble
    return {f"{ens['name']}/{kind}": {"rm": f"{ens['name']}/{kind}", "model": EnsembleRM(
        [p["model"] for p in ens["members"]], kind, e.lam, _taus(run, ens)).to(run.device)}
        for ens in ensembles for kind in e.kinds}

"""Reward-model calibration (every run) and ensembles (Coste et al. 2023), on the best-of-n and RL yardsticks.

Every proxy of the run is read as a preference model: its temperature and calibration error are in the shared
artifacts (`pipeline.proxies.calibrate`). With ensemble.enabled, for each size in ensemble.sizes and each
label-flip rate in ensemble.noise, k proxies that differ only by seed are trained on the same pairs; member 0 at
the run's own noise is the family's proxy. Each member is put on one scale (its scores divided by its fitted
temperature, so they are calibrated logits), then combined by mean, WCO or UWO (`ensemble.ensemble_objective`).
Every curve, the single member's included, logs the ensemble's disagreement (the members' standard deviation).

Tables: `calibration.csv` and `reliability.csv` (every proxy of the run and every ensemble member, against gold
labels), `ensembles.csv` (best-of-n per ensemble and objective), `ensemble_rl.csv` (RL per ensemble and
objective). Each ensemble objective is offered to later studies as a labeller (daa.labels SIZE/noiseRATE/KIND).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ..laws.claims import ensemble_claims
from ..laws.curves import CurveId
from ..measure import bon
from ..measure.evaluator import EVAL_VERSION
from ..models.ensemble import EnsembleRM, ensemble_objective
from ..models.reward import Proxy
from ..pipeline.artifacts import Artifacts
from ..pipeline.build import labelled_at
from ..pipeline.curves import curve_key, pool_evaluator, rl_columns, rl_settings, run_curve
from ..pipeline.parallel import prefetch
from ..pipeline.proxies import calibrate, score_pool, train_proxies
from ..pipeline.run import Run
from ..stats import bootstrap_rows, interval
from .base import Output, Study

ENSEMBLE_COLUMNS = ["ensemble", "size", "noise", "objective", "n", "kl_bound", "proxy", "gold", "gold_lo", "gold_hi",
                    "disagreement", "length"]
def ensemble_rl_columns(dims) -> list[str]:
    return ["ensemble", "noise", "objective"] + rl_columns(dims) + ["disagreement"]


@dataclass(frozen=True)
class Ensemble:
    name: str                    # SIZE/noiseRATE
    size: str
    noise: float
    members: tuple[Proxy, ...]   # each calibrated (tau set)

    def scales(self, calibrated: bool) -> list[float]:
        """What each member's scores are divided by to share one scale (1 each when not calibrating)."""
        return [p.scale if calibrated else 1.0 for p in self.members]

    def objective(self, kind: str, lam: float, calibrated: bool) -> EnsembleRM:
        return EnsembleRM([p.model for p in self.members], kind, lam, self.scales(calibrated))


def ensemble_name(size: str, noise: float) -> str:
    return f"{size}/noise{noise:g}"


def build_ensembles(run: Run, art: Artifacts) -> tuple[list[Ensemble], list[pd.DataFrame]]:
    """Train (or load) and calibrate k members per size and noise rate; member 0 at the run's noise is a family
    proxy and shares its temperature. Returns the ensembles and the calibration tables of the new members."""
    c, e = run.cfg, run.cfg.ensemble
    jobs = []
    for size in e.sizes:
        for noise in e.noise:
            train_all, val_true, center = labelled_at(run, art, noise)
            jobs += [dict(size=size, n=c.rm.n_train, train_all=train_all, val_true=val_true, center=center,
                          name=f"{ensemble_name(size, noise)}#{m}", noise=float(noise), member=m,
                          bootstrap=e.bootstrap) for m in range(e.k)]
    trained = iter(train_proxies(run, art.world, jobs, "ensemble members"))
    out, raw = [], []
    for size in e.sizes:
        for noise in e.noise:
            name = ensemble_name(size, noise)
            members = [replace(next(trained), ensemble=name) for _ in range(e.k)]
            out.append(Ensemble(name, size, float(noise), tuple(members)))
            raw += members
    known = {p.key: p for p in art.proxies}
    _, val_true, _ = art.labelled
    new = [p for p in raw if p.key not in known]
    with run.stage("calibration"):
        fitted, cal, rel = calibrate(run, art.world, new, val_true)
    taus = {p.key: p.tau for p in [*known.values(), *fitted]}
    ensembles = [replace(ens, members=tuple(replace(p, tau=taus[p.key]) for p in ens.members)) for ens in out]
    return ensembles, [cal, rel]


def member_pool_scores(run: Run, art: Artifacts, ens: Ensemble) -> np.ndarray:
    """[k, pool] member scores on the best-of-n pool (cached per member), divided by each member's tau when
    ensemble.calibrate is on."""
    raw = score_pool(run, art.world, art.pool, list(ens.members))
    S = np.stack([raw[p.name] for p in ens.members])
    return S / np.array(ens.scales(run.cfg.ensemble.calibrate))[:, None]


def _objectives(run: Run, S: np.ndarray) -> dict[str, np.ndarray]:
    e = run.cfg.ensemble
    return {"single": S[0], **{k: ensemble_objective(S, k, e.lam) for k in e.kinds}}


def ensemble_bon(run: Run, art: Artifacts, ensembles: list[Ensemble], pool_scores: dict) -> tuple[pd.DataFrame, dict]:
    """ensembles.csv: best-of-n gold, objective gain and disagreement for the single member and each objective; and
    each curve's gold gain on the bootstrap resamples of the prompts ({CurveId("ensembles", "<ensemble>/<objective>"):
    [B, len(ns)]}, the same resamples for every curve)."""
    c = run.cfg
    P, N = len(art.world.eval_prompt_idx), c.bon.pool_size
    ns = bon.default_ns(N)
    gold = art.pool_gold.gold.reshape(P, N)
    length = art.pool_gold.dims["n_words"].reshape(P, N).astype(float)
    rows, boots = [], {}
    for ens in ensembles:
        S = pool_scores[ens.name]
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
            b = boots[CurveId("ensembles", f"{ens.name}/{obj}")] = bootstrap_rows(g, c.bon.n_boot,
                                                                                 run.seed("ensembles.resamples"))
            lo, hi = interval(b, c.fit.ci)
            for j, n in enumerate(ns):
                rows.append({"ensemble": ens.name, "size": ens.size, "noise": ens.noise, "objective": obj,
                             "n": n, "kl_bound": float(bon.kl_bound(n)), "proxy": px[j], "gold": g[:, j].mean(),
                             "gold_lo": lo[j], "gold_hi": hi[j], "disagreement": dis[j], "length": ln[j]})
    return pd.DataFrame(rows, columns=ENSEMBLE_COLUMNS), boots


def ensemble_rl(run: Run, art: Artifacts, ensembles: list[Ensemble], pool_scores: dict) -> pd.DataFrame | None:
    """ensemble_rl.csv: RL against the single member and against each objective, disagreement at every point."""
    c, e = run.cfg, run.cfg.ensemble
    if not (e.rl and c.rl.enabled):
        return None
    jobs = []  # (key, curve, its identity columns, the callable that runs it)
    for ens in ensembles:
        objectives = _objectives(run, pool_scores[ens.name])
        watch = ens.objective("mean", 0.5, e.calibrate).to(run.device)
        base = {f"{ens.name}/{obj}": v for obj, v in objectives.items()}
        single = ens.members[0]
        # the single member is read in its own units: its baseline is its raw pool score
        base[f"{ens.name}/single"] = objectives["single"] * ens.scales(e.calibrate)[0]
        evaluator = pool_evaluator(run, art, base, watch=watch)
        for obj in ["single", *e.kinds]:
            curve = f"{ens.name}/{obj}"
            if obj == "single":
                proxy = replace(single, name=curve)
            else:
                proxy = Proxy(curve, sum(p.params for p in ens.members),
                              ens.objective(obj, e.lam, e.calibrate).to(run.device))
            key = curve_key(c, [e.lam, e.calibrate], [p.key for p in ens.members], obj, art.pool.key, EVAL_VERSION)
            jobs.append((key, curve, {"ensemble": ens.name, "noise": ens.noise, "objective": obj},
                         lambda p=proxy, ev=evaluator, k=key, cv=curve: run_curve(
                             run, art.world, art.pi0, p, ev, k, f"rl {cv}", rl_settings(c), cv)))
    prefetch(run, [(key, f) for key, _, _, f in jobs], "rl", "ensemble rl curves")
    rows = []
    for key, curve, identity, f in jobs:
        with run.stage(f"rl {curve}") as st:
            st["cached"] = run.cache.has("rl", key)
            rows += [{**identity, **r} for r in f()["rows"]]
    return pd.DataFrame(rows).reindex(columns=ensemble_rl_columns(art.world.dims))


def run_ensembles(run: Run, art: Artifacts, before: dict) -> Output:
    """calibration.csv and reliability.csv always; with ensemble.enabled, ensembles.csv, ensemble_rl.csv and each
    objective as a labeller. Calibration is written before the ensembles' RL starts."""
    e = run.cfg.ensemble
    ensembles, extra = build_ensembles(run, art) if e.enabled else ([], [])
    cal, rel = art.calibration
    if extra and len(extra[0]):
        cal, rel = (pd.concat([a, b], ignore_index=True) for a, b in zip((cal, rel), extra))
    run.write("calibration", cal)
    run.write("reliability", rel)
    tables = {"calibration": cal, "reliability": rel}
    if not ensembles:
        return Output(tables)
    with run.stage("ensemble bon"):
        scores = {ens.name: member_pool_scores(run, art, ens) for ens in ensembles}
        tables["ensembles"], boots = ensemble_bon(run, art, ensembles, scores)
        run.write("ensembles", tables["ensembles"])
    tables["ensemble_rl"] = ensemble_rl(run, art, ensembles, scores)
    labellers = {CurveId("ensembles", f"{ens.name}/{kind}"): Proxy(f"{ens.name}/{kind}", sum(p.params for p in ens.members),
                                                                   ens.objective(kind, e.lam, e.calibrate).to(run.device))
                 for ens in ensembles for kind in e.kinds}
    return Output(tables, boots=boots, labellers=labellers)


def ensemble_replicates(c, out: Output) -> dict[CurveId, dict[str, np.ndarray]]:
    """Each ensembles.csv curve's gold peak on the paired prompt resamples (the ensemble claims' support)."""
    return {curve: {"gold_peak": reps.max(1)} for curve, reps in out.boots.items()}


# calibration runs in every run; ensemble.enabled switches the ensembles themselves
STUDY = Study("ensembles", run_ensembles, tables=("calibration", "reliability", "ensembles", "ensemble_rl"),
              section="ensemble", enabled=lambda cfg: True, claims=(ensemble_claims,), replicates=ensemble_replicates)

"""RL against every proxy of the family (Gao et al. 2022), and on one proxy (rl.sweep_rm) the KL-penalty sweep
(their Fig. 9), pi0s of other sizes and iterated RLHF (their sec. 4.3): `rl.csv`, one row per evaluation of
every curve. Each row names its curve (``curve``, kept for compatibility) and says what the curve is in columns:
``variant`` (family, kl_penalty, policy_size, iterated), ``penalty`` (the sweep's fixed coefficient),
``policy`` (the pi0 size) and ``rounds``. `forecast.csv`: how well every prefix of each family curve forecasts its
gold peak. Its curves' fits, their prompt resamples and its claims (`laws.claims.rl_claims`) go to the fits study."""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch

from .. import laws
from ..laws.claims import rl_claims
from ..laws.curves import CurveId
from ..measure.evaluator import EVAL_VERSION, Evaluator
from ..models.reward import Proxy
from ..optimizers.iterated import IteratedProxy, IteratedSettings
from ..optimizers.rl import RLError, RLSettings
from ..pipeline.artifacts import Artifacts
from ..pipeline.build import other_policy, pi0_name
from ..pipeline.curves import curve_key, pool_evaluator, rl_columns, rl_settings, run_curve
from ..pipeline.parallel import prefetch
from ..pipeline.proxies import new_rm, proxy_lr
from ..pipeline.run import Run
from .base import Output, Study

VARIANT_COLUMNS = ["variant", "penalty", "policy", "rounds"]


def rl_table_columns(dims) -> list[str]:
    """rl.csv's columns: the curve's rows (`pipeline.curves.rl_columns`) and what the curve is."""
    return rl_columns(dims) + VARIANT_COLUMNS


@dataclass(frozen=True)
class CurveJob:
    """One RL curve to run: the proxy it optimizes, its name, settings, reference policy and evaluator, what it is
    (rl.csv's identity columns) and its cache key."""
    proxy: Proxy
    curve: str
    settings: RLSettings
    ref: torch.nn.Module
    ev: Evaluator
    variant: str
    policy: str
    penalty: float = float("nan")
    rounds: int = 1
    key: str = ""

    @property
    def identity(self) -> dict:
        return {k: getattr(self, k) for k in VARIANT_COLUMNS}


def curve_jobs(run: Run, art: Artifacts) -> list[CurveJob]:
    """Every curve to run, keyed by the world, gold, pi0, the shared RL settings and what names the curve."""
    c, world = run.cfg, art.world
    evaluator = pool_evaluator(run, art, art.scores)
    default = pi0_name(c)
    family = art.family
    jobs = [CurveJob(p, p.name, rl_settings(c), art.pi0, evaluator, "family", default) for p in family]
    sweep = next(p for p in family if p.name == (c.rl.sweep_rm or family[0].name))
    jobs += [CurveJob(sweep, f"{sweep.name}/kl{coef:g}", replace(rl_settings(c), kl_coef=float(coef), kl_target=0.0),
                      art.pi0, evaluator, "kl_penalty", default, penalty=float(coef)) for coef in c.rl.kl_sweep]
    for spec in c.rl.policy_sizes:
        policy, ev = other_policy(run, world, spec, sweep, art.gold_norm)
        jobs.append(CurveJob(sweep, f"{sweep.name}/pi0-{spec}", rl_settings(c), policy, ev, "policy_size", spec))
    if c.rl.iterated_rounds >= 2:
        jobs.append(CurveJob(sweep, f"{sweep.name}/iter{c.rl.iterated_rounds}", rl_settings(c), art.pi0, evaluator,
                             "iterated", default, rounds=c.rl.iterated_rounds))
    own = lambda j: [c.rl.iterated_rounds, c.rl.iterated_pairs] if j.variant == "iterated" else []  # noqa: E731
    return [replace(j, key=curve_key(c, own(j), j.proxy.key, art.pool.key, j.curve, EVAL_VERSION)) for j in jobs]


def _source(run: Run, art: Artifacts, job: CurveJob) -> IteratedProxy | None:
    """The proxy that changes between rounds of an iterated curve (None for every other curve)."""
    c = run.cfg
    if job.variant != "iterated":
        return None
    size = job.proxy.size
    settings = IteratedSettings(
        rounds=c.rl.iterated_rounds, total_steps=c.rl.steps,
        pairs_per_round=c.rl.iterated_pairs or c.rm.n_train // c.rl.iterated_rounds,
        max_new_tokens=c.world.max_new_tokens, sample_batch=c.policy.sample_batch, label_noise=c.rm.label_noise,
        epochs=c.rm.epochs, batch_size=c.rm.batch_size, lr=proxy_lr(c, size), weight_decay=c.rm.weight_decay,
        gold=c.gold, seed=c.run.seed, device=str(run.device))
    return IteratedProxy(settings, art.world, job.proxy, lambda seed: new_rm(run, art.world, size, seed).to(run.device),
                         art.labelled.train, art.labelled.center, art.gold_norm)


def _curve(run: Run, art: Artifacts, job: CurveJob) -> dict:
    return run_curve(run, art.world, job.ref, job.proxy, job.ev, job.key, f"rl {job.curve}", job.settings, job.curve,
                     _source(run, art, job))


def run_rl(run: Run, art: Artifacts, before: dict) -> Output:
    """rl.csv rows, each curve's bootstrap replicates and each family curve's evaluation responses; forecast.csv."""
    c = run.cfg
    rows, boots, samples = [], {}, {}
    jobs = curve_jobs(run, art)
    prefetch(run, [(j.key, lambda j=j: _curve(run, art, j)) for j in jobs], "rl", "rl curves")
    for job in jobs:
        with run.stage(f"rl {job.curve}") as st:
            st["cached"] = run.cache.has("rl", job.key)
            try:
                res = _curve(run, art, job)
            except RLError as e:  # every point evaluated so far stays written
                done = rows + [{**r, **job.identity} for r in getattr(e, "rows", [])]
                run.write("rl", pd.DataFrame(done).reindex(columns=rl_table_columns(art.world.dims)))
                raise
        rows += [{**r, **job.identity} for r in res["rows"]]
        boots[CurveId("rl", job.curve)] = res["boot"]
        if job.variant == "family":
            samples[CurveId("rl", job.curve)] = res["samples"]
    rl_df = pd.DataFrame(rows).reindex(columns=rl_table_columns(art.world.dims))
    family = family_curves(rl_df)  # how well a partial curve forecasts its gold peak: every family curve, every prefix
    forecast = laws.forecast_table(family, "rl", n_boot=c.bon.n_boot // 2, ci=c.fit.ci) if family else None
    return Output({"rl": rl_df, "forecast": forecast}, boots=boots, samples=samples)


def family_curves(rl_df: pd.DataFrame | None) -> dict:
    """{curve: (kl, gold)} of the family's RL curves (one per proxy, no variant)."""
    if rl_df is None or not len(rl_df):
        return {}
    family = rl_df[rl_df["variant"] == "family"]
    return {c: (g["kl"].to_numpy(), g["gold"].to_numpy()) for c, g in family.groupby("curve", sort=False)}


def rl_fits(c, out: Output) -> list[dict]:
    """Every RL curve: the RL form, its alternatives and the best-of-n form; the family with one alpha shared."""
    fits, rl_df = [], out.tables["rl"]
    if rl_df is None or not len(rl_df):
        return fits
    for curve, g in rl_df.groupby("curve", sort=False):
        kl, gold = g["kl"].to_numpy(), g["gold"].to_numpy()
        ident = {"method": "rl", "reward": "gold", "rm": g["rm"].iloc[0], "variant": g["variant"].iloc[0],
                 "policy": g["policy"].iloc[0]}
        proxy = g["proxy"].to_numpy()
        for form in ("rl", *laws.ALTERNATIVES["rl"], "bon"):
            r = laws.fit(kl, gold, form, boot_gains=out.boots.get(CurveId("rl", curve)), ci=c.fit.ci)
            extra = {"gamma": laws.fit_gamma(r, laws.fit(kl, proxy, "rl", n_boot=0), kl)} if form == "rl" and \
                np.isfinite(proxy).all() else {}
            fits.append({"curve": CurveId("rl", curve).fit_name(), **r.to_dict(), **ident, **extra})
    family = family_curves(rl_df)
    if len(family) > 1:
        alpha, betas, r2 = laws.fit_shared_alpha(family, "rl")
        for rm, b in betas.items():
            kp, gp = laws.peak("rl", alpha, b)
            fits.append({"curve": CurveId("rl", rm).fit_name(), "form": "rl_shared_alpha", "alpha": alpha, "beta": b,
                         "r2": r2[rm], "kl_peak": kp, "gain_peak": gp, "n_points": len(family[rm][0]),
                         "method": "rl", "reward": "gold", "rm": rm, "variant": "family"})
    return fits


def rl_replicates(c, out: Output) -> dict[CurveId, dict[str, np.ndarray]]:
    """For every family RL curve, on each resample of its own evaluation prompts: the KL of its observed peak and
    the R^2 of its form and of the quadratic in KL ("r2/<form>")."""
    reps = {}
    for curve, (kl, _) in family_curves(out.tables["rl"]).items():
        b = out.boots.get(CurveId("rl", curve))
        if b is not None:
            reps[CurveId("rl", curve)] = {"kl_at_peak": kl[b.argmax(1)],
                                          **{f"r2/{form}": laws.replicate_fits(form, kl, b)[1] for form in ("rl", "quad_kl")}}
    return reps


STUDY = Study("rl", run_rl, tables=("rl", "forecast"), section="rl", claims=(rl_claims,), fits=rl_fits,
              replicates=rl_replicates)

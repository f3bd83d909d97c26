"""RL against every proxy of the family (Gao et al. 2022), and on one proxy (rl.sweep_rm) the KL-penalty sweep
(their Fig. 9), pi0s of other sizes and iterated RLHF (their sec. 4.3): `rl.csv`, one row per evaluation of
every curve. Each row names its curve (``curve``, kept for compatibility) and says what the curve is in columns:
``variant`` (family, kl_penalty, policy_size, iterated), ``penalty`` (the sweep's fixed coefficient),
``policy`` (the pi0 size) and ``rounds``."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from ..measure.evaluator import EVAL_VERSION
from ..optimizers.iterated import IteratedProxy, IteratedSettings
from ..optimizers.rl import RLError
from ..pipeline.artifacts import Artifacts
from ..pipeline.build import labelled_pairs, other_policy, pi0_name
from ..pipeline.curves import RL_COLUMNS, curve_key, pool_evaluator, rl_settings, run_curve
from ..pipeline.parallel import prefetch
from ..pipeline.proxies import new_rm, proxy_lr
from ..pipeline.run import Run
from .base import Output, Study

VARIANT_COLUMNS = ["variant", "penalty", "policy", "rounds"]
RL_TABLE_COLUMNS = RL_COLUMNS + VARIANT_COLUMNS


def curve_jobs(run: Run, art: Artifacts) -> list[dict]:
    """Every curve to run: its proxy, name, settings, reference policy, evaluator and identity columns."""
    c, world = run.cfg, art.world
    evaluator = pool_evaluator(run, art, art.scores)
    default = pi0_name(c)
    family = art.family
    jobs = [dict(proxy=p, curve=p.name, settings=rl_settings(c), ref=art.pi0, ev=evaluator, variant="family",
                 penalty=np.nan, policy=default, rounds=1) for p in family]
    sweep = next(p for p in family if p.name == (c.rl.sweep_rm or family[0].name))
    jobs += [dict(proxy=sweep, curve=f"{sweep.name}/kl{coef:g}", ref=art.pi0, ev=evaluator, variant="kl_penalty",
                  settings=replace(rl_settings(c), kl_coef=float(coef), kl_target=0.0), penalty=float(coef),
                  policy=default, rounds=1) for coef in c.rl.kl_sweep]
    for spec in c.rl.policy_sizes:
        policy, ev = other_policy(run, world, spec, sweep, art.gold_norm)
        jobs.append(dict(proxy=sweep, curve=f"{sweep.name}/pi0-{spec}", settings=rl_settings(c), ref=policy, ev=ev,
                         variant="policy_size", penalty=np.nan, policy=spec, rounds=1))
    if c.rl.iterated_rounds >= 2:
        jobs.append(dict(proxy=sweep, curve=f"{sweep.name}/iter{c.rl.iterated_rounds}", settings=rl_settings(c),
                         ref=art.pi0, ev=evaluator, variant="iterated", penalty=np.nan, policy=default,
                         rounds=c.rl.iterated_rounds))
    return jobs


def _source(run: Run, art: Artifacts, job: dict):
    """The proxy that changes between rounds of an iterated curve (None for every other curve)."""
    c = run.cfg
    if job["variant"] != "iterated":
        return None
    train, _, center = labelled_pairs(run, art.world, art.pairs)
    size = job["proxy"].size
    settings = IteratedSettings(
        rounds=c.rl.iterated_rounds, total_steps=c.rl.steps,
        pairs_per_round=c.rl.iterated_pairs or c.rm.n_train // c.rl.iterated_rounds,
        max_new_tokens=c.world.max_new_tokens, sample_batch=c.policy.sample_batch, label_noise=c.rm.label_noise,
        epochs=c.rm.epochs, batch_size=c.rm.batch_size, lr=proxy_lr(c, size), weight_decay=c.rm.weight_decay,
        gold=c.gold, seed=c.run.seed, device=str(run.device))
    return IteratedProxy(settings, art.world, job["proxy"], lambda seed: new_rm(run, art.world, size, seed).to(run.device),
                         train, center, art.gold_norm)


def _curve(run: Run, art: Artifacts, job: dict) -> dict:
    return run_curve(run, art.world, job["ref"], job["proxy"], job["ev"], job["key"], f"rl {job['curve']}",
                     job["settings"], job["curve"], _source(run, art, job))


def run_rl(run: Run, art: Artifacts, before: dict) -> Output:
    """rl.csv rows, each curve's bootstrap replicates and each family curve's evaluation responses."""
    c = run.cfg
    rows, boots, samples = [], {}, {}
    jobs = curve_jobs(run, art)
    for job in jobs:
        own = [c.rl.iterated_rounds, c.rl.iterated_pairs] if job["variant"] == "iterated" else []
        job["key"] = curve_key(c, own, job["proxy"].key, art.pool.key, job["curve"], EVAL_VERSION)
    prefetch(run, [(j["key"], lambda j=j: _curve(run, art, j)) for j in jobs], "rl", "rl curves")
    for job in jobs:
        curve = job["curve"]
        identity = {k: job[k] for k in VARIANT_COLUMNS}
        with run.stage(f"rl {curve}") as st:
            st["cached"] = run.cache.has("rl", job["key"])
            try:
                res = _curve(run, art, job)
            except RLError as e:  # every point evaluated so far stays written
                done = rows + [{**r, **identity} for r in getattr(e, "rows", [])]
                run.write("rl", pd.DataFrame(done).reindex(columns=RL_TABLE_COLUMNS))
                raise
        rows += [{**r, **identity} for r in res["rows"]]
        boots[curve] = res["boot"]
        if job["variant"] == "family":
            samples[curve] = res["samples"]
    return Output({"rl": pd.DataFrame(rows).reindex(columns=RL_TABLE_COLUMNS)}, boots=boots, samples=samples)


STUDY = Study("rl", run_rl, tables=("rl",), enabled=lambda cfg: cfg.rl.enabled)

"""The direct-alignment stage of a run: losses x betas x policy sizes on one set of offline pairs.

Pairs are the proxies' gold-labelled pi0 pairs (or relabelled by a proxy); every run of the sweep
trains on the same prefix of them. Each reference policy's log-probs of those pairs are computed
once and cached, and every run's rows are cached whole, so an interrupted sweep resumes at the first
unfinished run.
"""
from __future__ import annotations

import copy
from functools import partial

import numpy as np
import pandas as pd
import torch

from .. import laws
from ..laws.claims import daa_claims
from ..laws.curves import SUMMARY_COLUMNS, CurveId, summarise_daa
from ..measure.evaluator import EVAL_VERSION
from ..models.policy import as_ids
from ..models.reward import Proxy, score
from ..optimizers.daa import DAAError, DAASettings, DAATrainer, PreferenceData, policy_logps, reference_logps
from ..pipeline.artifacts import Artifacts
from ..pipeline.build import other_policy, pi0_name
from ..pipeline.curves import pool_evaluator
from ..pipeline.run import Run
from ..stats import bootstrap_rows, interval, r2_linear, tie_accuracy
from .base import Output, Study


def daa_columns(dims) -> list[str]:
    """daa.csv's columns in a world whose gold names ``dims`` (`World.dims`)."""
    return ["curve", "loss", "beta", "alpha", "policy", "policy_params", "step", "epoch_frac", "kl", "kl_k1", "kl_k3",
            "gold", "gold_lo", "gold_hi", "winrate"] + [f"gold_{d}" for d in dims] + \
        ["length", "implicit_acc", "chosen_logratio", "rejected_logratio", "implicit_len_r2", "train_loss"]


def _relabel(pairs, prompt_ids, proxy: Proxy, device, pad: int):
    """Order each pair by the proxy's score instead of gold (the higher score is chosen)."""
    t = partial(as_ids, device=device)
    p = t(prompt_ids[pairs.prompt_idx])
    sc, sr = score(proxy.model, p, t(pairs.chosen), pad), score(proxy.model, p, t(pairs.rejected), pad)
    swap = sr > sc
    ch = np.where(swap[:, None], pairs.rejected, pairs.chosen)
    rj = np.where(swap[:, None], pairs.chosen, pairs.rejected)
    return ch, rj


def _val_metrics(policy, val: dict, beta: float, pad: int, eos: int) -> dict:
    """Implicit-reward accuracy on held-out pairs, mean log-ratios, and R^2 of implicit reward on length."""
    with torch.no_grad():
        pc, pr = policy_logps(policy, val["prompts"], val["chosen"], val["rejected"], pad, eos)
    lc, lr = (pc - val["ref_chosen"]).cpu().numpy(), (pr - val["ref_rejected"]).cpu().numpy()
    reward = beta * np.concatenate([lc, lr])
    return {"implicit_acc": float(tie_accuracy(lc, lr)),
            "chosen_logratio": float(lc.mean()), "rejected_logratio": float(lr.mean()),
            "implicit_len_r2": r2_linear(val["lengths"], reward)}


def run_daa(run: Run, art: Artifacts, before: dict) -> Output:
    """Every (policy, loss, beta) run: daa.csv and daa_summary.csv, and each run's bootstrap replicates.
    daa.labels may name an ensemble objective (SIZE/noiseRATE/KIND), offered by the ensembles study."""
    c, d, world = run.cfg, run.cfg.daa, art.world
    train, val, _ = art.labelled
    train, val = train.head(min(d.n_pairs, len(train))), val.head(min(d.n_val_pairs, len(val)))
    chosen, rejected = train.chosen, train.rejected
    if d.labels != "gold":
        labellers = before["ensembles"].labellers if "ensembles" in before else {}
        proxy = labellers.get(CurveId("ensembles", d.labels)) or art.proxy(d.labels)
        chosen, rejected = _relabel(train, world.prompt_ids, proxy, run.device, world.pad)
    t = partial(as_ids, device=run.device)
    data_t = {"prompts": t(world.prompt_ids[train.prompt_idx]), "chosen": t(chosen), "rejected": t(rejected)}
    val_t = {"prompts": t(world.prompt_ids[val.prompt_idx]), "chosen": t(val.chosen), "rejected": t(val.rejected)}
    val_t["lengths"] = np.concatenate([(val.chosen != world.pad).sum(1), (val.rejected != world.pad).sum(1)])
    data_key = c.section_hash("world", "gold", "policy", extra=[c.rm.n_train, c.rm.n_val, c.rm.label_noise, d.labels,
                                                                  d.n_pairs, d.n_val_pairs])
    n_eval = min(d.eval_prompts, c.world.eval_prompts)
    refs = [(pi0_name(c), art.pi0, pool_evaluator(run, art, {}, n_eval, d.eval_samples))]
    for spec in d.policy_sizes:
        policy, ev = other_policy(run, world, spec, None, art.gold_norm, n_eval, d.eval_samples)
        refs.append((spec, policy, ev))
    shared = {k: v for k, v in c.to_dict()["daa"].items() if k not in ("enabled", "losses", "betas", "policy_sizes")}
    rows, boots, summary = [], {}, []
    for spec, ref, ev in refs:
        ref_key = c.section_hash("world", extra=[data_key, spec, c.policy.steps, c.policy.lr, c.policy.batch_size])
        with run.stage(f"daa reference {spec}") as st:
            cached = run.cache.get("daa-ref", ref_key)
            st["cached"] = cached is not None
            if cached is None:
                cached = {"train": reference_logps(ref, data_t["prompts"], data_t["chosen"], data_t["rejected"],
                                                   world.pad, world.eos),
                          "val": reference_logps(ref, val_t["prompts"], val_t["chosen"], val_t["rejected"], world.pad,
                                                 world.eos)}
                run.cache.put("daa-ref", ref_key, cached)
        data = PreferenceData(data_t["prompts"], data_t["chosen"], data_t["rejected"], *cached["train"],
                              pad_id=world.pad)
        val_s = {**val_t, "ref_chosen": cached["val"][0], "ref_rejected": cached["val"][1]}
        n_params = sum(p.numel() for p in ref.parameters())
        for loss in d.losses:
            for beta in d.betas:
                curve = f"{loss}/b{beta:g}/pi0-{spec}"
                settings = DAASettings(loss=loss, beta=float(beta), alpha=d.rdpo_alpha if loss == "rdpo" else 0.0,
                                       ipo_length_norm=d.ipo_length_norm, lr=d.lr, optimizer=d.optimizer,
                                       batch_size=d.batch_size, epochs=d.epochs,
                                       checkpoints_per_epoch=d.checkpoints_per_epoch)
                key = c.section_hash("world", "gold", "policy",
                                     extra=[shared, ref_key, curve, vars(settings), EVAL_VERSION])
                base = {"curve": curve, "loss": loss, "beta": float(beta), "alpha": settings.alpha, "policy": spec,
                        "policy_params": n_params}
                with run.stage(f"daa {curve}") as st:
                    res = run.cache.get("daa", key)
                    st["cached"] = res is not None
                    if res is None:
                        try:
                            res = _one_run(run, ref, data, val_s, ev, settings, base)
                        except DAAError as e:  # every run finished so far stays written
                            run.write("daa", pd.DataFrame(rows).reindex(columns=daa_columns(world.dims)))
                            e.args = (f"direct alignment run {curve}: {e}",)
                            raise
                        run.cache.put("daa", key, res)
                rows += res["rows"]
                boots[CurveId("daa", curve)] = res["boot"]
                summary.append(summarise_daa(res["rows"]))
    return Output({"daa": pd.DataFrame(rows).reindex(columns=daa_columns(world.dims)),
                   "daa_summary": pd.DataFrame(summary).reindex(columns=SUMMARY_COLUMNS)}, boots=boots)


def _one_run(run, ref, data: PreferenceData, val: dict, ev, settings: DAASettings, base: dict) -> dict:
    c = run.cfg
    policy = copy.deepcopy(ref)
    pad, eos = ev.world.pad, ev.world.eos
    trainer = DAATrainer(policy, data, settings, pad, eos, seed=run.seed("daa.trainer"))
    rows, per_prompt = [], []
    with run.bar(trainer.total_steps, f"daa {base['curve']}") as bar:
        for step, frac in trainer.run():
            row, pp = ev(policy, None, seed=run.seed("daa.eval_sampling", step))
            row.pop("proxy")
            loss = float(np.mean(trainer.losses[-10:])) if trainer.losses else float("nan")
            rows.append({**base, "step": step, "epoch_frac": frac, **row,
                         **_val_metrics(policy, val, settings.beta, pad, eos),
                         "train_loss": loss})
            per_prompt.append(pp)
            bar.update(step - bar.n)
    boots = bootstrap_rows(np.stack(per_prompt).T, c.bon.n_boot, run.seed("daa.resamples"))
    for j, r in enumerate(rows):
        r["gold_lo"], r["gold_hi"] = (float(x) for x in interval(boots[:, j], c.fit.ci))
    return {"rows": rows, "boot": boots}


def daa_fits(c, out: Output) -> list[dict]:
    """Rafailov et al.: one curve per loss and policy size, pooling every beta and checkpoint."""
    fits, daa_df = [], out.tables["daa"]
    if daa_df is None or not len(daa_df):
        return fits
    for (loss, policy), g in daa_df.groupby(["loss", "policy"], sort=False):
        for form in ("rl", "quad_kl"):
            r = laws.fit(g["kl"].to_numpy(), g["gold"].to_numpy(), form, ci=c.fit.ci, n_boot=c.bon.n_boot)
            fits.append({"curve": CurveId("daa", f"{loss}/pi0-{policy}").fit_name(), **r.to_dict(), "method": "daa",
                         "reward": "gold", "loss": loss, "policy": policy})
    return fits


STUDY = Study("daa", run_daa, tables=("daa", "daa_summary"), section="daa", needs=("ensembles",),
              claims=(daa_claims,), fits=daa_fits)

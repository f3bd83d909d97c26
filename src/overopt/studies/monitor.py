"""The monitor in the toy world (issue 6): does `overopt.online.monitor.Monitor` stop RL near the gold peak when it
sees only what a practitioner sees?

Each proxy size of the family gets ``monitor.k - 1`` more members that differ from the proxy by seed (and, with
``monitor.bootstrap``, by a resample of the pairs). Along every family RL curve the evaluation responses (kept
by `rlrun.run_curve`) are scored by every member, each divided by its fitted temperature so the members share
one scale. At each evaluation the monitor is given the KL, the proxy, the reference (the mean of the members
that were not optimized) and the disagreement (the members' per-sample standard deviation, averaged). Gold is
used only afterwards, to score where it stopped:

    regret = (gold_peak - gold_at_stop) / gold_peak       (0 at the best evaluation of the curve)
    early  = it stopped before the peak with less than half of the peak gain

A monitor that never stops is charged the last evaluation (training ran to the end). Each rule is the monitor
with one set of signals; "none" is no monitor at all. Since a trainer keeps a checkpoint at every evaluation, the
table also scores the checkpoint a practitioner would roll back to on stopping: the one where the reference was
best so far (``pick``; without a stop, the last).

monitor_trace.csv: curve, rm, step, kl, proxy, gold, reference, reference_se, disagreement, second_rm, second_rm_gain,
second_rm_gain_se, gold_eval, gold_eval_se (each reference's standard error over the evaluation's responses, which its
stop rule uses), member<m> (gains over step 0).
monitor.csv: curve, rule, stopped, stop_step, stop_kl, gold_stop, gold_peak, kl_peak, regret, early, reasons.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..laws.claims import monitor_claims
from ..laws.curves import CurveId
from ..models.ensemble import EnsembleRM, member_scores
from ..models.reward import Proxy, score
from ..online.detectors import regret, stopped_early
from ..online.monitor import SIGNALS, Monitor
from ..pipeline.artifacts import Artifacts
from ..pipeline.proxies import calibrate, train_members
from ..pipeline.run import Run
from .base import Output, Study

MONITOR_COLUMNS = ["curve", "rm", "reference", "rule", "stopped", "stop_step", "stop_kl", "gold_stop", "gold_peak",
                   "kl_peak", "regret", "early", "pick_step", "pick_kl", "gold_pick", "regret_pick", "reasons"]
# each rule: the monitor with these signals ("none": train to the end)
RULES = {"monitor": SIGNALS, "reference-drop": ("reference-drop",), "fitted-peak": ("fitted-peak",),
         "disagreement": ("disagreement",), "none": ()}
# what the monitor is given as its reference: the ensemble members that were not optimized, or a second reward
# model of the family (the largest other than the proxy), as a practitioner with a stronger RM at hand would
REFERENCES = {"ensemble": "reference", "second RM": "second_rm_gain"}
# for comparison only, outside the rule that the monitor never sees gold: a small gold-labelled evaluation
# set (monitor.gold_eval_prompts prompts x rl.eval_samples responses labelled at each evaluation)
GOLD_EVAL = {"gold eval set": "gold_eval"}


def build_members(run: Run, art: Artifacts) -> dict[str, list[Proxy]]:
    """{family proxy name: [the proxy, member 1, ..., member k-1]}, each calibrated (``tau`` fitted)."""
    c = run.cfg
    labelled = art.labelled
    out = train_members(run, art.world, labelled, art.family, c.monitor.k, "monitor members", c.monitor.bootstrap)
    for name, (p, *extra) in out.items():
        with run.stage(f"monitor calibration {name}"):
            extra, _, _ = calibrate(run, art.world, extra, labelled.val)
        out[name] = [p] + extra
    return out


def gain_se(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[evaluations, responses] scores -> each evaluation's mean gain over the first evaluation's, and its standard
    error over the responses."""
    return scores.mean(1) - scores[0].mean(), scores.std(1, ddof=1) / np.sqrt(scores.shape[1])


@torch.no_grad()
def trace_table(run: Run, world, rl_df: pd.DataFrame, samples: dict[CurveId, np.ndarray], members: dict,
                gold_norm=None) -> pd.DataFrame:
    """One row per evaluation of every family curve: what the monitor sees, and gold (for scoring only)."""
    c = run.cfg
    prompt_idx = np.repeat(world.eval_prompt_idx[: c.rl.eval_prompts], c.rl.eval_samples)
    prompts = torch.tensor(world.prompt_ids[prompt_idx], device=run.device)
    by_params = sorted((ms[0] for ms in members.values()), key=lambda p: p.params)
    rows = []
    for rm, ms in members.items():
        g = rl_df[rl_df["curve"] == rm].sort_values("step")
        toks = samples.get(CurveId("rl", rm))
        if toks is None or not len(g):
            continue
        resp = [torch.tensor(t.astype(np.int64), device=run.device) for t in toks]  # one per evaluation
        ens = EnsembleRM([m.model for m in ms], "mean", taus=[m.scale for m in ms]).to(run.device)
        S = np.stack([member_scores(ens, prompts, t, world.pad) for t in resp])  # [points, members, responses]
        means = S.mean(2)
        gains = means - means[0]                                         # over the policy at step 0 (pi0)
        dis = S.std(1).mean(1)                                           # per-response spread, averaged
        ref_se = S[:, 1:].mean(1).std(1, ddof=1) / np.sqrt(S.shape[2])   # each point's, over its responses
        second = [p for p in by_params if p.name != rm][-1] if len(by_params) > 1 else None
        sec, sec_se = np.zeros(len(toks)), np.full(len(toks), np.nan)
        if second is not None:
            sec, sec_se = gain_se(np.stack([score(second.model, prompts, t, world.pad) for t in resp]) / second.scale)
        n_small = min(c.monitor.gold_eval_prompts, c.rl.eval_prompts) * c.rl.eval_samples
        small, small_se = np.full(len(toks), np.nan), np.full(len(toks), np.nan)
        if n_small and gold_norm is not None:  # the first prompts' responses, gold-labelled
            small, small_se = gain_se(np.stack([world.gold(prompt_idx[:n_small], t[:n_small], c.gold, gold_norm)[0]
                                                for t in toks]))
        for j, (_, r) in enumerate(g.iterrows()):
            rows.append({"curve": rm, "rm": rm, "step": int(r["step"]), "kl": r["kl"], "proxy": r["proxy"],
                         "gold": r["gold"], "reference": float(gains[j, 1:].mean()), "reference_se": float(ref_se[j]),
                         "disagreement": float(dis[j]), "second_rm": second.name if second is not None else "",
                         "second_rm_gain": float(sec[j]) if second is not None else float("nan"),
                         "second_rm_gain_se": float(sec_se[j]), "gold_eval": float(small[j]),
                         "gold_eval_se": float(small_se[j]),
                         **{f"member{m}": float(gains[j, m]) for m in range(len(ms))}})
    return pd.DataFrame(rows)


def _stop(g: pd.DataFrame, ref_col: str, signals, monitor_kwargs: dict) -> tuple[int, int, str]:
    """Index of the first evaluation where the monitor says stop (the last one if it never does), of the
    checkpoint to roll back to (the reference's best up to the stop), and why it stopped."""
    last = len(g) - 1
    if not signals:
        return last, last, ""
    mon = Monitor(signals=signals, **monitor_kwargs)
    steps = g["step"].tolist()
    se = g[f"{ref_col}_se"].to_numpy() if f"{ref_col}_se" in g else np.full(len(g), np.nan)
    for j, r in enumerate(g.itertuples()):
        st = mon.update(r.step, r.kl, r.proxy, reference=getattr(r, ref_col), disagreement=r.disagreement,
                        reference_se=se[j] if se[j] > 0 else None)  # each point's own error, where the trace has one
        if st.state == "stop":
            return j, steps.index(st.best_step), "; ".join(st.reasons)
    return last, last, ""


def evaluate(trace: pd.DataFrame, monitor_kwargs: dict, rules: dict | None = None,
             references: dict | None = None) -> pd.DataFrame:
    """monitor.csv: for every curve, reference and rule, where the monitor stopped and the gold regret there.
    "none" (no signals) needs no reference and is listed once per curve."""
    rules, references = rules or RULES, references or REFERENCES
    rows = []
    for curve, g in trace.groupby("curve", sort=False):
        g = g.sort_values("step")
        kl, gold = g["kl"].to_numpy(), g["gold"].to_numpy()
        peak = int(np.argmax(gold))
        cases = [(ref, col, rule, sig) for ref, col in references.items() if g[col].notna().all()
                 for rule, sig in rules.items() if sig]
        cases += [("", None, rule, sig) for rule, sig in rules.items() if not sig]
        for ref, col, rule, signals in cases:
            stop, pick, reasons = _stop(g, col, signals, monitor_kwargs)
            rows.append({"curve": curve, "rm": g["rm"].iloc[0], "reference": ref, "rule": rule,
                         "stopped": bool(reasons), "stop_step": int(g["step"].iloc[stop]),
                         "stop_kl": float(kl[stop]), "gold_stop": float(gold[stop]), "gold_peak": float(gold[peak]),
                         "kl_peak": float(kl[peak]), "regret": regret(gold, stop),
                         "early": stopped_early(gold, stop),
                         "pick_step": int(g["step"].iloc[pick]), "pick_kl": float(kl[pick]),
                         "gold_pick": float(gold[pick]), "regret_pick": regret(gold, pick), "reasons": reasons})
    return pd.DataFrame(rows, columns=MONITOR_COLUMNS)


def monitor_kwargs(cfg) -> dict:
    m = cfg.monitor
    return {"alpha": m.alpha, "min_points": m.min_points, "drop": m.drop, "patience": m.patience, "ratio": m.ratio,
            "disagreement_rise": m.disagreement_rise, "n_boot": cfg.bon.n_boot // 2, "ci": cfg.fit.ci}


def run_monitor(run: Run, art: Artifacts, before: dict) -> Output:
    rl = before["rl"]
    members = build_members(run, art)
    with run.stage("monitor"):
        trace = trace_table(run, art.world, rl.tables["rl"], rl.samples, members, art.gold_norm)
        refs = {**REFERENCES, **(GOLD_EVAL if run.cfg.monitor.gold_eval_prompts else {})}
        return Output({"monitor_trace": trace, "monitor": evaluate(trace, monitor_kwargs(run.cfg), references=refs)})


STUDY = Study("monitor", run_monitor, tables=("monitor_trace", "monitor"), section="monitor",
              enabled=lambda cfg: cfg.monitor.enabled and cfg.rl.enabled, needs=("rl",), claims=(monitor_claims,))

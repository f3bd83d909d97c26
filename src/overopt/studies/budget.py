"""A judge on a label budget in the toy world: where to stop RL, and which n to use for best-of-n, with as few
trusted labels as possible.

Along every family RL curve, each strategy of `overopt.online.budget` labels the curve's own evaluation responses
(kept by `pipeline.curves.run_curve`) as a trusted judge would, with gold standing in for it: pointwise (a
response's gold) or pairwise (a response against a pi0 response to the same prompt from the best-of-n pool: 1 if
its gold is higher, 0.5 on a tie). The strategy decides how many labels each evaluation gets, where to stop and
which checkpoint to keep; gold on all of the evaluation's responses (the rl.csv curve) then scores it:

    regret_stop = (gold_peak - gold at the stop) / gold_peak;  regret_pick: the same at the checkpoint kept
    early       = stopped before the peak with less than half of the peak gain

A strategy given budget B per run: fixed labels B // (evaluations) at each; triggered B // TRIGGERED_EVALS at each
evaluation it labels (about that many in a run to KL 25 at the default growth); sequential batches of budget.batch,
at most B // SEQUENTIAL_SHARE on one evaluation. Budget 0 is "none": no judge, training to the end. The "fixed set"
row labels budget.fixed_set at every evaluation without a cap (the monitor study's gold evaluation set).
Each (curve, judge, strategy, budget) is run budget.repeats times with independent label draws.

Best-of-n: for every proxy and every m of budget.bon_prompts, n is chosen from m judged calibration prompts
(`overopt.online.choose_n`: the proxy's budget.bon_top best samples of each and budget.bon_rest of the rest) drawn
from the first half of the held-out prompts, and scored on the second half's whole pool against the best n of the
grid there.

budget.csv: curve, rm, judge, strategy, budget, rep, labels, stop_step, stop_kl, pick_step, pick_kl, gold_stop,
            gold_pick, gold_peak, kl_peak, regret_stop, regret_pick, early, stopped_by (rule: the stop rule of
            `online.stoprule`; budget: labels spent; empty: ran to the end), false_stop (the rule stopped before gold's
            peak: what its alpha bounds)
budget_summary.csv: judge, strategy, budget, runs, labels, labels_max, regret_stop, regret_pick, regret_pick_p90,
            early, rule_stops, false_stops (medians over runs, the 90th percentile, and the fractions stopped early,
            by the rule, and by the rule before gold's peak)
bon_choice.csv: rm, m, rep, labels, n, n_lo, n_hi, n_best, gold_n, gold_best, regret
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..measure.bon import best_of_n, default_ns
from ..online.budget import BudgetWatch
from ..online.choose_n import choose_n
from ..online.detectors import regret, stopped_early
from ..pipeline.artifacts import Artifacts
from ..pipeline.run import Run
from .base import Output, Study

TRIGGERED_EVALS = 8   # evaluations the triggered rule labels from KL 0.01 to 25 at growth 0.5 in sqrt(KL)
SEQUENTIAL_SHARE = 4  # sequential: at most a quarter of the budget on one evaluation
BUDGET_COLUMNS = ["curve", "rm", "judge", "strategy", "budget", "rep", "labels", "stop_step", "stop_kl", "pick_step",
                  "pick_kl", "gold_stop", "gold_pick", "gold_peak", "kl_peak", "regret_stop", "regret_pick", "early",
                  "stopped_by", "false_stop"]
SUMMARY_COLUMNS = ["judge", "strategy", "budget", "runs", "labels", "labels_max", "regret_stop", "regret_pick",
                   "regret_pick_p90", "early", "rule_stops", "false_stops"]
BON_CHOICE_COLUMNS = ["rm", "m", "rep", "labels", "n", "n_lo", "n_hi", "n_best", "gold_n", "gold_best", "regret"]


def settings(strategy: str, budget: int, evals: int, b) -> dict | None:
    """BudgetWatch's arguments for ``strategy`` at ``budget`` labels per run of ``evals`` evaluations (None: the
    budget cannot pay for two labels where the strategy needs them)."""
    if strategy == "fixed":
        per = budget // evals
    elif strategy == "triggered":
        per = budget // TRIGGERED_EVALS
    else:
        per = max(b.batch, budget // SEQUENTIAL_SHARE)
    if per < 2:
        return None
    return dict(strategy=strategy, budget=budget, per_eval=per, batch=b.batch, z=b.z, growth=b.growth, alpha=b.alpha)


def play(curve: pd.DataFrame, gold: np.ndarray, label_fn, watch: BudgetWatch | None) -> dict:
    """One run of a strategy along a curve (rows sorted by step; ``gold`` [evaluations, responses] per response):
    where it stopped, what it kept, and the regret of each against the curve's gold peak."""
    steps, kl, truth = curve["step"].to_numpy(), curve["kl"].to_numpy(), curve["gold"].to_numpy()
    stop, keep, by = len(steps) - 1, None, ""
    if watch is not None:
        for j in range(len(steps)):
            st = watch.update(float(steps[j]), float(kl[j]), float(curve["proxy"].iloc[j]), label_fn(j))
            keep = st.best_step
            if st.state == "stop":
                stop, by = j, "budget" if all(r.startswith("the label budget") for r in st.reasons) else "rule"
                break
    pick = list(steps).index(keep) if keep is not None else stop
    peak = int(np.argmax(truth))
    return {"labels": watch.spent if watch is not None else 0, "stop_step": int(steps[stop]),
            "stop_kl": float(kl[stop]), "pick_step": int(steps[pick]), "pick_kl": float(kl[pick]),
            "gold_stop": float(truth[stop]), "gold_pick": float(truth[pick]), "gold_peak": float(truth[peak]),
            "kl_peak": float(kl[peak]), "regret_stop": regret(truth, stop), "regret_pick": regret(truth, pick),
            "early": stopped_early(truth, stop), "stopped_by": by, "false_stop": by == "rule" and stop < peak}


def labeller(gold: np.ndarray, judge: str, pool_gold: np.ndarray, per_prompt: int, rng: np.random.Generator):
    """label_fn(j) -> label(n): n labels of evaluation j's responses not labelled yet, in a random order; pairwise
    against a random pi0 pool response to the same prompt."""
    def label_fn(j):
        order, pos = rng.permutation(gold.shape[1]), [0]

        def label(n):
            idx = order[pos[0]:pos[0] + n]
            pos[0] += len(idx)
            g = gold[j, idx]
            if judge == "pointwise":
                return g
            base = pool_gold[idx // per_prompt, rng.integers(pool_gold.shape[1], size=len(idx))]
            return (g > base) + 0.5 * (g == base)
        return label
    return label_fn


def budget_table(run: Run, art: Artifacts, rl_df: pd.DataFrame, samples: dict) -> pd.DataFrame:
    c, b, world = run.cfg, run.cfg.budget, art.world
    P, S = c.rl.eval_prompts, c.rl.eval_samples
    prompt_idx = np.repeat(world.eval_prompt_idx[:P], S)
    pool_gold = art.pool_gold.gold.reshape(len(world.eval_prompt_idx), -1)[:P]
    rows = []
    for ci, (curve_id, toks) in enumerate(samples.items()):
        name = curve_id.name
        curve = rl_df[rl_df["curve"] == name].sort_values("step")
        gold = np.stack([world.gold(prompt_idx, t, c.gold, art.gold_norm)[0] for t in toks])  # [evals, responses]
        cases = [("none", 0, None), ("fixed set", b.fixed_set * len(curve),
                                     dict(strategy="fixed", budget=b.fixed_set * len(curve), per_eval=b.fixed_set,
                                          z=b.z, alpha=b.alpha))]
        cases += [(s, B, settings(s, B, len(curve), b)) for s in b.strategies for B in b.budgets if B > 0]
        for judge in b.judges:
            for strategy, budget, kw in cases:
                if strategy != "none" and kw is None:
                    continue
                for rep in range(b.repeats if kw is not None else 1):
                    rng = run.rng("budget.labels", ci, rep, budget, b.strategies.index(strategy)
                                  if strategy in b.strategies else 9, b.judges.index(judge))
                    out = play(curve, gold, labeller(gold, judge, pool_gold, S, rng),
                               BudgetWatch(**kw) if kw is not None else None)
                    rows.append({"curve": name, "rm": curve["rm"].iloc[0], "judge": judge, "strategy": strategy,
                                 "budget": budget, "rep": rep, **out})
    return pd.DataFrame(rows, columns=BUDGET_COLUMNS)


def summary_table(df: pd.DataFrame) -> pd.DataFrame:
    """Medians over every run (curves x repeats) of each judge, strategy and budget."""
    rows = []
    for (judge, strategy, budget), g in df.groupby(["judge", "strategy", "budget"], sort=False):
        rows.append({"judge": judge, "strategy": strategy, "budget": budget, "runs": len(g),
                     "labels": float(g["labels"].median()), "labels_max": int(g["labels"].max()),
                     "regret_stop": float(g["regret_stop"].median()), "regret_pick": float(g["regret_pick"].median()),
                     "regret_pick_p90": float(g["regret_pick"].quantile(0.9)), "early": float(g["early"].mean()),
                     "rule_stops": float((g["stopped_by"] == "rule").mean()),
                     "false_stops": float(g["false_stop"].astype(str).str.lower().eq("true").mean())})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def bon_choice_table(run: Run, art: Artifacts) -> pd.DataFrame:
    c, b = run.cfg, run.cfg.budget
    P, N = len(art.world.eval_prompt_idx), c.bon.pool_size
    gold = art.pool_gold.gold.reshape(P, N)
    ns = np.array(default_ns(N))
    half = P // 2
    rows = []
    for p in art.family:
        proxy = art.scores[p.name].reshape(P, N)
        truth = best_of_n(proxy[half:], gold[half:], ns)
        truth = truth - truth[0]
        best = int(np.argmax(truth))
        for m in b.bon_prompts:
            for rep in range(b.repeats):
                rng = run.rng("budget.bon_choice", p.params, m, rep)
                cal = rng.choice(half, size=min(m, half), replace=False)
                ch = choose_n(proxy[cal], lambda i, idx, cal=cal: gold[cal[i], idx], b.bon_top, b.bon_rest, rng, ns,
                              n_boot=c.bon.n_boot // 2, ci=c.fit.ci)
                j = list(ns).index(ch.n)
                rows.append({"rm": p.name, "m": m, "rep": rep, "labels": ch.labels, "n": ch.n, "n_lo": ch.n_lo,
                             "n_hi": ch.n_hi, "n_best": int(ns[best]), "gold_n": float(truth[j]),
                             "gold_best": float(truth[best]),
                             "regret": regret(truth, j)})
    return pd.DataFrame(rows, columns=BON_CHOICE_COLUMNS)


def run_budget(run: Run, art: Artifacts, before: dict) -> Output:
    rl = before.get("rl")
    with run.stage("budget"):
        tables = {"bon_choice": bon_choice_table(run, art)}
        if rl is not None and rl.samples:
            df = budget_table(run, art, rl.tables["rl"], rl.samples)
            tables.update(budget=df, budget_summary=summary_table(df))
        return Output(tables)


STUDY = Study("budget", run_budget, tables=("budget", "budget_summary", "bon_choice"), section="budget",
              needs=("rl",))

"""AI-labelled preferences (RLAIF): proxies that learn from an AI labeller's choices instead of gold's.

A labeller scores both responses of each pi0 pair and the higher wins (deterministic, as gold labels are):
  rm:SIZE              a proxy of the run's family (a reward model as the judge);
  length:B             gold plus B per word (gold-std units): a judge that favours longer answers;
  dim:NAME:F           gold with dimension NAME's weight multiplied by F: a judge that over-weighs one trait.
Proxies of each size in aif.sizes are trained on each labeller's labels of the same pairs, at the same count
as the gold-labelled family, and run through best-of-n on the same pool.

`aif.csv`: per labeller and size, the best-of-n curve (gold with interval, length), the labeller's agreement with
gold on the training pairs and the proxy's validation accuracy against gold. The gold-labelled proxy of the
same size is included as labeller "gold".
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import torch

from ..config import parse_labeller
from ..measure import bon
from ..measure.labels import label_pairs
from ..models.reward import score
from ..pipeline.artifacts import Artifacts
from ..pipeline.build import labelled_at
from ..pipeline.proxies import score_pool, train_proxies
from ..pipeline.run import Run
from .base import Output, Study

AIF_COLUMNS = ["labeller", "rm", "rm_params", "agreement", "val_acc", "n", "kl_bound", "proxy", "gold", "gold_lo",
               "gold_hi", "length"]


def labeller_scores(run: Run, world, spec: tuple, prompt_idx, resp, art: Artifacts) -> np.ndarray:
    """The labeller's score of each (prompt, response); only its order within a pair matters."""
    c = run.cfg
    if spec[0] == "rm":
        return score(art.proxy(spec[1]).model, torch.tensor(world.prompt_ids[prompt_idx], device=run.device),
                     torch.tensor(resp.astype(np.int64), device=run.device), world.pad)
    if spec[0] == "length":
        g, dims = world.gold(prompt_idx, resp, c.gold, art.gold_norm)
        return g + spec[1] * dims["n_words"]
    w = f"w_{spec[1]}"
    g, _ = world.gold(prompt_idx, resp, replace(c.gold, **{w: getattr(c.gold, w) * spec[2]}), art.gold_norm)
    return g


def aif_table(run: Run, art: Artifacts) -> pd.DataFrame:
    c, a, world, pairs, pool_gold = run.cfg, run.cfg.aif, art.world, art.pairs, art.pool_gold
    _, val_true, center = labelled_at(run, art, 0.0)
    n = c.rm.n_train
    pidx, ra, rb = pairs.prompt_idx[:n], pairs.a[:n], pairs.b[:n]
    m, s = pairs.gold_norm
    gold_a_first = (pairs.gold_raw_a[:n] - m) / s >= (pairs.gold_raw_b[:n] - m) / s
    P, N = len(world.eval_prompt_idx), c.bon.pool_size
    ns = bon.default_ns(N)
    gold = pool_gold.gold.reshape(P, N)
    words = pool_gold.dims["n_words"].reshape(P, N).astype(float)
    family_labels, _, _ = art.labelled  # the family's, at rm.label_noise
    labelled = {}  # every labeller's labels of the pairs and their agreement with gold's
    for spec_text in a.labellers:
        spec = parse_labeller(spec_text, c.rm.sizes)
        sa = labeller_scores(run, world, spec, pidx, ra, art)
        sb = labeller_scores(run, world, spec, pidx, rb, art)
        labelled[spec_text] = (label_pairs(pidx, ra, rb, sa, sb, 0.0, np.random.default_rng(0)),
                               float(((sa >= sb) == gold_a_first).mean()))
    proxies = iter(train_proxies(run, world, [
        dict(size=size, n=n, train_all=labelled[t][0], val_true=val_true, center=center, name=f"{size}@{t}",
             tag=f"aif/{t}") for size in a.sizes for t in a.labellers], "aif proxies"))
    trained = []
    for size in a.sizes:
        family = next((p for p in art.proxies if p.name == size), None)
        if family is not None:
            trained.append(("gold", float(1 - family_labels.flipped[:n].mean()), family, art.scores[size]))
        for spec_text in a.labellers:
            p = next(proxies)
            trained.append((spec_text, labelled[spec_text][1], p, score_pool(run, world, art.pool, [p])[p.name]))
    rows = []
    for labeller, agreement, p, sc in trained:
        r = sc.reshape(P, N)
        g, lo, hi, _ = bon.gain_curve(r, gold, ns, c.bon.n_boot, run.seed("aif.resamples"), c.fit.ci)
        px, ln = bon.best_of_n(r, r, ns), bon.best_of_n(r, words, ns)
        for j, nn in enumerate(ns):
            rows.append({"labeller": labeller, "rm": p.size, "rm_params": p.params, "agreement": agreement,
                         "val_acc": p.val_acc, "n": nn, "kl_bound": float(bon.kl_bound(nn)),
                         "proxy": px[j] - px[0], "gold": g[j], "gold_lo": lo[j], "gold_hi": hi[j],
                         "length": ln[j]})
    return pd.DataFrame(rows, columns=AIF_COLUMNS)


def run_aif(run: Run, art: Artifacts, before: dict) -> Output:
    return Output({"aif": aif_table(run, art)})


STUDY = Study("aif", run_aif, tables=("aif",), section="aif")

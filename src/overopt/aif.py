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

from . import bon
from .labels import label_pairs
from .reward import score
from .world.toy import GOLD_DIMS

AIF_COLUMNS = ["labeller", "rm", "rm_params", "agreement", "val_acc", "n", "kl_bound", "proxy", "gold", "gold_lo",
               "gold_hi", "length"]


def parse_labeller(spec: str, rm_sizes, key: str = "aif.labellers") -> tuple:
    """'rm:96x3' -> ("rm", "96x3"); 'length:0.05' -> ("length", 0.05); 'dim:sentiment:3' -> ("dim", "sentiment", 3.0).
    Raises ValueError naming the key."""
    parts = str(spec).split(":")
    try:
        if parts[0] == "rm" and len(parts) == 2 and parts[1] in rm_sizes:
            return ("rm", parts[1])
        if parts[0] == "length" and len(parts) == 2:
            return ("length", float(parts[1]))
        if parts[0] == "dim" and len(parts) == 3 and parts[1] in GOLD_DIMS and float(parts[2]) >= 0:
            return ("dim", parts[1], float(parts[2]))
    except ValueError:
        pass
    raise ValueError(f"config key '{key}' entry {spec!r} must be rm:SIZE (one of rm.sizes), length:B or "
                     f"dim:NAME:F (NAME one of {', '.join(GOLD_DIMS)}, F >= 0)")


def labeller_scores(run, world, spec: tuple, prompt_idx, resp, proxies: list[dict], gold_norm) -> np.ndarray:
    """The labeller's score of each (prompt, response); only its order within a pair matters."""
    c = run.cfg
    if spec[0] == "rm":
        proxy = next(p for p in proxies if p["rm"] == spec[1])
        return score(proxy["model"], torch.tensor(world.prompt_ids[prompt_idx], device=run.device),
                     torch.tensor(resp.astype(np.int64), device=run.device), world.pad)
    if spec[0] == "length":
        g, dims = world.gold(prompt_idx, resp, c.gold, gold_norm)
        return g + spec[1] * dims["n_words"]
    w = f"w_{spec[1]}"
    g, _ = world.gold(prompt_idx, resp, replace(c.gold, **{w: getattr(c.gold, w) * spec[2]}), gold_norm)
    return g


def aif_table(run, world, pairs_data: dict, proxies: list[dict], pool: dict, scores: dict, pool_gold,
              gold_norm) -> pd.DataFrame:
    from .experiment import labelled_pairs, score_pool, train_proxy

    c, a = run.cfg, run.cfg.aif
    _, val_true, center = labelled_pairs(run, world, pairs_data, 0.0)
    n = c.rm.n_train
    pidx, ra, rb = pairs_data["prompt_idx"][:n], pairs_data["a"][:n], pairs_data["b"][:n]
    m, s = pairs_data["gold_mean"], pairs_data["gold_std"]
    gold_a_first = (pairs_data["gold_raw_a"][:n] - m) / s >= (pairs_data["gold_raw_b"][:n] - m) / s
    P, N = len(world.eval_prompt_idx), c.bon.pool_size
    ns = bon.default_ns(N)
    gold = pool_gold[0].reshape(P, N)
    words = pool_gold[1]["n_words"].reshape(P, N).astype(float)
    family_labels, _, _ = labelled_pairs(run, world, pairs_data)  # the family's, at rm.label_noise
    trained = []
    for size in a.sizes:
        family = next((p for p in proxies if p["rm"] == size), None)
        if family is not None:
            trained.append(("gold", float(1 - family_labels.flipped[:n].mean()), family, scores[size]))
        for spec_text in a.labellers:
            spec = parse_labeller(spec_text, c.rm.sizes)
            sa = labeller_scores(run, world, spec, pidx, ra, proxies, gold_norm)
            sb = labeller_scores(run, world, spec, pidx, rb, proxies, gold_norm)
            labels = label_pairs(pidx, ra, rb, sa, sb, 0.0, np.random.default_rng(0))
            agreement = float(((sa >= sb) == gold_a_first).mean())
            p = train_proxy(run, world, size, n, labels, val_true, center, f"{size}@{spec_text}",
                            tag=f"aif/{spec_text}")
            trained.append((spec_text, agreement, p, score_pool(run, world, pool, [p])[p["rm"]]))
    rows = []
    for labeller, agreement, p, sc in trained:
        r = sc.reshape(P, N)
        g, lo, hi, _ = bon.gain_curve(r, gold, ns, c.bon.n_boot, run.seed(95), c.fit.ci)
        px, ln = bon.best_of_n(r, r, ns), bon.best_of_n(r, words, ns)
        for j, nn in enumerate(ns):
            rows.append({"labeller": labeller, "rm": p["size"], "rm_params": p["params"], "agreement": agreement,
                         "val_acc": p["val_acc"], "n": nn, "kl_bound": float(bon.kl_bound(nn)),
                         "proxy": px[j] - px[0], "gold": g[j], "gold_lo": lo[j], "gold_hi": hi[j],
                         "length": ln[j]})
    return pd.DataFrame(rows, columns=AIF_COLUMNS)

"""Length and the proxies: how each proxy scores length, within pi0's distribution and beyond it, and what a
length-normalised reward changes under best-of-n.

`length.csv`: mean proxy score and mean gold per response length (words), for pi0's samples (the best-of-n
pool) and for grammar texts longer than any the world writes (6 to 9 sentences). `length_bon.csv`: best-of-n
against each proxy as trained and against its length-normalised version (its slope on length under pi0
removed, `reward.length_slope`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..measure import bon
from ..models.reward import Proxy, length_slope, score
from ..pipeline.artifacts import Artifacts
from ..pipeline.run import Run
from .base import Output, Study

LENGTH_COLUMNS = ["rm", "rm_params", "source", "words", "count", "proxy", "gold"]
LENGTH_BON_COLUMNS = ["rm", "rm_params", "variant", "length_coef", "n", "kl_bound", "gold", "gold_lo", "gold_hi",
                      "length"]
MIN_COUNT = 20  # a length bucket needs this many texts to be shown


def long_texts(world, prompt_idx: np.ndarray, max_tokens: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Grammar reviews of 6-9 sentences (the world writes at most 5) that fit ``max_tokens`` with their end
    token: (prompt index, response ids right-padded)."""
    rng = np.random.default_rng(seed)
    pidx, texts = [], []
    for p in prompt_idx:
        for k in (6, 7, 8, 9):
            ids = [world.tok2id[w] for w in world.write(int(p), rng, n_sentences=k)] + [world.eos]
            if len(ids) <= max_tokens:
                pidx.append(p)
                texts.append(ids)
    out = np.full((len(texts), max_tokens), world.pad, dtype=np.int64)
    for i, t in enumerate(texts):
        out[i, : len(t)] = t
    return np.array(pidx, dtype=np.int64), out


def _buckets(rm: Proxy, source: str, words: np.ndarray, proxy: np.ndarray, gold: np.ndarray) -> list[dict]:
    rows = []
    for w in np.unique(words):
        m = words == w
        if m.sum() >= MIN_COUNT:
            rows.append({"rm": rm.name, "rm_params": rm.params, "source": source, "words": int(w),
                         "count": int(m.sum()), "proxy": float(proxy[m].mean()), "gold": float(gold[m].mean())})
    return rows


def length_tables(run: Run, art: Artifacts) -> Output:
    c, world, pool_gold, gold_norm = run.cfg, art.world, art.pool_gold, art.gold_norm
    family = art.family
    words = pool_gold.dims["n_words"]
    if world.kind == "toy":  # texts longer than any pi0 writes: the toy grammar can make them
        lp, lr = long_texts(world, world.eval_prompt_idx, c.world.max_new_tokens, run.seed("length.long_texts"))
    else:
        lp, lr = np.zeros(0, dtype=np.int64), np.zeros((0, c.world.max_new_tokens), dtype=np.int64)
    long_gold, long_dims = world.gold(lp, lr, c.gold, gold_norm) if len(lr) else (None, None)
    prompts = torch.tensor(world.prompt_ids[lp], device=run.device)
    resp = torch.tensor(lr, device=run.device)
    P, N = len(world.eval_prompt_idx), c.bon.pool_size
    ns = bon.default_ns(N)
    gold = pool_gold.gold.reshape(P, N)
    rows, bon_rows = [], []
    for p in family:
        s = art.scores[p.name]
        rows += _buckets(p, "pi0", words, s, pool_gold.gold)
        if len(lr):  # none fit when max_new_tokens is small
            rows += _buckets(p, "beyond (6-9 sentences)", long_dims["n_words"],
                             score(p.model, prompts, resp, world.pad), long_gold)
        b = length_slope(s, words + 1)  # + 1: the end token, as the proxy counts tokens
        for variant, r, coef in (("as trained", s, 0.0), ("length-normalised", s - b * (words + 1), b)):
            r = r.reshape(P, N)
            g, lo, hi, _ = bon.gain_curve(r, gold, ns, c.bon.n_boot, run.seed("length.resamples"), c.fit.ci)
            ln = bon.best_of_n(r, words.reshape(P, N).astype(float), ns)
            for j, n in enumerate(ns):
                bon_rows.append({"rm": p.name, "rm_params": p.params, "variant": variant, "length_coef": coef,
                                 "n": n, "kl_bound": float(bon.kl_bound(n)), "gold": g[j], "gold_lo": lo[j],
                                 "gold_hi": hi[j], "length": ln[j]})
    return Output({"length": pd.DataFrame(rows, columns=LENGTH_COLUMNS),
                   "length_bon": pd.DataFrame(bon_rows, columns=LENGTH_BON_COLUMNS)})


def run_length(run: Run, art: Artifacts, before: dict) -> Output:
    with run.stage("length"):
        return length_tables(run, art)


STUDY = Study("length", run_length, tables=("length", "length_bon"))

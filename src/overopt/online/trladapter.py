"""Reward models of a run as TRL `reward_funcs`: a proxy (or an ensemble objective) to optimize, and gold
logged beside it at weight zero, so a TRL run's own log holds the gold curve the monitor must never see.

    funcs, weights = toy_reward_funcs(world, proxy=rm, gold=(gold_cfg, gold_norm))
    RLOOConfig(..., reward_weights=weights); RLOOTrainer(..., reward_funcs=funcs)
    # trainer_state.json then logs rewards/proxy/mean and rewards/gold/mean; `reward` is the proxy alone

A TRL reward function takes (prompts, completions, **kwargs) and returns one float per completion; TRL names its
log columns after the function's ``__name__``.
"""
from __future__ import annotations

import numpy as np
import torch

from ..models.reward import score


def _encode(world, texts: list[str], length: int | None = None) -> np.ndarray:
    """Word ids of texts, right-padded (responses end with the end token)."""
    ids = [[world.tok2id.get(w, world.tok2id["[UNK]"]) for w in t.split()] for t in texts]
    T = length or max(len(i) for i in ids) + 1
    out = np.full((len(ids), T), world.pad, dtype=np.int64)
    for k, i in enumerate(ids):
        i = i[: T - 1] + [world.eos] if length is None else i[:T]
        out[k, : len(i)] = i
    return out


def _prompt_ids(world, prompts: list[str]) -> np.ndarray:
    ids = _encode(world, prompts, world.prompt_len - 1)
    return np.concatenate([np.full((len(ids), 1), world.tok2id["[BOS]"]), ids], 1)


def reward_func(world, model, name: str, device="cpu"):
    """A TRL reward function scoring each (prompt, completion) text with a reward model of the toy world
    (a proxy, an `EnsembleRM` or a `WeightedSumRM`)."""
    def f(prompts, completions, **kwargs):
        p = torch.tensor(_prompt_ids(world, list(prompts)), device=device)
        r = torch.tensor(_encode(world, list(completions)), device=device)
        return [float(x) for x in score(model, p, r, world.pad)]
    f.__name__ = name
    return f


def gold_func(world, gold_cfg, gold_norm, name: str = "gold"):
    """A TRL reward function giving each completion its gold reward (in pi0 standard deviations)."""
    prompt_index = {world.prompt_text(i): i for i in range(len(world.prompts))}

    def f(prompts, completions, **kwargs):
        idx = np.array([prompt_index[p.strip()] for p in prompts])
        g, _ = world.gold(idx, _encode(world, list(completions)), gold_cfg, gold_norm)
        return [float(x) for x in g]
    f.__name__ = name
    return f


def toy_reward_funcs(world, proxy=None, gold=None, device="cpu") -> tuple[list, list[float]]:
    """(reward_funcs, reward_weights) for TRL: ``proxy`` (a reward model) at weight 1, and ``gold`` (a
    (GoldConfig, (mean, std)) pair) at weight 0, logged only."""
    funcs, weights = [], []
    if proxy is not None:
        funcs.append(reward_func(world, proxy, "proxy", device))
        weights.append(1.0)
    if gold is not None:
        funcs.append(gold_func(world, *gold))
        weights.append(0.0)
    if not funcs:
        raise ValueError("toy_reward_funcs needs a proxy, gold, or both")
    return funcs, weights

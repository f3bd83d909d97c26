"""Iterated RLHF (Gao et al. 2022, sec. 4.3): relabel the current policy's samples, retrain the proxy.

The curve's steps are split into equal rounds. At each round boundary, fresh pairs of the current
policy's samples on training prompts are labelled by gold, the proxy is retrained from scratch on all
labels so far, and optimization continues against it (KL is still measured against pi0). With
k rounds of equal KL, Gao et al.'s form predicts R = d (alpha - beta ln d + beta ln k).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace
from functools import partial
from typing import Callable

import numpy as np

from ..config import GoldConfig
from ..measure.labels import Pairs, label_pairs
from ..models.policy import as_ids, sample_in_batches
from ..models.reward import Proxy, RewardModel, score, train_rm
from ..streams import stream_rng, stream_seed


@dataclass(frozen=True)
class IteratedSettings:
    """An iterated-RLHF curve: its rounds, the pairs each adds, and how its proxy retrains (as the family's)."""
    rounds: int               # rounds of equal steps; the proxy retrains at each boundary
    total_steps: int          # the curve's RL steps
    pairs_per_round: int      # gold-labelled pairs of the current policy added each round
    max_new_tokens: int
    sample_batch: int         # sequences per sampling batch
    label_noise: float        # rm.label_noise, applied to the new labels too
    epochs: int               # the proxy's training: rm.epochs, rm.batch_size, its rate and weight decay
    batch_size: int
    lr: float
    weight_decay: float
    gold: GoldConfig
    seed: int                 # the run's seed: the iterated.* streams (`overopt.streams`) derive from it
    device: str = "cpu"


class IteratedProxy:
    """Holds the current proxy of an iterated-RLHF curve and retrains it at round boundaries.

    ``new_rm(seed)`` gives an untrained proxy of the optimized proxy's size on the device (the world decides what
    that is: `pipeline.proxies.new_rm`); round k's proxy is named "<proxy>#r<k>"."""

    def __init__(self, settings: IteratedSettings, world, proxy: Proxy, new_rm: Callable[[int], RewardModel],
                 train: Pairs, center: tuple, gold_norm: tuple):
        self.s, self.world, self.base, self.new_rm = settings, world, proxy, new_rm
        self.train, self.center, self.gold_norm = train, center, gold_norm
        self.boundaries = [int(round(settings.total_steps * r / settings.rounds)) for r in range(1, settings.rounds)]
        self.current = proxy
        self.extra: list[Pairs] = []

    def _rm(self) -> RewardModel:
        return self.new_rm(stream_seed(self.s.seed, "iterated.proxy_init", len(self.extra)))

    def before_step(self, step: int, policy) -> None:
        if step in self.boundaries and len(self.extra) == self.boundaries.index(step):
            self._advance(policy, step)

    def _advance(self, policy, step: int) -> None:
        s, world = self.s, self.world
        rng = stream_rng(s.seed, "iterated.pair_prompts", step)
        pidx = world.train_prompt_idx[rng.integers(len(world.train_prompt_idx), size=s.pairs_per_round)]
        prompts = as_ids(world.prompt_ids[np.repeat(pidx, 2)], device=s.device)
        out = sample_in_batches(policy, prompts, s.sample_batch, s.max_new_tokens, world.eos, world.pad,
                                stream_seed(s.seed, "iterated.pair_sampling", step))
        tok = out.tokens.cpu().numpy()
        g, _ = world.gold(np.repeat(pidx, 2), tok, s.gold, self.gold_norm)
        self.extra.append(label_pairs(pidx, tok[0::2], tok[1::2], g[0::2], g[1::2], s.label_noise, rng))
        self._fit()

    def _fit(self) -> None:
        s = self.s
        T = max(p.chosen.shape[1] for p in [self.train, *self.extra])
        pad = lambda a: np.pad(a, ((0, 0), (0, T - a.shape[1])), constant_values=self.world.pad)  # noqa: E731
        parts = [self.train, *self.extra]
        t = partial(as_ids, device=s.device)
        prompts = t(self.world.prompt_ids[np.concatenate([p.prompt_idx for p in parts])])
        chosen = t(np.concatenate([pad(p.chosen) for p in parts]))
        rejected = t(np.concatenate([pad(p.rejected) for p in parts]))
        rm = self._rm()
        train_rm(rm, prompts, chosen, rejected, s.epochs, s.batch_size, s.lr, s.weight_decay,
                 stream_seed(s.seed, "iterated.proxy_data_order", len(self.extra)), self.world.pad)
        rm.offset.fill_(float(score(rm, *self.center, self.world.pad).mean()))
        self.current = replace(self.base, name=f"{self.base.name}#r{len(self.extra) + 1}", model=rm.eval())

    def state(self) -> dict:
        return {"extra": [dataclasses.asdict(p) for p in self.extra],
                "rm_state": {k: v.cpu() for k, v in self.current.model.state_dict().items()},
                "rm_name": self.current.name}

    def load(self, state: dict) -> None:
        self.extra = [Pairs(**p) for p in state["extra"]]
        if self.extra:
            rm = self._rm()
            rm.load_state_dict(state["rm_state"])
            self.current = replace(self.base, name=state["rm_name"], model=rm.eval())

"""Iterated RLHF (Gao et al. 2022, sec. 4.3): relabel the current policy's samples, retrain the proxy.

The curve's steps are split into equal rounds. At each round boundary, fresh pairs of the current
policy's samples on training prompts are labelled by gold, the proxy is retrained from scratch on all
labels so far, and optimization continues against it (KL is still measured against pi0). With
k rounds of equal KL, Gao et al.'s form predicts R = d (alpha - beta ln d + beta ln k).
"""
from __future__ import annotations

import dataclasses
from dataclasses import replace
from functools import partial

import numpy as np
import torch

from ..config import rm_lr
from ..measure.labels import Pairs, label_pairs
from ..models.policy import as_ids, sample_in_batches
from ..models.reward import Proxy, build_rm, score, train_rm


class IteratedProxy:
    """Holds the current proxy of an iterated-RLHF curve and retrains it at round boundaries."""

    def __init__(self, run, world, proxy: Proxy, hidden: int, layers: int, train: Pairs, center: tuple,
                 gold_norm: tuple, rounds: int, total_steps: int, pairs_per_round: int):
        self.run, self.world, self.hidden, self.layers = run, world, hidden, layers
        self.train, self.center, self.gold_norm = train, center, gold_norm
        self.boundaries = [int(round(total_steps * r / rounds)) for r in range(1, rounds)]
        self.pairs_per_round = pairs_per_round
        self.current = proxy
        self.extra: list[Pairs] = []

    def _rm(self):
        c = self.run.cfg
        return build_rm(len(self.world.vocab), self.hidden, self.layers,
                        self.world.prompt_len + c.world.max_new_tokens + 1,
                        self.run.seed(70, len(self.extra))).to(self.run.device)

    def before_step(self, step: int, policy) -> None:
        if step in self.boundaries and len(self.extra) == self.boundaries.index(step):
            self._advance(policy, step)

    def _advance(self, policy, step: int) -> None:
        run, world, c = self.run, self.world, self.run.cfg
        rng = np.random.default_rng([c.run.seed, 71, step])
        pidx = world.train_prompt_idx[rng.integers(len(world.train_prompt_idx), size=self.pairs_per_round)]
        prompts = torch.tensor(world.prompt_ids[np.repeat(pidx, 2)], device=run.device)
        s = sample_in_batches(policy, prompts, c.policy.sample_batch, c.world.max_new_tokens, world.eos, world.pad,
                              run.seed(72, step))
        tok = s.tokens.cpu().numpy()
        g, _ = world.gold(np.repeat(pidx, 2), tok, c.gold, self.gold_norm)
        self.extra.append(label_pairs(pidx, tok[0::2], tok[1::2], g[0::2], g[1::2], c.rm.label_noise, rng))
        self._fit()

    def _fit(self) -> None:
        run, c = self.run, self.run.cfg
        T = max(p.chosen.shape[1] for p in [self.train, *self.extra])
        pad = lambda a: np.pad(a, ((0, 0), (0, T - a.shape[1])), constant_values=self.world.pad)  # noqa: E731
        parts = [self.train, *self.extra]
        t = partial(as_ids, device=run.device)
        prompts = t(self.world.prompt_ids[np.concatenate([p.prompt_idx for p in parts])])
        chosen = t(np.concatenate([pad(p.chosen) for p in parts]))
        rejected = t(np.concatenate([pad(p.rejected) for p in parts]))
        rm = self._rm()
        train_rm(rm, prompts, chosen, rejected, c.rm.epochs, c.rm.batch_size,
                 rm_lr(c.rm, self.hidden, self.layers), c.rm.weight_decay,
                 run.seed(73, len(self.extra)), self.world.pad)
        rm.offset.fill_(float(score(rm, *self.center, self.world.pad).mean()))
        self.current = replace(self.current, name=f"{self.current.name.split('#')[0]}#r{len(self.extra) + 1}",
                               model=rm.eval())

    def state(self) -> dict:
        return {"extra": [dataclasses.asdict(p) for p in self.extra], "rm_state": {k: v.cpu() for k, v in self.current.model.state_dict().items()},
                "rm_name": self.current.name}

    def load(self, state: dict) -> None:
        self.extra = [Pairs(**p) for p in state["extra"]]
        if self.extra:
            rm = self._rm()
            rm.load_state_dict(state["rm_state"])
            self.current = replace(self.current, name=state["rm_name"], model=rm.eval())

"""The shared evaluator: sample a policy on held-out prompts and measure KL, proxy, gold, its dimensions and the
gold win rate, against the reference policy's own baseline sample. RL, direct alignment, ensembles and the
multi-objective study all evaluate through it, so their curves share one x-axis and one baseline.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..config import GoldConfig
from ..models.ensemble import EnsembleRM, member_scores
from ..models.policy import sample
from ..models.reward import Proxy, score
from ..stats import tie_accuracy
from .kl import sequence_kl

EVAL_VERSION = 5  # bump when an evaluation gains or changes a column: cached curves are then recomputed


@dataclass(frozen=True)
class EvalSettings:
    """What one evaluation measures on (`pipeline.curves.eval_settings` fills it from a run's config)."""
    prompts: int            # held-out prompts per evaluation (the world's first ones)
    samples: int            # responses per prompt
    max_new_tokens: int     # longest response, end token included
    gold: GoldConfig        # the gold the world scores with
    device: str = "cpu"


class Evaluator:
    """Samples the policy on held-out prompts and measures KL, proxy, gold and its dimensions.

    Gains are over the reference policy's mean on the same prompts, taken from a baseline sample
    of it (for pi0, the best-of-n pool: N samples per prompt), so RL, best-of-n and direct alignment
    share one baseline and one KL definition. The gold win rate is against every baseline sample
    of the same prompt (ties count half).
    """

    def __init__(self, settings: EvalSettings, world, ref, base_prompt_idx: np.ndarray, base_tokens: np.ndarray,
                 base_scores: dict, gold_norm, watch: EnsembleRM | None = None):
        s = self.settings = settings
        self.world, self.pi0, self.gold_norm, self.watch = world, ref, gold_norm, watch
        self.n_prompts = s.prompts
        self.prompt_idx = np.repeat(world.eval_prompt_idx[: self.n_prompts], s.samples)
        self.prompts = torch.tensor(world.prompt_ids[self.prompt_idx], device=s.device)
        P = len(np.unique(base_prompt_idx))  # the baseline is prompt-major, M samples per prompt
        gold, dims = world.gold(base_prompt_idx, base_tokens, s.gold, gold_norm)
        self.base_gold_all = gold.reshape(P, -1)[: self.n_prompts]
        self.base_gold = self.base_gold_all.mean(1)
        self.base_dims = {d: dims[d].reshape(P, -1)[: self.n_prompts].mean() for d in world.dims}
        self.base_proxy = {k: v.reshape(P, -1)[: self.n_prompts].mean() for k, v in base_scores.items()}

    def winrate(self, gold: np.ndarray) -> float:
        """Mean over samples of P(sample's gold > a baseline sample's gold on its prompt), ties half."""
        base = self.base_gold_all[np.repeat(np.arange(self.n_prompts), len(gold) // self.n_prompts)]
        return float(tie_accuracy(gold[:, None], base, axis=1).mean())

    @torch.no_grad()
    def __call__(self, policy, proxy: Proxy | None, seed: int) -> tuple[dict, np.ndarray]:
        """One evaluation; without a proxy (direct alignment) the proxy column is NaN."""
        T = self.settings.max_new_tokens
        g = torch.Generator(device=self.prompts.device).manual_seed(seed)
        s = sample(policy, self.prompts, T, self.world.eos, self.world.pad, generator=g)
        kls = sequence_kl(policy, self.pi0, self.prompts, s.tokens, self.world.pad, self.world.eos)
        tokens = s.tokens.cpu().numpy()
        # kept by run_curve (right-padded to the full response length), so other reward models can score it later
        self.last_tokens = np.full((len(tokens), T), self.world.pad, dtype=np.int32)
        self.last_tokens[:, : tokens.shape[1]] = tokens
        gold_all, dims = self.world.gold(self.prompt_idx, tokens, self.settings.gold, self.gold_norm)
        per_prompt = gold_all.reshape(self.n_prompts, -1).mean(1) - self.base_gold
        px = float("nan")
        if proxy is not None:  # a retrained proxy (iterated RLHF) is centred on pi0 itself: its baseline is 0
            px = (score(proxy.model, self.prompts, s.tokens, self.world.pad).mean()
                  - self.base_proxy.get(proxy.name, 0.0))
        row = {"kl": float(kls["kl"].mean()), "kl_k1": float(kls["k1"].mean()), "kl_k3": float(kls["k3"].mean()),
               "proxy": float(px), "gold": float(per_prompt.mean()), "winrate": self.winrate(gold_all),
               "entropy": float(kls["entropy"].mean()),
               **{f"gold_{d}": float(dims[d].mean() - self.base_dims[d]) for d in self.world.dims},
               "length": float(dims["n_words"].mean())}
        if proxy is not None and self.watch is not None:  # an ensemble watched along the curve
            spread = member_scores(self.watch, self.prompts, s.tokens, self.world.pad).std(0)
            row["disagreement"] = float(spread.mean())
        return row, per_prompt

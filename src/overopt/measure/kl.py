"""Sequence KL(pi || pi0) estimators, one definition shared by every optimizer's curve.

For responses y sampled from pi (temperature 1, no truncation), with per-token log-ratio
l_t = log pi(y_t | x, y_<t) - log pi0(y_t | x, y_<t):

  kl  sum_t KL(pi(. | x, y_<t) || pi0(. | x, y_<t))  full vocabulary at each sampled prefix:
      unbiased for the sequence KL (chain rule) and far lower variance than k1
  k1  sum_t l_t                                      the sampled log-ratio (unbiased, noisy)
  k3  sum_t (exp(-l_t) - 1 + l_t)                    Schulman's k3, non-negative per token

Every position up to and including the end token counts: the KL of the distribution actually optimized.
"""
from __future__ import annotations

import torch

from ..models.policy import response_logits


def token_kl(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """Full-vocabulary KL(p || q) at each position: [..., V] logits -> [...]."""
    logp, logq = logits_p.log_softmax(-1), logits_q.log_softmax(-1)
    p = logp.exp()
    # Tokens p never emits (logits -inf, e.g. padding) contribute 0, not nan.
    return torch.where(p > 0, p * (logp - logq), torch.zeros_like(p)).sum(-1)


def k3(logratio: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Schulman's k3 per sequence: sum_t (exp(-l_t) - 1 + l_t) over the positions in ``mask`` (l: the per-token
    log-ratio log pi - log pi0), non-negative per token."""
    return ((-logratio).exp() - 1 + logratio).masked_fill(~mask, 0.0).sum(1)


def kl_from_logits(logits_p: torch.Tensor, logits_q: torch.Tensor, responses: torch.Tensor,
                   pad_id: int) -> dict[str, torch.Tensor]:
    """Per-sequence kl, k1, k3 and the policy's mean per-token entropy ([B] each) from policy and reference logits
    over the responses."""
    mask = responses != pad_id
    kl = (token_kl(logits_p, logits_q) * mask).sum(1)
    lp = logits_p.log_softmax(-1).gather(-1, responses[..., None]).squeeze(-1)
    lq = logits_q.log_softmax(-1).gather(-1, responses[..., None]).squeeze(-1)
    l = (lp - lq).masked_fill(~mask, 0.0)
    return {"kl": kl, "k1": l.sum(1), "k3": k3(l, mask), "entropy": token_entropy(logits_p, mask)}


def token_entropy(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The policy's entropy -sum_v p log p at each sampled prefix, averaged over a sequence's positions in ``mask``
    ([B]): the per-token entropy trainers log (TRL's ``entropy``)."""
    logp = logits.log_softmax(-1)
    h = -torch.where(logp.isfinite(), logp.exp() * logp, torch.zeros_like(logp)).sum(-1)
    return (h * mask).sum(1) / mask.sum(1).clamp(min=1)


@torch.no_grad()
def sequence_kl(policy, ref, prompt_ids: torch.Tensor, responses: torch.Tensor, pad_id: int, eos_id: int,
                prompt_mask: torch.Tensor | None = None, batch: int = 1024) -> dict[str, torch.Tensor]:
    """kl, k1, k3 of responses sampled from ``policy`` against ``ref`` (both HF causal LMs), and the policy's
    per-token entropy."""
    parts: dict[str, list] = {"kl": [], "k1": [], "k3": [], "entropy": []}
    for i in range(0, len(responses), batch):
        sl = slice(i, i + batch)
        pm = None if prompt_mask is None else prompt_mask[sl]
        lp = response_logits(policy, prompt_ids[sl], responses[sl], pad_id, pm, eos_id)
        lq = response_logits(ref, prompt_ids[sl], responses[sl], pad_id, pm, eos_id)
        for k, v in kl_from_logits(lp, lq, responses[sl], pad_id).items():
            parts[k].append(v)
    return {k: torch.cat(v) for k, v in parts.items()}

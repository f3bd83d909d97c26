"""GRPO's objective and the options practitioners switch between, as TRL's `GRPOTrainer` (trl 1.16) names them.

    adv = group_advantages(rewards.view(-1, G), "group")                 # [P, G] -> [P, G]
    per_token = grpo_token_loss(new, old, adv, mask, settings, ref_logp)  # [B, T] (or [B, 1] broadcast)
    loss = aggregate_loss(per_token, mask, settings.loss_type, max_len, tokens_per_step)

Group Relative Policy Optimization (Shao et al. 2024, DeepSeekMath sec. 4.1): G responses per prompt, the advantage
of each is its reward minus the group's mean, divided by the group's standard deviation; a PPO clipped ratio per
token; the KL to the starting policy as the per-token k3 estimator inside the loss (coefficient ``beta``), not in the
reward. The variants:

  scale_rewards  group (GRPO), batch (one standard deviation over the batch, as PPO-Lite) or none (Dr. GRPO,
                 Liu et al. 2025: the std divides out a question-level difficulty bias)
  loss_type      grpo: each sequence's token mean, then the batch mean (the original GRPO);
                 bnpo: the mean over the minibatch's tokens;
                 dapo: the sum over the minibatch's tokens over the generation batch's tokens per minibatch
                       (Yu et al. 2025, DAPO's token-level loss; TRL's default);
                 dr_grpo: the sum over tokens over minibatch size x max completion length (Dr. GRPO's constant)
  epsilon, epsilon_high
                 the ratio clipped to [1 - epsilon, 1 + epsilon_high] (DAPO's clip-higher; 0 = epsilon)
  importance_sampling_level
                 token (GRPO) or sequence: one ratio per response, the exponent of its mean token log-ratio
                 (GSPO, Zheng et al. 2025)
  beta           the k3 KL term's coefficient in the loss (TRL's default 0: no KL term)
  use_bias_correction_kl
                 the k3 term multiplied by the importance ratio, so its gradient is the unbiased reverse-KL
                 gradient off-policy (DeepSeek-V3.2, 2025; TRL's default)

The group size is `rl.k` (TRL: num_generations); several updates per generation batch are `rl.epochs` x
`rl.minibatches` (TRL: num_iterations x steps_per_generation); the KL penalty in the reward, as RLOO and PPO place
it, is `rl.kl_coef` (0 = none), so the two placements compare.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import GRPOConfig
from ..config.validate import GRPO_LEVELS, GRPO_LOSSES, GRPO_SCALES

STD_EPS = 1e-4  # TRL's: advantages / (std + 1e-4)
_G = GRPOConfig()  # the run's defaults, which are TRL GRPOConfig's (epsilon_high 0 is its None)


@dataclass(frozen=True)
class GRPOSettings:
    """The GRPO options, named as the config section grpo.* and `trl.GRPOConfig` (trl 1.16) name them."""
    beta: float = _G.beta
    scale_rewards: str = _G.scale_rewards
    loss_type: str = _G.loss_type
    epsilon: float = _G.epsilon
    epsilon_high: float = _G.epsilon_high     # 0: the same as epsilon (TRL's None)
    importance_sampling_level: str = _G.importance_sampling_level
    use_bias_correction_kl: bool = _G.use_bias_correction_kl

    @property
    def upper(self) -> float:
        return self.epsilon_high or self.epsilon


def group_advantages(rewards: torch.Tensor, scale: str) -> torch.Tensor:
    """GRPO's advantages (Shao et al. 2024 eq. 4 for "group"): rewards [P, G] centred by their group's mean and
    divided by the group's (Bessel-corrected) standard deviation + 1e-4, the batch's, or nothing (Dr. GRPO)."""
    if rewards.shape[1] < 2:
        raise ValueError("GRPO needs a group of >= 2 responses per prompt")
    adv = rewards - rewards.mean(1, keepdim=True)
    if scale == "group":
        return adv / (rewards.std(1, keepdim=True) + STD_EPS)
    if scale == "batch":
        return adv / (rewards.std() + STD_EPS)
    if scale == "none":
        return adv
    raise ValueError(f"unknown scale_rewards '{scale}' ({', '.join(GRPO_SCALES)})")


def log_importance(logp_new: torch.Tensor, logp_old: torch.Tensor, mask: torch.Tensor, level: str) -> torch.Tensor:
    """The log importance ratio: per token [B, T], or per sequence [B, 1] as the mean token log-ratio over ``mask``
    (GSPO, Zheng et al. 2025 eq. 7)."""
    lr = logp_new - logp_old
    if level == "token":
        return lr
    if level == "sequence":
        m = mask.to(lr.dtype)
        return ((lr * m).sum(-1) / m.sum(-1).clamp(min=1.0)).unsqueeze(-1)
    raise ValueError(f"unknown importance_sampling_level '{level}' ({', '.join(GRPO_LEVELS)})")


def grpo_token_loss(logp_new: torch.Tensor, logp_old: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor,
                    s: GRPOSettings, ref_logp: torch.Tensor | None = None) -> torch.Tensor:
    """Per-token GRPO loss [B, T]: -min(r A, clip(r, 1 - eps, 1 + eps_high) A) + beta k3 (x r with the bias
    correction), with k3 = exp(ref - logp) - (ref - logp) - 1 per token (Shao et al. 2024 eq. 3-4; the KL term needs
    ``ref_logp`` when beta > 0)."""
    ratio = log_importance(logp_new, logp_old, mask, s.importance_sampling_level).exp()
    a = adv.reshape(-1, 1)
    loss = -torch.minimum(ratio * a, ratio.clamp(1 - s.epsilon, 1 + s.upper) * a)
    loss = loss.expand_as(logp_new)
    if s.beta:
        d = ref_logp - logp_new
        kl = d.exp() - d - 1
        loss = loss + s.beta * (kl * ratio if s.use_bias_correction_kl else kl)
    return loss


def aggregate_loss(per_token: torch.Tensor, mask: torch.Tensor, loss_type: str, max_len: int,
                   tokens_per_step: float | None = None) -> torch.Tensor:
    """One scalar from the per-token losses of a minibatch, as ``loss_type`` aggregates them (see the module's
    docstring). ``tokens_per_step``: DAPO's normaliser, the generation batch's response tokens over the number of
    minibatches (TRL: num_items_in_batch x gradient_accumulation_steps / steps_per_generation); default the
    minibatch's own tokens."""
    m = mask.to(per_token.dtype)
    total = (per_token * m).sum()
    if loss_type == "grpo":
        return ((per_token * m).sum(-1) / m.sum(-1).clamp(min=1.0)).mean()
    if loss_type == "bnpo":
        return total / m.sum().clamp(min=1.0)
    if loss_type == "dapo":
        return total / max(float(tokens_per_step if tokens_per_step is not None else m.sum()), 1.0)
    if loss_type == "dr_grpo":
        return total / (per_token.shape[0] * max_len)
    raise ValueError(f"unknown loss_type '{loss_type}' ({', '.join(GRPO_LOSSES)})")

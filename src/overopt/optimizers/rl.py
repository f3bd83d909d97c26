"""RL against a reward callable: RLOO and PPO with a KL penalty in the reward, and GRPO (`optimizers.grpo`).

    trainer = RLTrainer(policy, ref, reward_fn, RLSettings(algo="rloo"), pad_id, eos_id, value_model=None)
    for step in range(steps):
        stats = trainer.step(prompt_ids)        # one rollout + update: proxy, kl_k1, kl_k3, losses

The KL in training statistics and in the penalty is the sampled log-ratio (k1, as TRL); curves
are measured with the full-vocabulary estimator of `kl.sequence_kl` at evaluation points.

The objectives are small functions (`rloo_advantages`, `clipped_pg_loss`, `gae`, `clipped_value_loss`)
so each can be read and tested on its own; sampling, log-probs and KL come from `policy` and `kl`.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from ..config import RLConfig
from ..errors import RLError  # noqa: F401  (raised here; the CLI catches it)
from ..measure.kl import k3
from .grpo import GRPOSettings, aggregate_loss, group_advantages, grpo_token_loss
from ..models.policy import prompt_mask, response_logprobs, sample


# ---------------------------------------------------------------- objectives

def rloo_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """Leave-one-out baseline (Ahmadian et al. 2024): A_i = R_i - mean_{j != i} R_j, rewards [P, k]."""
    k = rewards.shape[1]
    if k < 2:
        raise ValueError("RLOO needs k >= 2 samples per prompt")
    return (rewards - (rewards.sum(1, keepdim=True) - rewards) / (k - 1))


def clipped_pg_loss(logp_new: torch.Tensor, logp_old: torch.Tensor, adv: torch.Tensor,
                    mask: torch.Tensor | None, clip: float) -> torch.Tensor:
    """PPO's clipped surrogate (Schulman et al. 2017 eq. 7), averaged over ``mask``:
    -min(r A, clip(r, 1-eps, 1+eps) A) with r = exp(logp_new - logp_old)."""
    ratio = (logp_new - logp_old).exp()
    loss = -torch.minimum(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv)
    if mask is None:
        return loss.mean()
    return (loss * mask).sum() / mask.sum().clamp(min=1)


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0,
        lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016) over right-padded token rows.

    delta_t = r_t + gamma V_{t+1} - V_t (V after the last real token is 0);
    A_t = delta_t + gamma lam A_{t+1}. Returns (advantages, returns = A + V), 0 on padding."""
    T = rewards.shape[1]
    adv = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[:, 0])
    m = mask.float()
    for t in reversed(range(T)):
        next_v = values[:, t + 1] * m[:, t + 1] if t + 1 < T else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_v - values[:, t]
        last = (delta + gamma * lam * last * (m[:, t + 1] if t + 1 < T else 0)) * m[:, t]
        adv[:, t] = last
    return adv, (adv + values) * m


def clipped_value_loss(v_new: torch.Tensor, v_old: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
                       clip: float) -> torch.Tensor:
    """0.5 max((V - R)^2, (V_old + clip(V - V_old, -c, c) - R)^2), averaged over ``mask``."""
    v_clip = v_old + (v_new - v_old).clamp(-clip, clip)
    loss = 0.5 * torch.maximum((v_new - returns) ** 2, (v_clip - returns) ** 2)
    return (loss * mask).sum() / mask.sum().clamp(min=1)


def whiten(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.float()
    mean = (x * m).sum() / m.sum()
    var = (((x - mean) ** 2) * m).sum() / m.sum().clamp(min=1)
    return (x - mean) * torch.rsqrt(var + 1e-8) * m


class KLController:
    """The KL coefficient: fixed, or adaptive toward a target KL (Ziegler et al. 2019, sec. 2.2):
    coef *= 1 + clip(KL / target - 1, -0.2, 0.2) * n / horizon after each batch of n samples."""

    def __init__(self, coef: float, target: float | None = None, horizon: int = 10000):
        self.value = coef
        self.target = target
        self.horizon = horizon

    def update(self, kl: float, n: int) -> None:
        if self.target:
            err = min(max(kl / self.target - 1.0, -0.2), 0.2)
            self.value *= 1.0 + err * n / self.horizon


# ---------------------------------------------------------------- models

class ValueModel(nn.Module):
    """A backbone with a scalar head on every position: V(x, y_<t) for each response token."""

    def __init__(self, backbone: nn.Module, hidden_size: int):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    @classmethod
    def from_policy(cls, policy) -> "ValueModel":
        """A copy of the policy's trunk (GPT-NeoX `gpt_neox`, or the model's base) with a zero head."""
        base = getattr(policy, policy.base_model_prefix, policy)
        return cls(copy.deepcopy(base), policy.config.hidden_size)

    def forward(self, prompt_ids: torch.Tensor, responses: torch.Tensor, pad_id: int) -> torch.Tensor:
        mask = torch.cat([prompt_mask(prompt_ids, pad_id), (responses != pad_id).long()], 1)
        seq = torch.cat([prompt_ids, responses], 1)
        h = self.backbone(input_ids=seq, attention_mask=mask,
                          position_ids=(mask.cumsum(1) - 1).clamp(min=0)).last_hidden_state
        P = prompt_ids.shape[1]
        return self.head(h[:, P - 1:-1]).squeeze(-1)


# ---------------------------------------------------------------- trainer

_RL = RLConfig()  # the run's defaults: the trainer shares them rather than keeping its own


@dataclass(frozen=True)
class RLSettings:
    """What the trainer needs. The fields named as in `config.RLConfig` take its defaults (and `pipeline.curves.
    rl_settings` fills them from a run's config by name); the rest are the trainer's own."""
    algo: str = _RL.algo              # rloo, ppo or grpo
    k: int = _RL.k                    # samples per prompt (RLOO's and GRPO's group; PPO may use 1)
    lr: float = _RL.lr
    kl_coef: float = _RL.kl_coef      # initial coefficient of the KL penalty in the reward
    kl_target: float = _RL.kl_target  # > 0: adapt the coefficient toward this per-sequence KL
    kl_horizon: int = _RL.kl_horizon
    epochs: int = _RL.epochs          # optimisation passes over each rollout batch
    minibatches: int = _RL.minibatches
    clip: float = 0.2
    vf_coef: float = 0.5
    vf_clip: float = 0.2
    gamma: float = 1.0
    lam: float = 0.95
    max_new_tokens: int = 40
    max_grad_norm: float = 1.0
    grpo: GRPOSettings = GRPOSettings()  # GRPO's options (config section grpo.*)


def _finite(step: int, name: str, x) -> None:
    v = x.detach() if isinstance(x, torch.Tensor) else torch.tensor(x)
    if not bool(torch.isfinite(v).all()):
        raise RLError(f"step {step}: {name} is not finite")


class RLTrainer:
    """One rollout and update per `step`; the policy trains, the reference stays frozen."""

    def __init__(self, policy, ref, reward_fn, settings: RLSettings, pad_id: int, eos_id: int,
                 value_model: ValueModel | None = None, seed: int = 0):
        if settings.algo not in ("rloo", "ppo", "grpo"):
            raise ValueError(f"unknown RL algorithm '{settings.algo}' (rloo, ppo or grpo)")
        self.policy, self.ref, self.reward_fn, self.s = policy, ref.eval(), reward_fn, settings
        self.pad_id, self.eos_id = pad_id, eos_id
        self.value = value_model if settings.algo == "ppo" else None
        if settings.algo == "ppo" and self.value is None:
            self.value = ValueModel.from_policy(policy)
        params = list(policy.parameters()) + (list(self.value.parameters()) if self.value is not None else [])
        self.opt = torch.optim.Adam(params, lr=settings.lr, eps=1e-5, foreach=True)  # one kernel per step, not per tensor
        self.kl_ctl = KLController(settings.kl_coef, settings.kl_target or None, settings.kl_horizon)
        self.gen = torch.Generator(device=next(policy.parameters()).device).manual_seed(seed)
        self.n_steps = 0

    @torch.no_grad()
    def rollout(self, prompt_ids: torch.Tensor) -> dict:
        """Sample k responses per prompt and score them, with per-token log-probs of policy and ref.

        The policy's log-probs come from the sampler itself (temperature 1, no truncation), so a
        rollout costs one sampling pass and one reference forward."""
        k = self.s.k
        prompts = prompt_ids.repeat_interleave(k, 0)
        self.policy.eval()
        s = sample(self.policy, prompts, self.s.max_new_tokens, self.eos_id, self.pad_id, generator=self.gen)
        mask = s.tokens != self.pad_id
        score = torch.as_tensor(self.reward_fn(prompts, s.tokens), dtype=torch.float32, device=prompts.device)
        if not self.needs_ref:  # GRPO without a KL term or penalty: no reference forward (as TRL at beta 0)
            nan = torch.full((len(prompts),), math.nan, device=prompts.device)
            return {"prompts": prompts, "tokens": s.tokens, "mask": mask, "logp": s.token_logprob, "ref_logp": None,
                    "score": score, "k1": nan, "k3": nan}
        ref = response_logprobs(self.ref, prompts, s.tokens, self.pad_id, eos_id=self.eos_id)
        lr = (s.token_logprob - ref).masked_fill(~mask, 0)  # per-token log-ratio
        return {"prompts": prompts, "tokens": s.tokens, "mask": mask, "logp": s.token_logprob, "ref_logp": ref,
                "score": score, "k1": lr.sum(1), "k3": k3(lr, mask)}

    @property
    def needs_ref(self) -> bool:
        """Whether an update uses the reference's log-probs: every algorithm but GRPO with beta 0 and no KL penalty
        in the reward, whose training statistics then carry no KL (curves measure theirs at evaluation)."""
        s = self.s
        return s.algo != "grpo" or s.grpo.beta > 0 or s.kl_coef > 0 or s.kl_target > 0

    def step(self, prompt_ids: torch.Tensor) -> dict:
        """One rollout and its updates; returns the batch's statistics."""
        step = self.n_steps
        b = self.rollout(prompt_ids)
        _finite(step, "reward", b["score"])
        if self.needs_ref:
            _finite(step, "KL", b["k1"])
        beta = self.kl_ctl.value
        update = {"rloo": self._rloo_update, "ppo": self._ppo_update, "grpo": self._grpo_update}[self.s.algo]
        stats = update(b, beta, step)
        self.kl_ctl.update(float(b["k1"].mean()), len(b["tokens"]))
        self.n_steps += 1
        lengths = b["mask"].sum(1).float()
        # kl_token: the per-token k3 over the batch's response tokens, the "kl" TRL's GRPOTrainer logs
        return {"step": step, "proxy": float(b["score"].mean()), "kl_k1": float(b["k1"].mean()),
                "kl_k3": float(b["k3"].mean()), "kl_token": float(b["k3"].sum() / lengths.sum().clamp(min=1)),
                "kl_coef": beta,
                "length": float(lengths.mean()), **stats}

    def _clip_step(self, loss: torch.Tensor, step: int, name: str) -> None:
        _finite(step, name, loss)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for g in self.opt.param_groups for p in g["params"]]
        torch.nn.utils.clip_grad_norm_(params, self.s.max_grad_norm, foreach=True)
        self.opt.step()

    def _minibatches(self, n: int):
        size = max(1, math.ceil(n / self.s.minibatches))
        for _ in range(self.s.epochs):
            perm = torch.randperm(n, generator=self.gen, device=self.gen.device)
            for i in range(0, n, size):
                yield perm[i:i + size]

    def _rloo_update(self, b: dict, beta: float, step: int) -> dict:
        # Sequence-level reward with the sampled KL penalty; leave-one-out baseline per prompt.
        reward = b["score"] - beta * b["k1"]
        adv = rloo_advantages(reward.view(-1, self.s.k)).reshape(-1)
        old = b["logp"].sum(1)
        self.policy.train()
        losses = []
        for idx in self._minibatches(len(adv)):
            new = response_logprobs(self.policy, b["prompts"][idx], b["tokens"][idx], self.pad_id,
                                    eos_id=self.eos_id).sum(1)
            loss = clipped_pg_loss(new, old[idx], adv[idx], None, self.s.clip)
            self._clip_step(loss, step, "loss")
            losses.append(loss.item())
        self.policy.eval()
        return {"loss/policy": sum(losses) / len(losses), "reward": float(reward.mean())}

    def _ppo_update(self, b: dict, beta: float, step: int) -> dict:
        mask = b["mask"]
        with torch.no_grad():
            values = self.value(b["prompts"], b["tokens"], self.pad_id).masked_fill(~mask, 0)
            rewards = (-beta * (b["logp"] - b["ref_logp"])).masked_fill(~mask, 0)
            last = mask.sum(1) - 1
            rewards[torch.arange(len(last)), last] += b["score"]
            adv, returns = gae(rewards, values, mask, self.s.gamma, self.s.lam)
            adv = whiten(adv, mask)
        self.policy.train()
        pl, vl = [], []
        for idx in self._minibatches(len(adv)):
            m = mask[idx].float()
            new = response_logprobs(self.policy, b["prompts"][idx], b["tokens"][idx], self.pad_id, eos_id=self.eos_id)
            pg = clipped_pg_loss(new, b["logp"][idx], adv[idx], m, self.s.clip)
            v = self.value(b["prompts"][idx], b["tokens"][idx], self.pad_id)
            vf = clipped_value_loss(v, values[idx], returns[idx], m, self.s.vf_clip)
            self._clip_step(pg + self.s.vf_coef * vf, step, "loss")
            pl.append(pg.item())
            vl.append(vf.item())
        self.policy.eval()
        return {"loss/policy": sum(pl) / len(pl), "loss/value": sum(vl) / len(vl),
                "reward": float(rewards.sum(1).mean())}

    def _grpo_update(self, b: dict, beta: float, step: int) -> dict:
        # GRPO (Shao et al. 2024): group-relative advantages, a clipped ratio per token (or per sequence), the k3 KL
        # to the starting policy in the loss (grpo.beta); rl.kl_coef > 0 also puts the KL penalty in the reward.
        g = self.s.grpo
        mask = b["mask"]
        reward = b["score"] - beta * b["k1"] if beta else b["score"]  # k1 is NaN where no reference was run
        adv = group_advantages(reward.view(-1, self.s.k), g.scale_rewards).reshape(-1)
        per_step = float(mask.sum()) / self.s.minibatches  # DAPO's normaliser: the batch's tokens per update
        self.policy.train()
        losses = []
        for idx in self._minibatches(len(adv)):
            m = mask[idx]
            new = response_logprobs(self.policy, b["prompts"][idx], b["tokens"][idx], self.pad_id, eos_id=self.eos_id)
            ref = b["ref_logp"][idx] if b["ref_logp"] is not None else None
            per_token = grpo_token_loss(new, b["logp"][idx], adv[idx], m, g, ref)
            loss = aggregate_loss(per_token, m, g.loss_type, self.s.max_new_tokens, per_step)
            self._clip_step(loss, step, "loss")
            losses.append(loss.item())
        self.policy.eval()
        return {"loss/policy": sum(losses) / len(losses), "reward": float(reward.mean())}

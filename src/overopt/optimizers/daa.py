"""Direct alignment from offline preference pairs: DPO, IPO, SLiC and length-regularised DPO.

    ref = reference_logps(pi0, prompts, chosen, rejected, pad_id, eos_id)   # once per dataset and reference
    data = PreferenceData(prompts, chosen, rejected, *ref, pad_id=PAD)
    trainer = DAATrainer(policy, data, DAASettings(loss="dpo", beta=0.1), pad_id, eos_id)
    for step, epoch_frac in trainer.run():     # yields at every checkpoint (step 0 first)
        evaluate(policy)

With h = [log pi(y_w) - log pi_ref(y_w)] - [log pi(y_l) - log pi_ref(y_l)], log-probs summed over the
response tokens (the end token included), the per-example losses are:
    DPO  -log sigmoid(beta h)                         (Rafailov et al. 2023)
    IPO  (h - 1 / (2 beta))^2                         (Azar et al. 2023; per-token means by option)
    SLiC max(0, 1 - beta h)                           (Zhao et al. 2023, the hinge)
    R-DPO -log sigmoid(beta h + alpha (|y_w| - |y_l|)) (Park et al. 2024, lengths in tokens)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import DAAError
from ..models.policy import response_logprobs

LOSSES = ("dpo", "ipo", "slic", "rdpo")
OPTIMIZERS = ("rmsprop", "adam")


def preference_loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
                    ref_chosen_logps: torch.Tensor, ref_rejected_logps: torch.Tensor, beta: float,
                    loss: str = "dpo", chosen_lengths: torch.Tensor | None = None,
                    rejected_lengths: torch.Tensor | None = None, alpha: float = 0.0,
                    ipo_length_norm: bool = False) -> torch.Tensor:
    """The per-example loss, [B]. Log-probs are sequence sums; lengths count response tokens."""
    if loss not in LOSSES:
        raise ValueError(f"unknown preference loss '{loss}' (one of {', '.join(LOSSES)})")
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    chosen = policy_chosen_logps - ref_chosen_logps
    rejected = policy_rejected_logps - ref_rejected_logps
    needs_len = loss == "rdpo" or (loss == "ipo" and ipo_length_norm)
    if needs_len and (chosen_lengths is None or rejected_lengths is None):
        raise ValueError(f"loss '{loss}' needs chosen_lengths and rejected_lengths")
    if loss == "ipo" and ipo_length_norm:
        chosen = chosen / chosen_lengths.clamp(min=1)
        rejected = rejected / rejected_lengths.clamp(min=1)
    h = chosen - rejected
    if loss == "dpo":
        return -F.logsigmoid(beta * h)
    if loss == "ipo":
        return (h - 1.0 / (2.0 * beta)) ** 2
    if loss == "slic":
        return torch.relu(1.0 - beta * h)
    return -F.logsigmoid(beta * h + alpha * (chosen_lengths - rejected_lengths).to(h.dtype))


@torch.no_grad()
def reference_logps(ref, prompts: torch.Tensor, chosen: torch.Tensor, rejected: torch.Tensor, pad_id: int,
                    eos_id: int, batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log pi_ref of every chosen and rejected response: one pass over the dataset."""
    ref.eval()
    out_c, out_r = [], []
    for i in range(0, len(prompts), batch_size):
        p = prompts[i:i + batch_size]
        lp = response_logprobs(ref, torch.cat([p, p]), torch.cat([chosen[i:i + batch_size],
                                                                 rejected[i:i + batch_size]]), pad_id,
                               eos_id=eos_id).sum(1)
        c, r = lp.chunk(2)
        out_c.append(c)
        out_r.append(r)
    return torch.cat(out_c), torch.cat(out_r)


@dataclass
class PreferenceData:
    """Prompts [n, P], right-padded chosen/rejected responses [n, T] and their reference log-probs [n]."""
    prompts: torch.Tensor
    chosen: torch.Tensor
    rejected: torch.Tensor
    ref_chosen: torch.Tensor
    ref_rejected: torch.Tensor
    pad_id: int

    def __len__(self) -> int:
        return len(self.prompts)

    @property
    def chosen_lengths(self) -> torch.Tensor:
        return (self.chosen != self.pad_id).sum(1)

    @property
    def rejected_lengths(self) -> torch.Tensor:
        return (self.rejected != self.pad_id).sum(1)


@dataclass(frozen=True)
class DAASettings:
    loss: str = "dpo"
    beta: float = 0.1
    alpha: float = 0.0              # R-DPO's length coefficient
    ipo_length_norm: bool = False   # IPO on per-token mean log-ratios (one popular library's choice)
    lr: float = 1e-4
    optimizer: str = "rmsprop"      # rmsprop (Rafailov et al.) or adam
    batch_size: int = 64
    epochs: int = 1
    checkpoints_per_epoch: int = 8
    warmup: int = 10                # linear warm-up steps
    max_grad_norm: float = 10.0


def policy_logps(policy, prompts, chosen, rejected, pad_id: int, eos_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log pi of chosen and rejected responses in one forward pass over both."""
    lp = response_logprobs(policy, torch.cat([prompts, prompts]), torch.cat([chosen, rejected]), pad_id,
                           eos_id=eos_id).sum(1)
    return lp.chunk(2)


class DAATrainer:
    """Minibatch training of ``policy`` on ``data``; `run` yields (step, epoch_frac) at each checkpoint."""

    def __init__(self, policy, data: PreferenceData, settings: DAASettings, pad_id: int, eos_id: int, seed: int = 0):
        if settings.loss not in LOSSES:
            raise ValueError(f"unknown preference loss '{settings.loss}' (one of {', '.join(LOSSES)})")
        if settings.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer '{settings.optimizer}' (rmsprop or adam)")
        self.policy, self.data, self.s = policy, data, settings
        self.pad_id, self.eos_id = pad_id, eos_id
        opt = torch.optim.RMSprop if settings.optimizer == "rmsprop" else torch.optim.Adam
        self.opt = opt(policy.parameters(), lr=settings.lr, foreach=True)
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda i: min(1.0, (i + 1) / max(1, settings.warmup)))
        self.gen = torch.Generator().manual_seed(seed)
        self.steps_per_epoch = math.ceil(len(data) / settings.batch_size)
        self.total_steps = self.steps_per_epoch * settings.epochs
        self.step_no = 0
        self.losses: list[float] = []

    def checkpoints(self) -> list[int]:
        """Step 0, then checkpoints_per_epoch evenly spaced steps in every epoch (each epoch's end included)."""
        k, n = self.s.checkpoints_per_epoch, self.steps_per_epoch
        steps = {0}
        for e in range(self.s.epochs):
            steps.update(e * n + max(1, round(n * j / k)) for j in range(1, k + 1))
        return sorted(steps)

    def train_step(self, idx: torch.Tensor) -> float:
        d, s = self.data, self.s
        dev = next(self.policy.parameters()).device
        idx = idx.to(d.prompts.device)
        pc, pr = policy_logps(self.policy, d.prompts[idx], d.chosen[idx], d.rejected[idx], self.pad_id, self.eos_id)
        loss = preference_loss(pc, pr, d.ref_chosen[idx].to(dev), d.ref_rejected[idx].to(dev), s.beta, s.loss,
                               d.chosen_lengths[idx].to(dev), d.rejected_lengths[idx].to(dev), s.alpha,
                               s.ipo_length_norm).mean()
        if not torch.isfinite(loss):
            raise DAAError(f"step {self.step_no}: loss is not finite")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.policy.parameters(), s.max_grad_norm, foreach=True)
        self.opt.step()
        self.sched.step()
        self.step_no += 1
        return loss.item()

    def run(self):
        """Train for ``epochs``; yield (step, epoch_frac) at step 0 and at every checkpoint."""
        marks = set(self.checkpoints())
        n, bs = len(self.data), self.s.batch_size
        yield 0, 0.0
        for epoch in range(self.s.epochs):
            perm = torch.randperm(n, generator=self.gen)
            for i in range(self.steps_per_epoch):
                self.policy.train()
                self.losses.append(self.train_step(perm[i * bs:(i + 1) * bs]))
                self.policy.eval()
                if self.step_no in marks:
                    yield self.step_no, self.step_no / self.steps_per_epoch

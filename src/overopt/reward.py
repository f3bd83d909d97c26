"""Reward models: a transformer backbone with a scalar head, trained with the Bradley-Terry loss."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .policy import cosine_lr, gpt_neox_config


class RewardModel(nn.Module):
    """Backbone (any HF base model returning last_hidden_state) + a linear scalar head.

    The score of a sequence is the head applied to the hidden state of its last real token.
    ``offset`` is subtracted so that pi0's mean score is 0 (DESIGN.md: every RM is centred).
    """

    def __init__(self, backbone: nn.Module, hidden_size: int):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(hidden_size, 1)
        nn.init.normal_(self.head.weight, std=1.0 / (hidden_size + 1) ** 0.5)
        nn.init.zeros_(self.head.bias)
        self.register_buffer("offset", torch.zeros(()))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        position_ids = (attention_mask.cumsum(1) - 1).clamp(min=0)
        h = self.backbone(input_ids=input_ids, attention_mask=attention_mask,
                          position_ids=position_ids).last_hidden_state
        last = attention_mask.shape[1] - 1 - attention_mask.flip(1).argmax(1)  # last real token
        return self.head(h[torch.arange(len(h)), last]).squeeze(-1) - self.offset


def build_rm(vocab_size: int, hidden: int, layers: int, max_len: int, seed: int) -> RewardModel:
    """A GPT-NeoX reward model of the given width and depth (heads = max(1, hidden // 16))."""
    from transformers import GPTNeoXModel

    torch.manual_seed(seed)
    heads = max(1, hidden // 16)
    backbone = GPTNeoXModel(gpt_neox_config(vocab_size, hidden, layers, heads, max_len))
    return RewardModel(backbone, hidden).eval()


def bradley_terry_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
    """-log sigmoid(r_w - r_l), per pair (Bradley and Terry 1952; Ouyang et al. 2022 eq. 1)."""
    return -F.logsigmoid(r_chosen - r_rejected)


def _pack(prompts: torch.Tensor, responses: torch.Tensor, pad_id: int):
    T = int((responses != pad_id).sum(1).max())
    seq = torch.cat([prompts, responses[:, :T]], 1)
    mask = torch.cat([torch.ones_like(prompts), (responses[:, :T] != pad_id).long()], 1)
    return seq, mask


@torch.no_grad()
def score(rm: RewardModel, prompts: torch.Tensor, responses: torch.Tensor, pad_id: int,
          batch: int = 4096, progress=None) -> np.ndarray:
    """Scores of (prompt, response) rows; prompts share one length, responses right-padded.

    Rows are scored in order of length so that a batch pads only to its own longest response.
    """
    rm.eval()
    order = torch.argsort((responses != pad_id).sum(1), stable=True)
    out = torch.empty(len(responses), dtype=torch.float64)
    for i in range(0, len(responses), batch):
        idx = order[i:i + batch]
        seq, mask = _pack(prompts[idx], responses[idx], pad_id)
        out[idx.cpu()] = rm(seq, mask).double().cpu()
        if progress is not None:
            progress.update(len(idx))
    return out.numpy()


def train_rm(rm: RewardModel, prompts: torch.Tensor, chosen: torch.Tensor, rejected: torch.Tensor,
             epochs: int, batch_size: int, lr: float, weight_decay: float, seed: int, pad_id: int,
             progress=None) -> list[float]:
    """Bradley-Terry training on (prompt, chosen, rejected) rows; returns per-step losses."""
    n = len(chosen)
    steps = epochs * max(1, n // batch_size)
    opt = torch.optim.AdamW(rm.parameters(), lr=lr, weight_decay=weight_decay, betas=(0.9, 0.98))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: cosine_lr(s, steps, max(1, steps // 10)))
    g = torch.Generator().manual_seed(seed)
    rm.train()
    losses = []
    step = 0
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g)
        for i in range(0, n - batch_size + 1 if n >= batch_size else 1, batch_size):
            idx = perm[i:i + batch_size]
            both = torch.cat([chosen[idx], rejected[idx]])
            seq, mask = _pack(torch.cat([prompts[idx], prompts[idx]]), both, pad_id)
            r = rm(seq, mask)
            loss = bradley_terry_loss(r[: len(idx)], r[len(idx):]).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(rm.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            losses.append(loss.item())
            if progress is not None:
                progress.update(1)
    rm.eval()
    return losses

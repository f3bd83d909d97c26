"""Reward models: a transformer backbone with a scalar head, trained with the Bradley-Terry loss."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .policy import cosine_lr, gpt_neox_config, prompt_mask


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
        # score per token removed by the length-normalised option (`length_slope`); not saved with the weights
        self.register_buffer("length_coef", torch.zeros(()), persistent=False)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        position_ids = (attention_mask.cumsum(1) - 1).clamp(min=0)
        h = self.backbone(input_ids=input_ids, attention_mask=attention_mask,
                          position_ids=position_ids).last_hidden_state
        last = attention_mask.shape[1] - 1 - attention_mask.flip(1).argmax(1)  # last real token
        r = self.head(h[torch.arange(len(h)), last]).squeeze(-1) - self.offset
        return r - self.length_coef * attention_mask.sum(1) if self.length_coef else r


def build_rm(vocab_size: int, hidden: int, layers: int, max_len: int, seed: int) -> RewardModel:
    """A GPT-NeoX reward model of the given width and depth (heads = max(1, hidden // 16))."""
    from transformers import GPTNeoXModel

    torch.manual_seed(seed)
    heads = max(1, hidden // 16)
    backbone = GPTNeoXModel(gpt_neox_config(vocab_size, hidden, layers, heads, max_len))
    return RewardModel(backbone, hidden).eval()


def ols_slope(x, y) -> float:
    """Least-squares slope of y on x."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    x = x - x.mean()
    return float((x * (y - y.mean())).sum() / max((x * x).sum(), 1e-12))


def length_slope(scores, lengths) -> float:
    """What a length-normalised reward removes per token: the least-squares slope of score on length, so that
    on pi0's samples its score no longer grows with length (the residual of a linear regression)."""
    return ols_slope(lengths, scores)


def length_normalize(rm: RewardModel, prompts: torch.Tensor, responses: torch.Tensor, pad_id: int) -> float:
    """Make ``rm`` length-normalised on these pi0 samples: subtract its slope on response length, re-centre.
    Returns the slope (score per token)."""
    rm.length_coef.zero_()
    s = score(rm, prompts, responses, pad_id)
    b = length_slope(s, (responses != pad_id).sum(1).cpu().numpy())
    rm.length_coef.fill_(b)
    rm.offset += float(score(rm, prompts, responses, pad_id).mean())
    return b


def bradley_terry_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
    """-log sigmoid(r_w - r_l), per pair (Bradley and Terry 1952; Ouyang et al. 2022 eq. 1)."""
    return -F.logsigmoid(r_chosen - r_rejected)


def _pack(prompts: torch.Tensor, responses: torch.Tensor, pad_id: int):
    T = int((responses != pad_id).sum(1).max())
    seq = torch.cat([prompts, responses[:, :T]], 1)
    mask = torch.cat([prompt_mask(prompts, pad_id), (responses[:, :T] != pad_id).long()], 1)
    return seq, mask


@torch.no_grad()
def _score_rows(fn, prompts: torch.Tensor, responses: torch.Tensor, pad_id: int, batch: int, progress=None
                ) -> np.ndarray:
    """``fn(seq, mask)`` over (prompt, response) rows in batches, rows in order of length so that a batch pads
    only to its own longest response; results in the rows' order, rows on the last axis. A batch that runs out
    of GPU memory is halved (the results do not depend on the batch)."""
    order = torch.argsort((responses != pad_id).sum(1), stable=True)
    out, i = None, 0
    while i < len(responses):
        idx = order[i:i + batch]
        seq, mask = _pack(prompts[idx], responses[idx], pad_id)
        try:
            r = fn(seq, mask).double().cpu()
        except torch.OutOfMemoryError:  # a batch too large for the GPU: halve it and go on
            if batch == 1:
                raise
            torch.cuda.empty_cache()
            batch //= 2
            continue
        if out is None:
            out = torch.empty(*r.shape[:-1], len(responses), dtype=torch.float64)
        out[..., idx.cpu()] = r
        i += len(idx)
        if progress is not None:
            progress.update(len(idx))
    return (out if out is not None else torch.empty(0, dtype=torch.float64)).numpy()


def score(rm: RewardModel, prompts: torch.Tensor, responses: torch.Tensor, pad_id: int,
          batch: int = 4096, progress=None) -> np.ndarray:
    """Scores of (prompt, response) rows; prompts share one length, responses right-padded."""
    rm.eval()
    return _score_rows(rm, prompts, responses, pad_id, batch, progress)


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


# ---------------------------------------------------------------- ensembles and calibration

ENSEMBLE_KINDS = ("mean", "wco", "uwo")


def ensemble_objective(scores, kind: str, lam: float = 0.5):
    """Combine member scores (members on the first axis) into one reward (Coste et al. 2023, sec. 3):
    mean; WCO, the worst case min_i R_i; UWO, mean - lam * variance (population variance over members).
    Works on NumPy arrays and torch tensors alike."""
    if kind not in ENSEMBLE_KINDS:
        raise ValueError(f"ensemble objective must be one of {', '.join(ENSEMBLE_KINDS)}, got {kind!r}")
    if scores.shape[0] < 1:
        raise ValueError("an ensemble needs at least one member")
    if kind == "mean":
        return scores.mean(0)
    if kind == "wco":
        return scores.min(0) if isinstance(scores, np.ndarray) else scores.min(0).values
    var = scores.var(0) if isinstance(scores, np.ndarray) else scores.var(0, unbiased=False)
    return scores.mean(0) - lam * var


def fit_temperature(score_diff, prefers_first, iters: int = 50) -> float:
    """Maximum-likelihood tau with P(first preferred) = sigmoid(score_diff / tau).

    Newton's method on s = 1/tau, where the negative log-likelihood sum softplus(-z s), z = +-diff, is
    convex. Constrained to s >= 0: scores that carry no positive signal give tau = inf (always 1/2)."""
    d = np.asarray(score_diff, dtype=np.float64)
    y = np.asarray(prefers_first, dtype=bool)
    if d.shape != y.shape or d.ndim != 1 or len(d) == 0:
        raise ValueError("score_diff and prefers_first must be 1-D arrays of one length (at least one pair)")
    z = np.where(y, d, -d)
    if not np.any(z):
        return float("inf")
    s = 1.0 / max(np.abs(z).mean(), 1e-12)
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(np.clip(z * s, -500, 500)))  # sigmoid(-z s)
        grad = -(z * p).sum()
        hess = (z * z * p * (1 - p)).sum()
        if hess <= 0:
            break
        step = grad / hess
        s_new = max(s - step, 0.0)
        if abs(s_new - s) <= 1e-10 * max(s, 1e-12):
            s = s_new
            break
        s = s_new
    return float("inf") if s <= 0 else float(1.0 / s)


def reliability(score_diff, prefers_first, tau: float = 1.0, bins: int = 10) -> tuple[float, list[dict]]:
    """Expected calibration error and the reliability diagram of P(first preferred) = sigmoid(diff / tau).

    Each pair is read from the side the model prefers: its confidence sigmoid(|diff| / tau) in [1/2, 1],
    binned into ``bins`` equal bins; accuracy is how often that side is the preferred one. ECE is the
    count-weighted mean |accuracy - confidence| over bins (Guo et al. 2017)."""
    d = np.asarray(score_diff, dtype=np.float64)
    y = np.asarray(prefers_first, dtype=bool)
    conf = 1.0 / (1.0 + np.exp(-np.abs(d) / tau)) if np.isfinite(tau) else np.full(len(d), 0.5)
    right = np.where(d > 0, y, np.where(d < 0, ~y, 0.5)).astype(float)  # a tie is right half the time
    edges = np.linspace(0.5, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        m = which == b
        if not m.any():
            continue
        acc, c = float(right[m].mean()), float(conf[m].mean())
        ece += m.mean() * abs(acc - c)
        rows.append({"bin_lo": edges[b], "bin_hi": edges[b + 1], "count": int(m.sum()), "confidence": c,
                     "accuracy": acc})
    return float(ece), rows


class EnsembleRM(nn.Module):
    """k reward models read as one: each member's score divided by its temperature (so the members share one
    scale, calibrated logits), then combined by `ensemble_objective`; ``offset`` centres the objective on pi0.

    `score(ensemble, ...)` and the RL trainer use it like any reward model; `member_scores` gives the
    members on the first axis, for disagreement (their standard deviation)."""

    def __init__(self, members: list[RewardModel], kind: str, lam: float = 0.5, taus=None):
        super().__init__()
        if kind not in ENSEMBLE_KINDS:
            raise ValueError(f"ensemble objective must be one of {', '.join(ENSEMBLE_KINDS)}, got {kind!r}")
        self.members = nn.ModuleList(members)
        self.kind, self.lam = kind, lam
        taus = torch.ones(len(members)) if taus is None else torch.as_tensor(taus, dtype=torch.float32)
        self.register_buffer("inv_tau", 1.0 / taus.clamp(min=1e-6))
        self.register_buffer("offset", torch.zeros(()))

    def member_scores(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        s = torch.stack([m(input_ids, attention_mask) for m in self.members])
        return s * self.inv_tau.to(s.dtype)[:, None]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return ensemble_objective(self.member_scores(input_ids, attention_mask), self.kind, self.lam) - self.offset


def member_scores(ens: EnsembleRM, prompts: torch.Tensor, responses: torch.Tensor, pad_id: int,
                  batch: int = 4096) -> np.ndarray:
    """[members, rows]: the scaled member scores of (prompt, response) rows (see `score`)."""
    ens.eval()
    return _score_rows(ens.member_scores, prompts, responses, pad_id, batch)


class WeightedSumRM(nn.Module):
    """sum_i c_i R_i: reward models combined with fixed coefficients (multi-objective aggregation)."""

    def __init__(self, members: list[RewardModel], coefs):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.register_buffer("coefs", torch.as_tensor(list(coefs), dtype=torch.float32))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        s = torch.stack([m(input_ids, attention_mask) for m in self.members])
        return (self.coefs.to(s.dtype)[:, None] * s).sum(0)

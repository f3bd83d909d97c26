"""Reward models combined: ensembles (Coste et al. 2023), weighted sums (multi-objective), and a reward model
read as a preference model (temperature and reliability)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from .reward import RewardModel, score_rows, scoring_batch


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
                  batch: int | None = None) -> np.ndarray:
    """[members, rows]: the scaled member scores of (prompt, response) rows (see `score`)."""
    ens.eval()
    return score_rows(ens.member_scores, prompts, responses, pad_id, batch or scoring_batch(responses))


class WeightedSumRM(nn.Module):
    """sum_i c_i R_i: reward models combined with fixed coefficients (multi-objective aggregation)."""

    def __init__(self, members: list[RewardModel], coefs):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.register_buffer("coefs", torch.as_tensor(list(coefs), dtype=torch.float32))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        s = torch.stack([m(input_ids, attention_mask) for m in self.members])
        return (self.coefs.to(s.dtype)[:, None] * s).sum(0)

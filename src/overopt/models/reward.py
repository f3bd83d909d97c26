"""Reward models: a transformer backbone with a scalar head, trained with the Bradley-Terry loss."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..stats import ols_slope
from .fastdecode import NeoXDecoder
from ..errors import TrainingError
from .policy import check_weights, cosine_lr, gpt_neox_config, prompt_mask, right_padded_lengths


class RewardModel(nn.Module):
    """Backbone (any HF base model returning last_hidden_state) + a linear scalar head.

    The score of a sequence is the head applied to the hidden state of its last real token.
    ``offset`` is subtracted so that pi0's mean score is 0 (as Gao et al. 2022 centre every reward model).
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
        return self._read(self.features(input_ids, attention_mask), attention_mask.sum(1))

    def features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The backbone's final hidden state at each row's last real token, [B, C]: what the head reads."""
        n = attention_mask.sum(1)
        last = attention_mask.shape[1] - 1 - attention_mask.flip(1).argmax(1)  # last real token
        lean = NeoXDecoder.maybe(self.backbone, *input_ids.shape)
        if lean is not None and bool((last + 1 == n).all()):  # no left padding: the lean trunk, read at `last`
            return lean.last_hidden(input_ids, last)
        position_ids = (attention_mask.cumsum(1) - 1).clamp(min=0)
        h = self.backbone(input_ids=input_ids, attention_mask=attention_mask,
                          position_ids=position_ids).last_hidden_state
        return h[torch.arange(len(h)), last]

    def _read(self, h: torch.Tensor, n_tokens: torch.Tensor) -> torch.Tensor:
        """Scores from the hidden states of the rows' last real tokens and the rows' token counts."""
        r = self.head(h).squeeze(-1) - self.offset
        return r - self.length_coef * n_tokens if self.length_coef else r

    def score_prefixed(self, prompts: torch.Tensor, responses: torch.Tensor, pad_id: int) -> torch.Tensor | None:
        """The same scores as `forward` on (prompt, response) rows, with each distinct prompt run once (a
        best-of-n pool repeats each prompt N times): None where the lean trunk does not apply (not a GPT-NeoX,
        left-padded prompts, an empty response)."""
        lengths = right_padded_lengths(responses, pad_id)
        lean = NeoXDecoder.maybe(self.backbone, len(responses), prompts.shape[1] + responses.shape[1])
        if lean is None or lengths is None or not bool((prompts != pad_id).all()) or int(lengths.min()) < 1:
            return None
        distinct, rows = torch.unique(prompts, dim=0, return_inverse=True)
        h = lean.last_hidden(responses[:, : int(lengths.max())], lengths - 1, lean.prefix(distinct), rows)
        return self._read(h, prompts.shape[1] + lengths)


@dataclass(frozen=True)
class Proxy:
    """A proxy reward model being optimized or read, and what the tables say of it; stages pass these, never
    dicts. A trained proxy has every field; an ensemble objective or a retrained proxy only a name and a model."""
    name: str          # as in the tables' rm column: its size, SIZE@n_train, an ensemble member SIZE/noiseR#m
    params: int
    model: nn.Module = field(repr=False, compare=False)
    size: str = ""     # HIDDENxLAYERS (or a checkpoint's name in the Hugging Face world)
    key: str = ""      # the cache key of its weights; its scores are cached under it
    n_train: int = 0
    seed: int = 0
    val_loss: float = float("nan")
    val_acc: float = float("nan")
    train_s: float = 0.0
    tau: float = float("nan")   # its temperature as a preference model (ensemble.fit_temperature); nan until fitted
    noise: float | None = None  # the label-flip rate of its pairs, when not the run's own
    member: int = 0             # its index in an ensemble (0: the family's proxy itself)
    ensemble: str = ""
    dimension: str = ""         # the gold dimension whose labels it learned (multi-objective)

    @property
    def scale(self) -> float:
        """What its scores are divided by to be calibrated logits: tau, or 1 where the fit failed."""
        return self.tau if np.isfinite(self.tau) and self.tau > 0 else 1.0

    def row(self) -> dict:
        """Its row of rm.csv."""
        return {"rm": self.name, "params": self.params, "n_train": self.n_train, "seed": self.seed,
                "val_loss": self.val_loss, "val_acc": self.val_acc, "train_s": self.train_s}


def rm_heads(hidden: int) -> int:
    """Attention heads of a toy-world reward model of width ``hidden``: one per 16 dimensions, at least one."""
    return max(1, hidden // 16)


def build_rm(vocab_size: int, hidden: int, layers: int, max_len: int, seed: int) -> RewardModel:
    """A GPT-NeoX reward model of the given width and depth (`rm_heads` heads)."""
    from transformers import GPTNeoXModel

    torch.manual_seed(seed)
    backbone = GPTNeoXModel(gpt_neox_config(vocab_size, hidden, layers, rm_heads(hidden), max_len))
    return RewardModel(backbone, hidden).eval()


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


def score_rows(fn, prompts: torch.Tensor, responses: torch.Tensor, pad_id: int, batch: int, progress=None,
               rows_fn=None) -> np.ndarray:
    """``fn(seq, mask)`` over (prompt, response) rows in batches, rows in order of length so that a batch pads
    only to its own longest response; results in the rows' order, rows on the last axis. ``rows_fn(prompts,
    responses)``, when given, is tried first on each batch's unpacked rows (None: fall back to ``fn``). A batch
    that runs out of GPU memory is halved (the results do not depend on the batch)."""
    order = torch.argsort((responses != pad_id).sum(1), stable=True)
    out, i = None, 0
    with torch.inference_mode():
        while i < len(responses):
            idx = order[i:i + batch]
            try:
                r = rows_fn(prompts[idx], responses[idx]) if rows_fn is not None else None
                r = (fn(*_pack(prompts[idx], responses[idx], pad_id)) if r is None else r).double().cpu()
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


def scoring_batch(t: torch.Tensor) -> int:
    """Rows per scoring batch on ``t``'s device: large on a GPU; on a CPU small enough that a batch's activations
    stay in cache (512 rows of the default pool score 96x3 1.45x faster than 4096, in half the memory)."""
    return 4096 if t.is_cuda else 512


def score(rm: RewardModel, prompts: torch.Tensor, responses: torch.Tensor, pad_id: int,
          batch: int | None = None, progress=None) -> np.ndarray:
    """Scores of (prompt, response) rows; prompts share one length, responses right-padded. A `RewardModel`
    runs each batch's distinct prompts once (`RewardModel.score_prefixed`)."""
    rm.eval()
    rows_fn = (lambda p, r: rm.score_prefixed(p, r, pad_id)) if isinstance(rm, RewardModel) else None
    return score_rows(rm, prompts, responses, pad_id, batch or scoring_batch(responses), progress, rows_fn)


def features(rm: RewardModel, prompts: torch.Tensor, responses: torch.Tensor, pad_id: int,
             batch: int | None = None) -> np.ndarray:
    """[rows, C]: the reward model's final hidden state of each (prompt, response) row (`RewardModel.features`)."""
    rm.eval()
    return score_rows(lambda s, m: rm.features(s, m).T, prompts, responses, pad_id,
                      batch or scoring_batch(responses)).T


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
            if not torch.isfinite(loss):
                raise TrainingError(f"step {step}: loss is not finite")
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
    check_weights(rm, step)
    return losses


# ---------------------------------------------------------------- ensembles and calibration

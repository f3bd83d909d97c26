"""A judge on a label budget: which evaluations to label, how many labels, when to stop, which checkpoint to keep.

    watch = BudgetWatch("sequential", budget=200)
    for each evaluation of a training run:
        status = watch.update(step, kl, proxy, label)   # label(n): up to n new labels of this checkpoint
        status.state            # "ok" or "stop"
        status.best_step        # the checkpoint to roll back to: the highest judged mean so far
        watch.spent             # labels paid for so far

The judge is whatever the practitioner trusts and pays for per label: gold in the toy world, a sequence
classifier, an LLM judge, human ratings read from a file. A label is one pointwise score of a policy response, or
one pairwise judgement of a policy response against a pi0 response to the same prompt (1 win, 0.5 tie, 0 loss;
their mean is the win rate practitioners track). The proxy and the KL are free; labels are not.

Strategies (``per_eval`` labels at most per evaluation, ``budget`` in all):
  fixed       ``per_eval`` labels at every evaluation (a gold evaluation set of that size);
  triggered   ``per_eval`` labels at the first evaluation and then only where sqrt(KL) grew by ``growth``
              (relative) since the last labelled one: gold is a function of sqrt(KL) (Gao et al. 2022), so an
              evaluation at nearly the same KL has nothing new to say;
  sequential  ``batch`` labels at every evaluation, then more, a batch at a time, while the checkpoint looks below
              the best one without it being decided (-boundary < Welch's z < 0, the boundary `repeated_z`: Pocock
              1977's for ceil(per_eval / batch) looks at ``z``) and this evaluation has had fewer than ``per_eval``.
              Labels go where a drop is suspected; a checkpoint at or above the best gets one batch.
Every strategy stops the run on the stop rule of `online.stoprule` (its known-noise mode) over the labelled
checkpoints' judged means: a fall below the best so far that noise reaches with probability at most ``alpha`` over
the whole run, each mean's standard error from the labels' variance pooled over every labelled checkpoint; or when
the budget is spent (what comes after can no longer be judged). Buying more labels where a drop is suspected
(sequential) only decides where labels go: the stop is the rule's.
The checkpoint to keep is the one with the highest judged mean among those with at least two labels, with the
checkpoints not distinguishable from it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

import numpy as np
from scipy import stats as scipy_stats

from .stoprule import ALPHA, DropRule

STRATEGIES = ("fixed", "triggered", "sequential")


@dataclass
class Judged:
    """The labels of one checkpoint."""
    step: float
    kl: float
    labels: list = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.labels)

    @property
    def mean(self) -> float:
        return float(np.mean(self.labels)) if self.labels else math.nan

    @property
    def se(self) -> float:
        """The standard error of the mean (the sample standard deviation over sqrt(n)); inf below two labels."""
        return float(np.std(self.labels, ddof=1) / math.sqrt(self.n)) if self.n > 1 else math.inf


@lru_cache(maxsize=64)
def repeated_z(z: float, looks: int, paths: int = 200_000) -> float:
    """The one-sided boundary for ``looks`` equally spaced looks at accumulating data that keeps the chance of ever
    crossing it, with no true difference, at that of one look at ``z`` (Pocock 1977's constant boundary; found by
    simulating the standardized partial sums Z_k = S_k / sqrt(k) of ``paths`` Gaussian walks, seed 0). Testing the
    same difference again after every batch at plain ``z`` would stop on noise more often with every batch."""
    if looks <= 1:
        return float(z)
    walks = np.random.default_rng(0).standard_normal((paths, looks)).cumsum(1) / np.sqrt(np.arange(1, looks + 1))
    return float(np.quantile(walks.max(1), 1 - 0.5 * math.erfc(z / math.sqrt(2))))


def welch_z(a: Judged, b: Judged) -> float:
    """(mean a - mean b) / sqrt(se_a^2 + se_b^2): Welch's statistic for two means with unequal variances (a zero
    spread on both sides reads as 0, or as +-inf when the means differ)."""
    diff, s = a.mean - b.mean, math.hypot(a.se, b.se)
    if s == 0:
        return 0.0 if diff == 0 else math.copysign(math.inf, diff)
    return diff / s


@dataclass
class BudgetStatus:
    state: str                       # "ok" or "stop"
    reasons: list[str]
    step: float
    kl: float
    labels: int                      # spent on this evaluation
    spent: int                       # spent so far
    best_step: float | None          # the checkpoint to roll back to
    tied: list[float] = field(default_factory=list)  # on a stop: checkpoints not distinguishable from it


class BudgetWatch:
    def __init__(self, strategy: str = "sequential", budget: int = 200, per_eval: int = 40, batch: int = 8,
                 z: float = 2.0, growth: float = 0.5, alpha: float = ALPHA):
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy '{strategy}' (choose from {', '.join(STRATEGIES)})")
        for ok, rule, value in ((budget >= 0, "budget >= 0", budget), (per_eval >= 2, "per_eval >= 2", per_eval),
                                (batch >= 2, "batch >= 2", batch), (z > 0, "z > 0", z), (growth > 0, "growth > 0", growth)):
            if not ok:
                raise ValueError(f"BudgetWatch needs {rule}, got {value:g}")
        self.strategy, self.budget, self.per_eval, self.batch, self.z, self.growth = \
            strategy, budget, per_eval, batch, z, growth
        # the boundary every comparison uses: sequential looks again after each batch
        self.bound = repeated_z(z, math.ceil(per_eval / batch)) if strategy == "sequential" else z
        self.spent = 0
        self.checkpoints: list[Judged] = []   # every evaluation, labelled or not
        self.best: Judged | None = None
        self._last_d: float | None = None     # sqrt(KL) at the last labelled evaluation (triggered)
        self.history: list[BudgetStatus] = []
        self.rule = DropRule(alpha, known=True)  # over the labelled checkpoints, in order
        self.judged: list[Judged] = []            # those checkpoints (two labels or more)
        self._pool = (0.0, 0)                     # the labels' squared deviations from their checkpoint's mean, df

    def _buy(self, cp: Judged, n: int, label: Callable[[int], np.ndarray]) -> int:
        n = min(n, self.budget - self.spent)
        if n <= 0:
            return 0
        got = [float(v) for v in np.asarray(label(n), dtype=float).ravel()[:n]]
        if not all(math.isfinite(v) for v in got):
            raise ValueError(f"step {cp.step:g}: the judge returned a label that is not a finite number")
        cp.labels += got
        self.spent += len(got)
        return len(got)

    def _label(self, cp: Judged, label: Callable[[int], np.ndarray]) -> None:
        d = math.sqrt(cp.kl)
        if self.strategy == "fixed":
            self._buy(cp, self.per_eval, label)
        elif self.strategy == "triggered":
            if self._last_d is None or d >= (1 + self.growth) * self._last_d or (self._last_d == 0 and d > 0):
                if self._buy(cp, self.per_eval, label):
                    self._last_d = d
        else:
            self._buy(cp, self.batch, label)
            while (self.best is not None and cp.n >= 2 and cp.n < self.per_eval and self.spent < self.budget
                   and -self.bound < welch_z(cp, self.best) < 0):
                if not self._buy(cp, min(self.batch, self.per_eval - cp.n), label):
                    break

    def update(self, step: float, kl: float, proxy: float, label: Callable[[int], np.ndarray]) -> BudgetStatus:
        """Label this evaluation as the strategy says; stop on a significant fall below the best checkpoint or when
        the budget is spent. ``proxy`` is kept for the record (the strategies here need only the KL)."""
        if not all(math.isfinite(v) for v in (step, kl, proxy)):
            raise ValueError(f"step {step}: step, kl and proxy must be finite numbers")
        cp = Judged(float(step), max(float(kl), 0.0))
        self.checkpoints.append(cp)
        before = self.spent
        self._label(cp, label)
        reasons, tied = [], []
        if cp.n >= 2:
            d = self._judge(cp)
            self.best = self.judged[d.best]
            if d.stop:
                tied = [self.judged[i].step for i in d.tied]
                at = lambda p: f"step {self.judged[p[0]].step:g}" + (  # noqa: E731
                    f"-{self.judged[p[1]].step:g}" if p[1] > p[0] else "")
                reasons.append(f"judged mean at {at(d.window)} is {d.fall:.3g} below {at(d.block)}'s ({d.z:.1f} "
                               f"standard errors against the {d.bound:.1f} noise reaches over the whole run at alpha "
                               f"{self.rule.alpha:g})")
        if self.spent >= self.budget:
            reasons.append(f"the label budget ({self.budget}) is spent: later checkpoints cannot be judged")
        status = BudgetStatus("stop" if reasons else "ok", reasons, cp.step, cp.kl, self.spent - before, self.spent,
                              self.best.step if self.best is not None else None, tied)
        self.history.append(status)
        return status

    def _judge(self, cp: Judged):
        """The stop rule's decision on the labelled checkpoints with ``cp`` added: its mean, with the standard error
        of the labels' pooled variance (more degrees of freedom than its own few labels; 0/1 labels that agree on one
        checkpoint still carry the spread the others show), widened by t_df / z at the 0.995 quantile, near where
        the boundary lies, since that variance is itself estimated (the rule's known-noise mode assumes it known)."""
        ss, df = self._pool
        self._pool = (ss + float(((np.array(cp.labels) - cp.mean) ** 2).sum()), df + cp.n - 1)
        self.judged.append(cp)
        sd = math.sqrt(self._pool[0] / self._pool[1])
        widen = scipy_stats.t.ppf(0.995, self._pool[1]) / scipy_stats.norm.ppf(0.995)
        return self.rule.update(cp.mean, max(sd, 1e-9) / math.sqrt(cp.n) * widen)

    def summary(self) -> str:
        if not self.history:
            return "no evaluation was seen"
        last = self.history[-1]
        keep = f"; keep step {last.best_step:g}" if last.best_step is not None else "; no checkpoint was judged"
        return (f"{len(self.history)} evaluations to step {last.step:g} (KL {last.kl:.3g}), {self.spent} of "
                f"{self.budget} labels ({self.strategy}); last status {last.state}{keep}")


def pad_id(tokenizer) -> int:
    """The tokenizer's padding token, or its end token where it has none."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def generate(model, tokenizer, prompts: list[str], max_new_tokens: int):
    """Completions of ``prompts`` sampled by ``model`` at temperature 1 from the full distribution, in one
    left-padded batch, the model put back in its mode after: (the encoded prompts, the completions' token ids)."""
    import torch

    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    enc = tokenizer(prompts, return_tensors="pt", padding=True).to(next(model.parameters()).device)
    tokenizer.padding_side = side
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = model.generate(**enc, do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                             max_new_tokens=max_new_tokens, pad_token_id=pad_id(tokenizer))
    model.train(was_training)
    return enc, out[:, enc["input_ids"].shape[1]:]


class CheckpointJudge:
    """A trainer's checkpoints judged on a label budget: at each, `BudgetWatch` buys labels by generating
    completions of held-out ``prompts`` with the checkpoint's model (sampling at temperature 1, the policy itself)
    and passing them to ``judge(prompts, completions) -> one score per completion``; with ``pairwise``,
    ``judge(prompts, completions, references) -> 1 (the completion wins), 0.5 (tie) or 0`` against a completion of
    the same prompt by the starting model, sampled once by `begin` (``references`` per prompt) before training
    moves it. `OveroptCallback(judge=...)` calls `begin` when training starts and `evaluate` at every saved
    checkpoint, so the checkpoint to roll back to always exists on disk."""

    def __init__(self, judge, prompts, budget: int = 200, strategy: str = "sequential", max_new_tokens: int = 64,
                 seed: int = 0, pairwise: bool = False, references: int = 4, **watch):
        if not prompts:
            raise ValueError("a judge needs held-out prompts to generate completions for (judge_prompts)")
        self.judge, self.prompts, self.max_new_tokens = judge, list(prompts), max_new_tokens
        self.pairwise, self.n_refs, self.refs = pairwise, references, None
        self.watch = BudgetWatch(strategy, budget, **watch)
        self.rng = np.random.default_rng(seed)

    def _generate(self, model, tokenizer, prompts: list[str]) -> list[str]:
        return tokenizer.batch_decode(generate(model, tokenizer, prompts, self.max_new_tokens)[1],
                                      skip_special_tokens=True)

    def begin(self, model, tokenizer) -> None:
        """With a pairwise judge: ``references`` completions of every prompt by the model as training starts."""
        if self.pairwise and self.refs is None:
            texts = self._generate(model, tokenizer, [p for p in self.prompts for _ in range(self.n_refs)])
            self.refs = [texts[i * self.n_refs:(i + 1) * self.n_refs] for i in range(len(self.prompts))]

    def _label(self, model, tokenizer) -> Callable[[int], np.ndarray]:
        def label(n: int) -> np.ndarray:
            idx = self.rng.choice(len(self.prompts), size=n)
            prompts = [self.prompts[i] for i in idx]
            completions = self._generate(model, tokenizer, prompts)
            if self.pairwise:
                if self.refs is None:
                    raise ValueError("a pairwise judge needs the starting model's completions: call begin() first")
                refs = [self.refs[i][self.rng.integers(self.n_refs)] for i in idx]
                scores = self.judge(prompts, completions, refs)
            else:
                scores = self.judge(prompts, completions)
            scores = np.asarray(scores, dtype=float).ravel()
            if len(scores) != n:
                raise ValueError(f"the judge returned {len(scores)} scores for {n} completions")
            return scores
        return label

    def evaluate(self, model, tokenizer, step: float, kl: float, proxy: float) -> BudgetStatus:
        return self.watch.update(step, kl, proxy, self._label(model, tokenizer))

"""The monitor inside a training run: a `transformers.TrainerCallback` (TRL's trainers included).

    trainer.add_callback(OveroptCallback(Monitor(), reference_key="eval/reward"))      # stops training on "stop"
    cb = OveroptCallback(judge=my_judge, judge_prompts=prompts, budget=200)              # a judge on a label budget
    cb.best_checkpoint, cb.kl_measured                                                 # where to roll back; the KL

Each log line feeds the monitor (`online.monitor.Monitor`): the proxy, the KL where the trainer logs one, a
reference and ensemble members where named. Where the trainer logs no KL (TRL's GRPO with ``beta = 0``, its default,
and many custom trainers), the callback measures it itself at every saved checkpoint (`KLProbe`: the sequence KL of
the model's own completions against a frozen copy of the model training started from, the full-vocabulary
estimator of `measure.kl`), so the run gets a KL axis anyway; until the first checkpoint the monitor judges on steps.
"""
from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import LogError
from .columns import KL_NAMES, REWARD_NAMES, recognise
from .monitor import Monitor

# what the callback reads as the proxy: the usual names, never gold (a log may carry gold at weight zero)
PROXY_NAMES = tuple(n for n in REWARD_NAMES if n != "gold")


def _proxy_name(logs: dict) -> str | None:
    return next((n for n in PROXY_NAMES if n in logs), None)


class KLProbe:
    """The KL of a model's own completions against the model as training started: ``samples`` completions of each
    prompt, sampled at temperature 1 from the full distribution, scored by both models (`measure.kl.sequence_kl`:
    the full-vocabulary KL summed over each completion, end token included), averaged."""

    def __init__(self, prompts, samples: int = 2, max_new_tokens: int = 64, seed: int = 0):
        if not prompts:
            raise ValueError("measuring the KL needs prompts to sample completions of (kl_prompts or judge_prompts)")
        self.prompts, self.samples, self.max_new_tokens, self.seed = list(prompts), samples, max_new_tokens, seed
        self.ref = None

    def begin(self, model) -> None:
        """Keep a frozen copy of the model as training starts."""
        self.ref = copy.deepcopy(model).eval()
        for p in self.ref.parameters():
            p.requires_grad_(False)

    def measure(self, model, tokenizer) -> float:
        import torch

        from ..measure.kl import sequence_kl

        if self.ref is None:
            raise ValueError("KLProbe.measure before begin: the starting model was not kept")
        side, tokenizer.padding_side = tokenizer.padding_side, "left"
        prompts = [p for p in self.prompts for _ in range(self.samples)]
        enc = tokenizer(prompts, return_tensors="pt", padding=True).to(next(model.parameters()).device)
        tokenizer.padding_side = side
        was_training = model.training
        model.eval()
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        with torch.no_grad():
            torch.manual_seed(self.seed)
            out = model.generate(**enc, do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                                 max_new_tokens=self.max_new_tokens, pad_token_id=pad)
            resp = out[:, enc["input_ids"].shape[1]:]
            kl = sequence_kl(model, self.ref, enc["input_ids"], resp, pad, tokenizer.eos_token_id,
                             prompt_mask=enc["attention_mask"])["kl"]
        model.train(was_training)
        return float(kl.mean())


def _log_kl(logs: dict, kl_key: str | None, proxy_key: str) -> float | None:
    """The sequence KL a log line holds (a per-token kl beside a mean completion length multiplied by it, as
    `overopt fit` reads it), or None where it holds none."""
    if kl_key is None and not any(k in logs for k in KL_NAMES) and \
            not any(k.split("/", 1)[-1] in KL_NAMES for k in logs):
        return None
    try:
        cols = recognise(pd.DataFrame([logs]), "log line", kl_key, proxy_key)
    except LogError:
        return None
    kl = logs[cols["kl"]]
    return float(kl * logs[cols["kl_length"]]) if cols["kl_length"] else float(kl)


def OveroptCallback(monitor: Monitor | None = None, kl_key: str | None = None, reward_key: str | None = None,
                    reference_key: str | None = None, member_keys: tuple = (), judge=None, judge_prompts=(),
                    budget: int = 200, strategy: str = "sequential", measure_kl: bool | None = None, kl_prompts=(),
                    **judge_kw):
    """A `transformers.TrainerCallback` that feeds each training log line to ``monitor`` and stops training on
    "stop". Keys default to the usual names (TRL: objective/kl or kl, objective/scores or reward, also under
    train/ or eval/); a per-token kl beside a mean completion length is multiplied by it. ``callback.monitor.history``
    keeps every status.

    With ``judge`` (``judge(prompts, completions) -> scores``: a classifier, an LLM judge, human ratings) every saved
    checkpoint is judged on a label budget (`online.budget.CheckpointJudge`: completions of ``judge_prompts``
    generated by the model, ``budget`` labels in all, ``strategy`` fixed, triggered or sequential; ``judge_kw`` go to
    it: ``pairwise=True`` for ``judge(prompts, completions, references)`` against the starting model's
    completions). A significant fall below the best judged checkpoint (`online.stoprule`), or a spent budget, stops
    training; ``callback.best_checkpoint`` names the checkpoint folder to roll back to.

    ``measure_kl`` (default: whenever there are prompts to sample, ``kl_prompts`` or ``judge_prompts``) keeps a frozen
    copy of the starting model and measures the KL at every saved checkpoint (`KLProbe`), used wherever the trainer
    logs none: ``callback.kl_measured`` is [(step, KL)]."""
    from transformers import TrainerCallback

    from .budget import CheckpointJudge

    prompts = list(kl_prompts) or list(judge_prompts)
    probe = KLProbe(prompts) if (measure_kl if measure_kl is not None else bool(prompts)) else None

    class _Callback(TrainerCallback):
        def __init__(self):
            self.monitor = monitor or Monitor()
            self.judged = CheckpointJudge(judge, judge_prompts, budget, strategy, **judge_kw) if judge else None
            self.probe = probe
            self.best_checkpoint: str | None = None
            self.kl_measured: list[tuple[float, float]] = []
            self._last = (math.nan, math.nan)  # the latest (KL, proxy): the judged checkpoint's x-axis
            self._kl_logged = False  # whether the trainer's last log line had a KL of its own

        def _kl_now(self, logged: float | None) -> float | None:
            return logged if logged is not None else self.kl_measured[-1][1] if self.kl_measured else None

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            proxy_key = reward_key or _proxy_name(logs)
            if proxy_key is None or proxy_key not in logs or not np.isfinite(logs[proxy_key]):
                return control
            logged = _log_kl(logs, kl_key, proxy_key)
            self._kl_logged = logged is not None
            kl = self._kl_now(logged)
            proxy = float(logs[proxy_key])
            self._last = (math.nan if kl is None else kl, proxy)
            members = [logs[k] for k in member_keys if k in logs] or None
            ref = logs.get(reference_key) if reference_key else None
            status = self.monitor.update(state.global_step, kl, proxy, ref, members)
            if status.state == "stop":
                control.should_training_stop = True
            return control

        def on_train_begin(self, args, state, control, model=None, processing_class=None, **kwargs):
            if self.judged is not None:  # a pairwise judge compares with the starting model's completions
                self.judged.begin(model, processing_class)
            if self.probe is not None and model is not None:
                self.probe.begin(model)
            return control

        def on_save(self, args, state, control, model=None, processing_class=None, **kwargs):
            if self.probe is not None and model is not None and processing_class is not None:
                self.kl_measured.append((float(state.global_step), self.probe.measure(model, processing_class)))
                if not self._kl_logged:  # the checkpoint judged now sits at the KL measured now, not the last one
                    self._last = (self.kl_measured[-1][1], self._last[1])
            if self.judged is None:
                return control
            kl, proxy = self._last
            status = self.judged.evaluate(model, processing_class, state.global_step, kl if math.isfinite(kl) else 0.0,
                                          proxy if math.isfinite(proxy) else 0.0)
            if status.best_step is not None:
                self.best_checkpoint = str(Path(args.output_dir) / f"checkpoint-{int(status.best_step)}")
            if status.state == "stop":
                control.should_training_stop = True
            return control

    return _Callback()

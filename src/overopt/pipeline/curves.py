"""One RL curve of a run: optimize a policy against a proxy, evaluate on a schedule, return the rl.csv rows.

Each curve checkpoints (policy, optimizer, controller, random state, rows so far) into the cache at every
evaluation point, so an interrupted run resumes mid-curve. The RL, ensemble and multi-objective studies run
their curves through `run_curve`; `curve_key` is the cache key they share.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, fields, replace

import numpy as np
import torch

from ..config import Config
from ..measure.evaluator import EvalSettings, Evaluator
from ..models.reward import Proxy, score
from ..optimizers.grpo import GRPOSettings
from ..optimizers.rl import RLError, RLSettings, RLTrainer
from ..stats import bootstrap_rows, interval

def rl_columns(dims) -> list[str]:
    """rl.csv's columns in a world whose gold names ``dims`` (`World.dims`): one gold_<dimension> column each."""
    return ["curve", "rm", "rm_params", "algo", "kl_coef", "step", "kl", "kl_k1", "kl_k3", "proxy", "gold", "gold_lo",
            "gold_hi", "winrate"] + [f"gold_{d}" for d in dims] + ["length", "entropy"]



# rl.* fields that choose which curves run, not how one runs: left out of every curve's cache key
RL_CURVE_CHOICE = ("enabled", "kl_sweep", "sweep_rm", "policy_sizes", "iterated_rounds", "iterated_pairs")


def eval_steps(steps: int, points: int, spacing: float) -> list[int]:
    """0, then steps * (i / points)^spacing for i = 1..points (dense early when spacing > 1), ending at steps."""
    s = {0, steps}
    s.update(int(round(steps * (i / points) ** spacing)) for i in range(1, points + 1))
    return sorted(s)


def eval_settings(cfg: Config, device, prompts: int | None = None, samples: int | None = None) -> EvalSettings:
    """An evaluation of rl.eval_prompts x rl.eval_samples responses (or ``prompts`` x ``samples``) at the run's
    response length and gold."""
    return EvalSettings(prompts or cfg.rl.eval_prompts, samples or cfg.rl.eval_samples, cfg.world.max_new_tokens,
                        cfg.gold, str(device))


def pool_evaluator(run, art, base_scores: dict, prompts: int | None = None, samples: int | None = None,
                   watch=None) -> Evaluator:
    """An evaluator of policies started from pi0, its baseline the best-of-n pool with ``base_scores`` (a proxy's
    name -> its pool scores)."""
    return Evaluator(eval_settings(run.cfg, run.device, prompts, samples), art.world, art.pi0, art.pool.prompt_idx,
                     art.pool.tokens, base_scores, art.gold_norm, watch)


def rl_settings(cfg: Config) -> RLSettings:
    """The trainer's settings: every rl.* field the trainer has, by name, GRPO's from grpo.*, and the response
    length."""
    shared = {f.name: getattr(cfg.rl, f.name) for f in fields(RLSettings) if hasattr(cfg.rl, f.name)}
    grpo = GRPOSettings(**{f.name: getattr(cfg.grpo, f.name) for f in fields(GRPOSettings)})
    return RLSettings(**shared, max_new_tokens=cfg.world.max_new_tokens, grpo=grpo)


def grpo_settings(cfg: Config, overrides: dict) -> RLSettings:
    """GRPO's trainer settings with a grpo.variants entry's overrides (`config.parse_grpo_variant`): kl_coef is the
    KL penalty in the reward (fixed), every other key a GRPO option."""
    s = rl_settings(cfg)
    grpo = replace(s.grpo, **{k: v for k, v in overrides.items() if k != "kl_coef"})
    return replace(s, algo="grpo", grpo=grpo, kl_coef=float(overrides.get("kl_coef", s.kl_coef)),
                   kl_target=0.0 if "kl_coef" in overrides else s.kl_target)


def curve_key(cfg: Config, *extra) -> str:
    """Cache key of an RL curve: the world, gold and pi0, the shared RL settings, and what names the curve (a GRPO
    curve: its `GRPOSettings` among ``extra``; rl.algo grpo: grpo.* too)."""
    shared = {k: v for k, v in cfg.to_dict()["rl"].items() if k not in RL_CURVE_CHOICE}
    if cfg.rl.algo == "grpo":
        extra = (*extra, asdict(rl_settings(cfg).grpo))
    return cfg.section_hash("world", "gold", "policy", extra=[shared, *extra])


def run_curve(run, world, pi0, proxy: Proxy, evaluator: Evaluator, key: str, desc: str,
              settings: RLSettings | None = None, curve: str | None = None, source=None) -> dict:
    """One RL curve against ``proxy``; returns {"rows": [...], "boot": [replicates, points]}.

    ``source`` (an `iterated.IteratedProxy`) swaps the proxy between rounds of iterated RLHF."""
    c = run.cfg
    settings = settings or rl_settings(c)
    done = run.cache.get("rl", key)
    if done is not None:
        return done
    policy = copy.deepcopy(pi0)
    current = (lambda: source.current) if source is not None else (lambda: proxy)  # noqa: E731
    reward_fn = lambda prompts, resp: score(current().model, prompts, resp, world.pad)  # noqa: E731
    trainer = RLTrainer(policy, pi0, reward_fn, settings, world.pad, world.eos, seed=run.seed("rl.trainer"))
    rng = run.rng("rl.prompts")
    rows, per_prompt, samples, start = [], [], [], 0
    ckpt = run.cache.get("rl-ckpt", key)
    if ckpt is not None:  # resume mid-curve
        policy.load_state_dict(ckpt["policy"])
        if trainer.value is not None and ckpt.get("value") is not None:
            trainer.value.load_state_dict(ckpt["value"])
        trainer.opt.load_state_dict(ckpt["opt"])
        trainer.kl_ctl.value = ckpt["kl_coef"]
        trainer.gen.set_state(ckpt["gen"])
        trainer.n_steps = start = ckpt["step"]
        rng.bit_generator.state = ckpt["rng"]
        rows, per_prompt, samples = ckpt["rows"], ckpt["per_prompt"], ckpt["samples"]
        if source is not None:
            source.load(ckpt["source"])
    schedule = eval_steps(c.rl.steps, c.rl.eval_points, c.rl.eval_spacing)
    base = {"curve": curve or proxy.name, "rm": proxy.name, "rm_params": proxy.params, "algo": settings.algo}
    with run.bar(c.rl.steps, desc) as bar:
        bar.update(start)
        for step in range(start, c.rl.steps + 1):
            if step in schedule and not any(r["step"] == step for r in rows):
                row, pp = evaluator(policy, current(), seed=run.seed("rl.eval_sampling", step))
                rows.append({**base, "kl_coef": trainer.kl_ctl.value, "step": step, **row})
                per_prompt.append(pp)
                samples.append(evaluator.last_tokens)
                run.cache.put("rl-ckpt", key, {
                    "policy": policy.state_dict(), "opt": trainer.opt.state_dict(),
                    "value": trainer.value.state_dict() if trainer.value is not None else None,
                    "kl_coef": trainer.kl_ctl.value, "gen": trainer.gen.get_state(), "step": step,
                    "rng": rng.bit_generator.state, "rows": rows, "per_prompt": per_prompt,
                    "samples": samples, "source": source.state() if source is not None else None})
            if step == c.rl.steps:
                break
            if source is not None:
                source.before_step(step, policy)
            idx = rng.choice(world.train_prompt_idx, c.rl.prompts_per_step)
            try:
                trainer.step(torch.tensor(world.prompt_ids[idx], device=run.device))
            except RLError as e:  # keep the evaluated points: the caller writes them before stopping
                e.rows = rows
                e.args = (f"RL curve {curve or proxy.name}: {e}",)
                raise
            bar.update(1)
    per_prompt = np.stack(per_prompt)
    boots = bootstrap_rows(per_prompt.T, c.bon.n_boot, run.seed("rl.resamples"))  # [boot, points]
    for j, r in enumerate(rows):
        r["gold_lo"], r["gold_hi"] = (float(x) for x in interval(boots[:, j], c.fit.ci))
    # samples: [points, eval prompts x samples, tokens], the evaluation responses (prompts: evaluator.prompt_idx)
    result = {"rows": rows, "boot": boots, "samples": np.stack(samples)}
    run.cache.put("rl", key, result)
    return result

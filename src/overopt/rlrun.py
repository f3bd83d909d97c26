"""The RL stage of a run: optimize pi0 against each proxy, evaluate on a schedule, write rl.csv rows.

Each curve checkpoints (policy, optimizer, controller, random state, rows so far) into the cache
at every evaluation point, so an interrupted run resumes mid-curve.
"""
from __future__ import annotations

import copy

import numpy as np
import torch

from . import bon
from .kl import sequence_kl
from .policy import sample
from .reward import member_scores, score
from .rl import RLError, RLSettings, RLTrainer
from .world.toy import GOLD_DIMS

EVAL_VERSION = 3  # bump when an evaluation gains or changes a column: cached curves are then recomputed
RL_COLUMNS = ["curve", "rm", "rm_params", "algo", "kl_coef", "step", "kl", "kl_k1", "kl_k3", "proxy", "gold", "gold_lo",
              "gold_hi", "winrate"] + [f"gold_{d}" for d in GOLD_DIMS] + ["length"]


def eval_steps(steps: int, points: int, spacing: float) -> list[int]:
    """0, then steps * (i / points)^spacing for i = 1..points (dense early when spacing > 1), ending at steps."""
    s = {0, steps}
    s.update(int(round(steps * (i / points) ** spacing)) for i in range(1, points + 1))
    return sorted(s)


class Evaluator:
    """Samples the policy on held-out prompts and measures KL, proxy, gold and its dimensions.

    Gains are over the reference policy's mean on the same prompts, taken from a baseline sample
    of it (for pi0, the best-of-n pool: N samples per prompt), so RL, best-of-n and direct alignment
    share one baseline and one KL definition. The gold win rate is against every baseline sample
    of the same prompt (ties count half).
    """

    def __init__(self, run, world, ref, base_prompt_idx: np.ndarray, base_tokens: np.ndarray,
                 base_scores: dict, gold_norm, n_prompts: int | None = None, n_samples: int | None = None):
        c = run.cfg
        self.run, self.world, self.pi0, self.gold_norm = run, world, ref, gold_norm
        self.n_prompts = n_prompts or c.rl.eval_prompts
        self.prompt_idx = np.repeat(world.eval_prompt_idx[: self.n_prompts], n_samples or c.rl.eval_samples)
        self.prompts = torch.tensor(world.prompt_ids[self.prompt_idx], device=run.device)
        P = len(np.unique(base_prompt_idx))  # the baseline is prompt-major, M samples per prompt
        gold, dims = world.gold(base_prompt_idx, base_tokens, c.gold, gold_norm)
        self.base_gold_all = gold.reshape(P, -1)[: self.n_prompts]
        self.base_gold = self.base_gold_all.mean(1)
        self.base_dims = {d: dims[d].reshape(P, -1)[: self.n_prompts].mean() for d in GOLD_DIMS}
        self.base_proxy = {k: v.reshape(P, -1)[: self.n_prompts].mean() for k, v in base_scores.items()}

    def winrate(self, gold: np.ndarray) -> float:
        """Mean over samples of P(sample's gold > a baseline sample's gold on its prompt), ties half."""
        base = self.base_gold_all[np.repeat(np.arange(self.n_prompts), len(gold) // self.n_prompts)]
        g = gold[:, None]
        return float(((base < g).mean(1) + 0.5 * (base == g).mean(1)).mean())

    @torch.no_grad()
    def __call__(self, policy, proxy: dict | None, seed: int) -> tuple[dict, np.ndarray]:
        """One evaluation; without a proxy (direct alignment) the proxy column is NaN."""
        c = self.run.cfg
        g = torch.Generator(device=self.prompts.device).manual_seed(seed)
        s = sample(policy, self.prompts, c.world.max_new_tokens, self.world.eos, self.world.pad, generator=g)
        kls = sequence_kl(policy, self.pi0, self.prompts, s.tokens, self.world.pad, self.world.eos)
        tokens = s.tokens.cpu().numpy()
        # kept by run_curve (right-padded to the full response length), so other reward models can score it later
        self.last_tokens = np.full((len(tokens), c.world.max_new_tokens), self.world.pad, dtype=np.int32)
        self.last_tokens[:, : tokens.shape[1]] = tokens
        gold_all, dims = self.world.gold(self.prompt_idx, tokens, c.gold, self.gold_norm)
        per_prompt = gold_all.reshape(self.n_prompts, -1).mean(1) - self.base_gold
        px = float("nan")
        if proxy is not None:  # a retrained proxy (iterated RLHF) is centred on pi0 itself: its baseline is 0
            px = (score(proxy["model"], self.prompts, s.tokens, self.world.pad).mean()
                  - self.base_proxy.get(proxy["rm"], 0.0))
        row = {"kl": float(kls["kl"].mean()), "kl_k1": float(kls["k1"].mean()), "kl_k3": float(kls["k3"].mean()),
               "proxy": float(px), "gold": float(per_prompt.mean()), "winrate": self.winrate(gold_all),
               **{f"gold_{d}": float(dims[d].mean() - self.base_dims[d]) for d in GOLD_DIMS},
               "length": float(dims["n_words"].mean())}
        if proxy is not None and proxy.get("watch") is not None:  # an ensemble watched along the curve
            spread = member_scores(proxy["watch"], self.prompts, s.tokens, self.world.pad).std(0)
            row["disagreement"] = float(spread.mean())
        return row, per_prompt


def rl_settings(cfg) -> RLSettings:
    r = cfg.rl
    return RLSettings(algo=r.algo, k=r.k, lr=r.lr, kl_coef=r.kl_coef, kl_target=r.kl_target,
                      kl_horizon=r.kl_horizon, epochs=r.epochs, minibatches=r.minibatches,
                      max_new_tokens=cfg.world.max_new_tokens)


def run_curve(run, world, pi0, proxy: dict, evaluator: Evaluator, key: str, desc: str,
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
    reward_fn = lambda prompts, resp: score(current()["model"], prompts, resp, world.pad)  # noqa: E731
    trainer = RLTrainer(policy, pi0, reward_fn, settings, world.pad, world.eos, seed=run.seed(60))
    rng = np.random.default_rng([c.run.seed, 61])
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
    base = {"curve": curve or proxy["rm"], "rm": proxy["rm"], "rm_params": proxy["params"], "algo": settings.algo}
    with run.bar(c.rl.steps, desc) as bar:
        bar.update(start)
        for step in range(start, c.rl.steps + 1):
            if step in schedule and not any(r["step"] == step for r in rows):
                row, pp = evaluator(policy, current(), seed=run.seed(62, step))
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
                e.args = (f"RL curve {curve or proxy['rm']}: {e}",)
                raise
            bar.update(1)
    per_prompt = np.stack(per_prompt)
    boots = bon.bootstrap_rows(per_prompt.T, c.bon.n_boot, run.seed(63))  # [boot, points]
    q = [(1 - c.fit.ci) / 2 * 100, (1 + c.fit.ci) / 2 * 100]
    for j, r in enumerate(rows):
        r["gold_lo"], r["gold_hi"] = (float(x) for x in np.percentile(boots[:, j], q))
    # samples: [points, eval prompts x samples, tokens], the evaluation responses (prompts: evaluator.prompt_idx)
    result = {"rows": rows, "boot": boots, "samples": np.stack(samples)}
    run.cache.put("rl", key, result)
    return result

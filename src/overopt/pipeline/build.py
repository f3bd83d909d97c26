"""The core artifacts of a run, each built once and cached by content: the world, pi0 (and pi0s of other sizes),
the labelled preference pairs and the best-of-n pool. Proxies are in `pipeline.proxies`."""
from __future__ import annotations

from dataclasses import replace
from functools import partial

import numpy as np
import torch

from ..config import parse_size
from ..measure.evaluator import Evaluator
from ..measure.labels import label_pairs
from ..models.policy import as_ids, sample_in_batches
from ..models.reward import Proxy, score
from ..world.base import World
from .artifacts import Labelled, PairsData, Pool
from .curves import eval_settings
from .run import Run
from .worlds import builder


def build_world(run: Run) -> World:
    """The run's world (`worlds.builder` decides which): the toy world, cached, or the Hugging Face world."""
    return builder(run.cfg).world(run)


def build_pi0(run: Run, world: World, policy_cfg=None, name: str = "pi0"):
    """The base policy: a small GPT-NeoX trained on the toy world's corpus (``policy_cfg`` for another size), or the
    hf.policy checkpoint as it is."""
    return builder(run.cfg).pi0(run, world, policy_cfg, name)


def sample(run: Run, pi0, prompt_idx: np.ndarray, world: World, seed: int, desc: str):
    prompts = torch.tensor(world.prompt_ids[prompt_idx], device=run.device)
    with run.bar(len(prompts), desc) as b:
        s = sample_in_batches(pi0, prompts, run.cfg.policy.sample_batch, run.cfg.world.max_new_tokens,
                              world.eos, world.pad, seed, progress=b)
    return s.tokens.cpu().numpy().astype(np.int32), s.logprob.cpu().numpy()


def build_pairs(run: Run, world: World, pi0) -> PairsData:
    """Two pi0 samples for each of n_train + n_val prompts (drawn with repetition), gold-scored.

    The samples are cached; gold is recomputed on load, so a change of the gold section reuses them.

    Validation pairs use prompts that no training pair uses. Gold is normalised to mean 0 and
    unit standard deviation over these pi0 samples (Gao et al. 2022, sec. 2.2).
    """
    c = run.cfg
    key = c.section_hash("world", "policy", extra=[c.rm.n_train, c.rm.n_val])
    with run.stage("pairs") as st:
        data = run.cache.get("pairs", key)
        st["cached"] = data is not None
        if data is None:
            rng = run.rng("pairs.prompts")
            prompts = rng.permutation(world.train_prompt_idx)
            n_val_prompts = max(1, len(prompts) // 6)
            val_p, train_p = prompts[:n_val_prompts], prompts[n_val_prompts:]
            pidx = np.concatenate([train_p[rng.integers(len(train_p), size=c.rm.n_train)],
                                   val_p[rng.integers(len(val_p), size=c.rm.n_val)]])
            tok, _ = sample(run, pi0, np.repeat(pidx, 2), world, run.seed("pairs.sampling"), "pair sampling")
            data = {"prompt_idx": pidx, "a": tok[0::2], "b": tok[1::2]}
            run.cache.put("pairs", key, data)
    # Gold is cheap and depends on the gold section only: computed afresh, never cached.
    ga, _ = world.gold(data["prompt_idx"], data["a"], c.gold)
    gb, _ = world.gold(data["prompt_idx"], data["b"], c.gold)
    both = np.concatenate([ga, gb])
    return PairsData(data["prompt_idx"], data["a"], data["b"], ga, gb, float(both.mean()), float(both.std()))


def labelled_pairs(run: Run, world: World, pairs: PairsData, noise: float | None = None) -> Labelled:
    """The training pairs labelled by gold at a label-flip rate ``noise`` (default rm.label_noise), the validation
    pairs with gold's own labels, and pi0's responses to centre on. The run's own are built once (`Artifacts.labelled`)."""
    c = run.cfg
    noise = c.rm.label_noise if noise is None else noise
    m, s = pairs.gold_norm
    n_all = len(pairs.prompt_idx)
    n_train = c.rm.n_train
    labelled = label_pairs(pairs.prompt_idx, pairs.a, pairs.b, (pairs.gold_raw_a - m) / s, (pairs.gold_raw_b - m) / s,
                           noise, run.rng("pairs.label_noise"))
    train_all, val = labelled.head(n_train), labelled.subset(slice(n_train, n_all))
    # Validation accuracy is against gold: undo any label noise on the validation pairs.
    val_true = label_pairs(val.prompt_idx, val.chosen, val.rejected, val.gold_chosen, val.gold_rejected,
                           0.0, np.random.default_rng(0))
    t = partial(as_ids, device=run.device)
    val_prompts = t(world.prompt_ids[val_true.prompt_idx])
    center = (torch.cat([val_prompts, val_prompts]),
              t(np.concatenate([pairs.a[n_train:], pairs.b[n_train:]])))
    return Labelled(train_all, val_true, center, float(noise))


def labelled_at(run: Run, art, noise: float) -> Labelled:
    """The run's pairs labelled at another flip rate (the artifacts' own at rm.label_noise)."""
    return art.labelled if noise == art.labelled.noise else labelled_pairs(run, art.world, art.pairs, noise)


def build_pool(run: Run, world: World, pi0) -> Pool:
    """N pi0 samples (temperature 1, no truncation) for each held-out prompt, with log pi0(y)."""
    c = run.cfg
    key = c.section_hash("world", "policy", extra=[c.bon.pool_size])
    with run.stage("pool") as st:
        pool = run.cache.get("pool", key)
        st["cached"] = pool is not None
        if pool is None:
            pidx = np.repeat(world.eval_prompt_idx, c.bon.pool_size)
            tok, lp = sample(run, pi0, pidx, world, run.seed("pool.sampling"), "best-of-n pool")
            pool = {"prompt_idx": pidx, "tokens": tok, "logprob": lp, "key": key}
            run.cache.put("pool", key, pool)
    return Pool(**pool)


def other_policy(run: Run, world: World, spec: str, proxy: Proxy | None, gold_norm, n_prompts: int | None = None,
                  n_samples: int | None = None):
    """A pi0 of another size (trained like pi0) and an evaluator whose baseline is its own samples."""
    c = run.cfg
    hidden, layers = parse_size(spec)
    pcfg = replace(c.policy, hidden=hidden, layers=layers, heads=max(1, hidden // 16))
    policy = build_pi0(run, world, pcfg, name=f"pi0-{spec}")
    n = 32  # baseline samples per evaluation prompt
    pidx = np.repeat(world.eval_prompt_idx[: n_prompts or c.rl.eval_prompts], n)
    tok, _ = sample(run, policy, pidx, world, run.seed("pi0_other.baseline", hidden, layers), f"pi0-{spec} baseline")
    base = {}
    if proxy is not None:
        base[proxy.name] = score(proxy.model, torch.tensor(world.prompt_ids[pidx], device=run.device),
                                  torch.tensor(tok.astype(np.int64), device=run.device), world.pad)
    return policy, Evaluator(eval_settings(c, run.device, n_prompts, n_samples), world, policy, pidx, tok, base,
                             gold_norm)


def pi0_name(cfg) -> str:
    """pi0's name in the tables: its size in the toy world, its folder in the Hugging Face world."""
    return builder(cfg).pi0_name(cfg)

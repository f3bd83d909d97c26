"""The proxy reward models of a run: the family (rm.sizes) and the data-size sweep, each trained on gold-labelled
pi0 pairs (or loaded from the cache), centred so that pi0's mean score is 0, read as a preference model
(temperature and calibration), and its scores of the best-of-n pool (cached per proxy and pool)."""
from __future__ import annotations

import time
from dataclasses import replace
from functools import partial

import numpy as np
import pandas as pd
import torch

from ..config import Config, family_sizes, parse_size, width_lr
from ..errors import TrainingError
from ..models.ensemble import fit_temperature, reliability
from ..models.policy import as_ids, build_lm, n_params, train_lm
from ..models.reward import Proxy, RewardModel, bradley_terry_loss, length_normalize, rm_heads, score, train_rm
from ..stats import tie_accuracy
from ..world.base import World
from .artifacts import Labelled, Pool
from .parallel import prefetch
from .run import Run, stage_error
from .worlds import builder, corpus

CALIBRATION_COLUMNS = ["rm", "size", "noise", "member", "n_train", "val_acc", "tau", "ece", "ece_calibrated"]
RELIABILITY_COLUMNS = ["rm", "calibrated", "bin_lo", "bin_hi", "count", "confidence", "accuracy"]


def rm_specs(cfg: Config) -> list[tuple[str, int]]:
    """(size, n_train) of every proxy: the family at rm.n_train, then the data-size sweep."""
    sizes = family_sizes(cfg)
    specs = [(s, cfg.rm.n_train) for s in sizes]
    sweep_rm = cfg.rm.data_sweep_rm or sizes[len(sizes) // 2]
    specs += [(sweep_rm, n) for n in cfg.rm.data_sizes if n != cfg.rm.n_train]
    return specs


def rm_name(size: str, n_train: int, cfg: Config) -> str:
    return size if n_train == cfg.rm.n_train else f"{size}@{n_train}"


def build_proxies(run: Run, world: World, labelled: Labelled) -> list[Proxy]:
    """Train (or load) every proxy on the labelled pairs; centre each so that pi0's mean score is 0."""
    c = run.cfg
    train_all, val_true, center = labelled
    return train_proxies(run, world, [dict(size=size, n=n, train_all=train_all, val_true=val_true, center=center,
                                           name=rm_name(size, n, c)) for size, n in rm_specs(c)], "proxies")


def train_proxies(run: Run, world: World, jobs: list[dict], desc: str) -> list[Proxy]:
    """`train_proxy(run, world, **job)` for every job, in order. On a CPU the ones not cached train first in one-thread
    worker processes, the costliest first (`parallel.prefetch`, the run's stage "<desc> in workers"): a proxy's step
    uses a second thread poorly (128x1 1.1x faster on two threads than on one, 96x3 1.2x, the smallest slower)."""
    c = run.cfg

    def train(job: dict):
        return lambda: train_proxy(run, world, **job)

    def key(job: dict) -> str:  # the job's arguments that name the cache file; the rest at train_proxy's defaults
        return proxy_cache_key(c, **{k: v for k, v in job.items()
                                     if k not in ("train_all", "val_true", "center", "name")})
    costliest = sorted(jobs, key=lambda j: -train_cost(c, world, j["size"], j["n"]))
    prefetch(run, [(key(j), train(j)) for j in costliest], "rm", desc)
    return [train(j)() for j in jobs]


def train_members(run: Run, world: World, labelled: tuple, family: list[Proxy], k: int, desc: str,
                  bootstrap: bool = False) -> dict[str, list[Proxy]]:
    """{family proxy name: [the proxy, member 1, ..., member k-1]}: each size trained again on the same pairs
    (``labelled``: a `Labelled`) with other initialisation and data-order seeds (`train_proxy`'s
    ``member``; with ``bootstrap`` on a resample of the pairs), all through one `train_proxies` (workers on a CPU)."""
    train_all, val_true, center = labelled
    members = range(1, k)
    trained = iter(train_proxies(run, world, [
        dict(size=p.size, n=p.n_train, train_all=train_all, val_true=val_true, center=center, name=f"{p.name}#{m}",
             member=m, bootstrap=bootstrap) for p in family for m in members], desc))
    return {p.name: [p] + [next(trained) for _ in members] for p in family}


def train_cost(cfg: Config, world: World, size: str, n: int) -> float:
    """A proxy's training time in arbitrary units, to start the longest first (the world's rule: `worlds`)."""
    return builder(cfg).train_cost(cfg, world, size, n)


def proxy_key(cfg: Config, size: str, n: int, noise: float | None = None, member: int = 0, tag: str = "") -> str:
    """Cache key of a proxy: its size, data, label noise, (for ensemble members past the first) seed index and
    ``tag`` (what else labels its pairs, e.g. one gold dimension)."""
    rm_cfg = {k: v for k, v in cfg.to_dict()["rm"].items()  # length_norm: after training; lr_width, lrs: by its lr
              if k not in ("sizes", "data_sizes", "data_sweep_rm", "length_norm", "lr_width", "lrs", "draws",
                           "pretrain_steps")}
    rm_cfg["lr"] = proxy_lr(cfg, size)
    if cfg.rm.pretrain_steps:  # keyed only when set: proxies trained from scratch keep their keys
        rm_cfg["pretrain"] = [cfg.rm.pretrain_steps, cfg.policy.batch_size, pretrain_lr(cfg, size)]
    if noise is not None:
        rm_cfg["label_noise"] = noise
    return cfg.section_hash("world", "gold", "policy",
                            extra=[rm_cfg, size, n] + ([member] if member else []) + ([tag] if tag else []))


def proxy_cache_key(cfg: Config, size: str, n: int, noise: float | None = None, member: int = 0, tag: str = "",
                    bootstrap: bool = False, slices: int = 0) -> str:
    """Where `train_proxy` caches a proxy's weights: `proxy_key`, marked for a bagged member or a slice."""
    bag = bootstrap and member > 0
    return proxy_key(cfg, size, n, noise, member, tag) + ("-bag" if bag else "") + (f"-of{slices}" if slices else "")


def pretrain_lr(cfg: Config, size: str) -> float:
    """The rate a proxy's backbone learns the corpus at (rm.pretrain_steps): pi0's, scaled down above rm.lr_width."""
    return width_lr(cfg.policy.lr, cfg.rm.lr_width, parse_size(size)[0])


def proxy_lr(cfg: Config, size: str) -> float:
    """The learning rate of a proxy of ``size`` (toy world: its own in rm.lrs, else rm.lr scaled down above
    rm.lr_width; a checkpoint's proxy trains at rm.lr)."""
    return builder(cfg).proxy_lr(cfg, size)


def train_proxy(run: Run, world: World, size: str, n: int, train_all, val_true, center, name: str,
                noise: float | None = None, member: int = 0, bootstrap: bool = False, tag: str = "",
                slices: int = 0) -> Proxy:
    """One proxy of ``size`` on the first ``n`` training pairs, trained (or loaded) and centred on pi0.

    Member m > 0 of an ensemble differs from member 0 in its seeds (initialisation and data order, as
    Coste et al. 2023) and, with ``bootstrap``, trains on a resample of the n pairs drawn with replacement
    (bagging); member 0 is the family's proxy itself. With ``slices`` = k, member m trains on the m-th of k
    disjoint slices of the n pairs (every k-th pair from the m-th): members that share no training pair."""
    c = run.cfg
    pi0_prompts, pi0_resp = center
    t = partial(as_ids, device=run.device)
    val_prompts = pi0_prompts[: len(val_true)]  # the centring set is the validation pairs' two sides
    bootstrap = bootstrap and member > 0
    key = proxy_cache_key(c, size, n, noise, member, tag, bootstrap, slices)
    hidden, layers = size_seed(c, size)
    init_seed = run.seed("proxy.init", hidden, layers) if member == 0 else \
        run.seed("proxy.init", hidden, layers, 1000 + member)
    rm = new_rm(run, world, size, init_seed)
    with run.stage(f"rm {name}") as st:
        state = run.cache.get("rm", key)
        st["cached"] = state is not None
        t0 = time.time()  # train_s: its pretraining (rm.pretrain_steps) and its Bradley-Terry training
        if state is None and c.rm.pretrain_steps:
            rm = pretrained_rm(run, world, size, init_seed)
        rm = rm.to(run.device)
        if state is None:
            tr = train_all.head(n)
            if bootstrap:
                tr = tr.subset(run.rng("proxy.bagging", member).integers(n, size=n))
            if slices:
                tr = tr.subset(np.arange(member % slices, n, slices))
            m = len(tr.prompt_idx)
            steps = c.rm.epochs * max(1, m // c.rm.batch_size)
            order_seed = run.seed("proxy.data_order", hidden, layers, n) if member == 0 else \
                run.seed("proxy.data_order", hidden, layers, n, 1000 + member)
            with run.bar(steps, f"rm {name}") as b, stage_error(f"proxy {name} training"):
                train_rm(rm, t(world.prompt_ids[tr.prompt_idx]), t(tr.chosen), t(tr.rejected), c.rm.epochs,
                         min(c.rm.batch_size, m), proxy_lr(c, size), c.rm.weight_decay, order_seed, world.pad, b)
            train_s = time.time() - t0
            rm.offset.fill_(float(score(rm, pi0_prompts, pi0_resp, world.pad).mean()))
            rc = score(rm, val_prompts, t(val_true.chosen), world.pad)
            rr = score(rm, val_prompts, t(val_true.rejected), world.pad)
            state = {"state_dict": {k: v.cpu() for k, v in rm.state_dict().items()},
                     "val_loss": float(bradley_terry_loss(torch.tensor(rc), torch.tensor(rr)).mean()),
                     "val_acc": float(tie_accuracy(rc, rr, dtype=np.float32)),
                     "train_s": round(train_s, 2)}
            run.cache.put("rm", key, state)
        rm.load_state_dict(state["state_dict"])
        st.update(val_acc=round(state["val_acc"], 4))
        if c.rm.length_norm:  # the same weights, read as a length-normalised reward: new scores downstream
            st["length_coef"] = round(length_normalize(rm, pi0_prompts, pi0_resp, world.pad), 5)
            key = f"{key}-lnorm"
    return Proxy(name=name, params=n_params(rm), model=rm.eval(), size=size, key=key, n_train=n, seed=c.run.seed,
                 val_loss=state["val_loss"], val_acc=state["val_acc"], train_s=state["train_s"],
                 noise=None if noise is None else float(noise), member=member)


def size_seed(cfg: Config, size: str) -> tuple[int, int]:
    """Two integers that stand for a proxy size in seeds: (hidden, layers), or a hash of a checkpoint's name."""
    return builder(cfg).size_seed(cfg, size)


def new_rm(run: Run, world, size: str, seed: int) -> RewardModel:
    """An untrained proxy of ``size``: a GPT-NeoX of that shape, or the named hf.proxies checkpoint's base model
    with a fresh scalar head (initialised from ``seed``)."""
    return builder(run.cfg).new_rm(run, world, size, seed)


def pretrained_rm(run: Run, world: World, size: str, seed: int) -> RewardModel:
    """A toy-world proxy of ``size`` whose backbone first learned the world's corpus as a language model
    (rm.pretrain_steps of next-token training, pi0's batch, `pretrain_lr`; Gao et al. 2022 start every proxy from a
    pretrained LM), with a fresh scalar head; the language model is cached by world, size, steps, rate and seed
    (the data sweep's proxies of one size share it)."""
    c = run.cfg
    hidden, layers = parse_size(size)
    steps, lr = c.rm.pretrain_steps, pretrain_lr(c, size)
    lm = build_lm(len(world.vocab), hidden, layers, rm_heads(hidden), world.prompt_len + c.world.max_new_tokens + 1,
                  seed)
    key = c.section_hash("world", extra=[size, steps, c.policy.batch_size, lr, seed])
    with run.stage(f"lm {size}") as st:
        state = run.cache.get("lm", key)
        st["cached"] = state is not None
        if state is None:
            prompts, resp = corpus(run, world)
            with run.bar(steps, f"lm {size}") as b, stage_error(f"proxy {size} pretraining"):
                losses = train_lm(lm, prompts, resp, steps, c.policy.batch_size, lr, seed, world.pad, b)
            state = {"state_dict": lm.state_dict(), "final_loss": float(np.mean(losses[-50:]))}
            run.cache.put("lm", key, state)
        lm.load_state_dict(state["state_dict"])
        st["final_loss"] = round(state["final_loss"], 4)
    torch.manual_seed(seed)  # the head's initialisation, as `build_rm`'s
    return RewardModel(lm.gpt_neox, hidden).eval()


def score_pool(run: Run, world: World, pool: Pool, proxies: list[Proxy]) -> dict[str, np.ndarray]:
    """Proxy scores of every pool sample, cached per (proxy, pool)."""
    out = {}
    prompts = torch.tensor(world.prompt_ids[pool.prompt_idx], device=run.device)
    resp = torch.tensor(pool.tokens.astype(np.int64), device=run.device)
    for p in proxies:
        key = f"{p.key}-{pool.key}"
        with run.stage(f"score {p.name}") as st:
            s = run.cache.get("scores", key)
            st["cached"] = s is not None
            if s is None:
                with run.bar(len(resp), f"score {p.name}") as b:
                    s = score(p.model, prompts, resp, world.pad, progress=b)
                if not np.isfinite(s).all():
                    raise TrainingError(f"score {p.name}: {int((~np.isfinite(s)).sum())} pool scores are not finite")
                run.cache.put("scores", key, s)
        out[p.name] = s
    return out


def _val_diffs(run: Run, world: World, proxy: Proxy, val) -> tuple[np.ndarray, np.ndarray]:
    """Score differences on the validation pairs, each pair shown in a random order, and which side gold prefers."""
    prompts = torch.tensor(world.prompt_ids[val.prompt_idx], device=run.device)
    rc = score(proxy.model, prompts, torch.tensor(val.chosen.astype(np.int64), device=run.device), world.pad)
    rr = score(proxy.model, prompts, torch.tensor(val.rejected.astype(np.int64), device=run.device), world.pad)
    first = run.rng("calibration.order").random(len(rc)) < 0.5
    return np.where(first, rc - rr, rr - rc), first


def calibrate(run: Run, world: World, proxies: list[Proxy], val) -> tuple[list[Proxy], pd.DataFrame, pd.DataFrame]:
    """Temperature of every proxy fitted on the first half of the validation pairs; ECE before and after on the
    second half, with the reliability diagram of each: (the proxies with ``tau`` set, calibration rows,
    reliability rows)."""
    out, rows, bins = [], [], []
    for p in proxies:
        d, y = _val_diffs(run, world, p, val)
        h = len(d) // 2
        tau = fit_temperature(d[:h], y[:h])
        out.append(replace(p, tau=tau))
        ece_raw, rel_raw = reliability(d[h:], y[h:], 1.0)
        ece_cal, rel_cal = reliability(d[h:], y[h:], tau)
        rows.append({"rm": p.name, "size": p.size, "noise": run.cfg.rm.label_noise if p.noise is None else p.noise,
                     "member": p.member, "n_train": p.n_train, "val_acc": p.val_acc, "tau": tau,
                     "ece": ece_raw, "ece_calibrated": ece_cal})
        bins += [{"rm": p.name, "calibrated": False, **r} for r in rel_raw]
        bins += [{"rm": p.name, "calibrated": True, **r} for r in rel_cal]
    return out, pd.DataFrame(rows, columns=CALIBRATION_COLUMNS), pd.DataFrame(bins, columns=RELIABILITY_COLUMNS)

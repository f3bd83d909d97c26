"""One run: world -> pi0 -> labelled pairs -> proxy RMs -> best-of-n pool -> tables -> fits -> report.

Every built artifact is cached under its content hash (the config sections it depends on), written
atomically, so an interrupted run started again reuses what was finished.
"""
from __future__ import annotations

import dataclasses
import json
import os
import pickle
import platform
import time
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from tqdm.auto import tqdm

from . import __version__, bon, laws
from .config import Config, family_sizes, parse_size
from .labels import label_pairs
from .policy import as_ids, build_lm, n_params, sample_in_batches, train_lm
from .reward import RewardModel, bradley_terry_loss, build_rm, length_normalize, score, train_rm
from .claims import claim_table
from .daa import DAAError
from .daarun import DAA_COLUMNS, daa_runs
from .monitorrun import monitor_stage
from .ensemblerun import (build_ensembles, calibrate, ensemble_bon, ensemble_labellers, ensemble_rl,
                          member_pool_scores)
from .iterated import IteratedProxy
from .active import active_table
from .aif import aif_table
from .lengthstudy import length_tables
from .multiobjective import build_dimension_proxies, multi_tables
from .rl import RLError
from .rlrun import EVAL_VERSION, RL_COLUMNS, Evaluator, rl_settings, run_curve
from .world.toy import GOLD_DIMS, PAD, ToyWorld

RM_COLUMNS = ["rm", "params", "n_train", "seed", "val_loss", "val_acc", "train_s"]
BON_COLUMNS = ["rm", "rm_params", "n_train", "n", "kl_bound", "kl_est", "proxy", "proxy_lo", "proxy_hi",
               "gold", "gold_lo", "gold_hi"] + [f"gold_{d}" for d in GOLD_DIMS] + ["length"]
TILT_COLUMNS = ["rm", "rm_params", "beta", "kl", "proxy", "gold", "gold_lo", "gold_hi", "length"]
FIT_COLUMNS = ["curve", "form", "alpha", "beta", "alpha_lo", "alpha_hi", "beta_lo", "beta_hi", "r2",
               "kl_peak", "gain_peak", "kl_peak_lo", "kl_peak_hi", "gain_peak_lo", "gain_peak_hi", "n_points"]


def default_cache_dir() -> Path:
    return Path(os.environ.get("OVEROPT_CACHE") or Path.home() / ".cache" / "overopt")


class Cache:
    """Content-addressed artifact store: ``<root>/<kind>/<key>.pkl``, written atomically."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, kind: str, key: str) -> Path:
        return self.root / kind / f"{key}.pkl"

    def get(self, kind: str, key: str):
        p = self.path(kind, key)
        if not p.exists():
            return None
        try:
            with open(p, "rb") as f:
                return pickle.load(f)
        except Exception:  # a torn or stale file is rebuilt, not trusted
            return None

    def put(self, kind: str, key: str, obj) -> None:
        p = self.path(kind, key)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(f".tmp{os.getpid()}")
        with open(tmp, "wb") as f:
            pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, p)


class Run:
    """Holds the config, cache, device and timings of one `overopt run`."""

    def __init__(self, cfg: Config, out: Path, quiet: bool = False):
        self.cfg = cfg
        self.out = Path(out)
        self.quiet = quiet
        self.cache = Cache(Path(cfg.run.cache_dir) if cfg.run.cache_dir else default_cache_dir())
        want = cfg.run.device
        self.device = torch.device("cuda" if want == "cuda" or (want == "auto" and torch.cuda.is_available())
                                   else "cpu")
        if cfg.run.threads:
            torch.set_num_threads(cfg.run.threads)
        self.timings: dict[str, dict] = {}

    def log(self, msg: str) -> None:
        if not self.quiet:
            tqdm.write(msg)

    def bar(self, total: int, desc: str):
        return tqdm(total=total, desc=desc, disable=self.quiet, leave=False, dynamic_ncols=True)

    @contextmanager
    def stage(self, name: str):
        t = time.time()
        info = {"cached": False}
        yield info
        info["seconds"] = round(time.time() - t, 2)
        self.timings[name] = info
        self.log(f"[{name}] {'cached' if info['cached'] else 'built'} in {info['seconds']:.1f}s")

    def seed(self, *parts: int) -> int:
        return int(np.random.default_rng([self.cfg.run.seed, *parts]).integers(2 ** 31))


# ---------------------------------------------------------------- stages

def build_world(run: Run):
    """The toy world (cached), or with hf.policy set the Hugging Face world (`world.hf`, rebuilt each run)."""
    if run.cfg.hf.policy:
        from .world.hf import HFWorld
        with run.stage("world") as st:
            st["kind"] = "hf"
            world = HFWorld(run.cfg.hf, run.cfg.world.max_new_tokens, run.cfg.run.seed, run.device, run.cache)
            st.update(prompts=len(world.texts), prompt_tokens=world.prompt_len)
        return world
    key = run.cfg.section_hash("world")
    with run.stage("world") as st:
        world = run.cache.get("world", key)
        st["cached"] = world is not None
        if world is None:
            world = ToyWorld(run.cfg.world, run.cfg.run.seed)
            run.cache.put("world", key, world)
    return world


def _lm(run: Run, world: ToyWorld, p):
    return build_lm(len(world.vocab), p.hidden, p.layers, p.heads,
                    world.prompt_len + run.cfg.world.max_new_tokens + 1, run.seed(10))


def build_pi0(run: Run, world: ToyWorld, policy_cfg=None, name: str = "pi0"):
    """The base policy: a small GPT-NeoX trained on the world's corpus (``policy_cfg`` for another size); in the
    Hugging Face world, the hf.policy checkpoint as it is."""
    if world.kind == "hf":
        from .world.hf import load_causal_lm
        with run.stage(name) as st:
            model = load_causal_lm(run.cfg.hf.policy, run.cfg.hf, run.device)
            world.check_fits(model, "hf.policy")
            st.update(cached=True, params=n_params(model))
        return model.eval()
    p = policy_cfg or run.cfg.policy
    key = run.cfg.section_hash("world", "policy") if policy_cfg is None else \
        run.cfg.section_hash("world", extra=dataclasses.asdict(p))
    model = _lm(run, world, p)
    with run.stage(name) as st:
        state = run.cache.get("pi0", key)
        st["cached"] = state is not None
        if state is None:
            pidx, resp = world.corpus(run.cfg.world.n_corpus, np.random.default_rng([run.cfg.run.seed, 3]))
            resp = resp[:, : run.cfg.world.max_new_tokens]
            prompts = torch.tensor(world.prompt_ids[pidx])
            with run.bar(p.steps, f"{name} training") as b:
                losses = train_lm(model, prompts, torch.tensor(resp), p.steps, p.batch_size, p.lr, run.seed(11), PAD, b)
            state = {"state_dict": model.state_dict(), "final_loss": float(np.mean(losses[-50:]))}
            run.cache.put("pi0", key, state)
        model.load_state_dict(state["state_dict"])
        st["params"] = n_params(model)
        st["final_loss"] = state["final_loss"]
    return model.to(run.device).eval()


def _sample(run: Run, pi0, prompt_idx: np.ndarray, world: ToyWorld, seed: int, desc: str):
    prompts = torch.tensor(world.prompt_ids[prompt_idx], device=run.device)
    with run.bar(len(prompts), desc) as b:
        s = sample_in_batches(pi0, prompts, run.cfg.policy.sample_batch, run.cfg.world.max_new_tokens,
                              world.eos, world.pad, seed, progress=b)
    return s.tokens.cpu().numpy().astype(np.int32), s.logprob.cpu().numpy()


def build_pairs(run: Run, world: ToyWorld, pi0) -> dict:
    """Two pi0 samples for each of n_train + n_val prompts (drawn with repetition), gold-scored.

    The samples are cached; gold is recomputed on load, so a change of the gold section reuses them.

    Validation pairs use prompts that no training pair uses. Gold is normalised to mean 0 and
    unit standard deviation over these pi0 samples (DESIGN.md).
    """
    c = run.cfg
    key = c.section_hash("world", "policy", extra=[c.rm.n_train, c.rm.n_val])
    with run.stage("pairs") as st:
        data = run.cache.get("pairs", key)
        st["cached"] = data is not None
        if data is None:
            rng = np.random.default_rng([c.run.seed, 4])
            prompts = rng.permutation(world.train_prompt_idx)
            n_val_prompts = max(1, len(prompts) // 6)
            val_p, train_p = prompts[:n_val_prompts], prompts[n_val_prompts:]
            pidx = np.concatenate([train_p[rng.integers(len(train_p), size=c.rm.n_train)],
                                   val_p[rng.integers(len(val_p), size=c.rm.n_val)]])
            tok, _ = _sample(run, pi0, np.repeat(pidx, 2), world, run.seed(12), "pair sampling")
            data = {"prompt_idx": pidx, "a": tok[0::2], "b": tok[1::2]}
            run.cache.put("pairs", key, data)
    # Gold is cheap and depends on the gold section only: computed afresh, never cached.
    ga, _ = world.gold(data["prompt_idx"], data["a"], c.gold)
    gb, _ = world.gold(data["prompt_idx"], data["b"], c.gold)
    both = np.concatenate([ga, gb])
    return {**data, "gold_raw_a": ga, "gold_raw_b": gb, "gold_mean": float(both.mean()), "gold_std": float(both.std())}


def rm_specs(cfg: Config) -> list[tuple[str, int]]:
    """(size, n_train) of every proxy: the family at rm.n_train, then the data-size sweep."""
    sizes = family_sizes(cfg)
    specs = [(s, cfg.rm.n_train) for s in sizes]
    sweep_rm = cfg.rm.data_sweep_rm or sizes[len(sizes) // 2]
    specs += [(sweep_rm, n) for n in cfg.rm.data_sizes if n != cfg.rm.n_train]
    return specs


def rm_name(size: str, n_train: int, cfg: Config) -> str:
    return size if n_train == cfg.rm.n_train else f"{size}@{n_train}"


def labelled_pairs(run: Run, world: ToyWorld, pairs_data: dict, noise: float | None = None):
    """(training pairs, validation pairs with true gold labels, (prompts, responses) of pi0 to centre on).

    ``noise``: the label-flip rate of the training pairs (default rm.label_noise)."""
    c = run.cfg
    m, s = pairs_data["gold_mean"], pairs_data["gold_std"]
    n_all = len(pairs_data["prompt_idx"])
    n_train = c.rm.n_train
    labelled = label_pairs(pairs_data["prompt_idx"], pairs_data["a"], pairs_data["b"],
                           (pairs_data["gold_raw_a"] - m) / s, (pairs_data["gold_raw_b"] - m) / s,
                           c.rm.label_noise if noise is None else noise, np.random.default_rng([c.run.seed, 5]))
    train_all, val = labelled.head(n_train), labelled.subset(slice(n_train, n_all))
    # Validation accuracy is against gold: undo any label noise on the validation pairs.
    val_true = label_pairs(val.prompt_idx, val.chosen, val.rejected, val.gold_chosen, val.gold_rejected,
                           0.0, np.random.default_rng(0))
    t = partial(as_ids, device=run.device)
    val_prompts = t(world.prompt_ids[val_true.prompt_idx])
    center = (torch.cat([val_prompts, val_prompts]),
              t(np.concatenate([pairs_data["a"][n_train:], pairs_data["b"][n_train:]])))
    return train_all, val_true, center


def build_proxies(run: Run, world: ToyWorld, pairs_data: dict) -> list[dict]:
    """Train (or load) every proxy; centre each so that pi0's mean score is 0."""
    c = run.cfg
    train_all, val_true, center = labelled_pairs(run, world, pairs_data)
    return [train_proxy(run, world, size, n, train_all, val_true, center, rm_name(size, n, c))
            for size, n in rm_specs(c)]


def proxy_key(cfg: Config, size: str, n: int, noise: float | None = None, member: int = 0, tag: str = "") -> str:
    """Cache key of a proxy: its size, data, label noise, (for ensemble members past the first) seed index and
    ``tag`` (what else labels its pairs, e.g. one gold dimension)."""
    rm_cfg = {k: v for k, v in cfg.to_dict()["rm"].items()
              if k not in ("sizes", "data_sizes", "data_sweep_rm", "length_norm")}  # length_norm: after training
    if noise is not None:
        rm_cfg["label_noise"] = noise
    return cfg.section_hash("world", "gold", "policy",
                            extra=[rm_cfg, size, n] + ([member] if member else []) + ([tag] if tag else []))


def train_proxy(run: Run, world: ToyWorld, size: str, n: int, train_all, val_true, center, name: str,
                noise: float | None = None, member: int = 0, bootstrap: bool = False, tag: str = "") -> dict:
    """One proxy of ``size`` on the first ``n`` training pairs, trained (or loaded) and centred on pi0.

    Member m > 0 of an ensemble differs from member 0 in its seeds (initialisation and data order, as
    Coste et al. 2023) and, with ``bootstrap``, trains on a resample of the n pairs drawn with replacement
    (bagging); member 0 is the family's proxy itself."""
    c = run.cfg
    pi0_prompts, pi0_resp = center
    t = partial(as_ids, device=run.device)
    val_prompts = pi0_prompts[: len(val_true)]  # the centring set is the validation pairs' two sides
    bootstrap = bootstrap and member > 0
    key = proxy_key(c, size, n, noise, member, tag) + ("-bag" if bootstrap else "")
    hidden, layers = size_seed(c, size)
    init_seed = run.seed(20, hidden, layers) if member == 0 else run.seed(20, hidden, layers, 1000 + member)
    rm = new_rm(run, world, size, init_seed)
    with run.stage(f"rm {name}") as st:
        state = run.cache.get("rm", key)
        st["cached"] = state is not None
        rm = rm.to(run.device)
        if state is None:
            tr = train_all.head(n)
            if bootstrap:
                tr = tr.subset(np.random.default_rng([c.run.seed, 22, member]).integers(n, size=n))
            t0 = time.time()
            steps = c.rm.epochs * max(1, n // c.rm.batch_size)
            order_seed = run.seed(21, hidden, layers, n) if member == 0 else run.seed(21, hidden, layers, n, 1000 + member)
            with run.bar(steps, f"rm {name}") as b:
                train_rm(rm, t(world.prompt_ids[tr.prompt_idx]), t(tr.chosen), t(tr.rejected), c.rm.epochs,
                         min(c.rm.batch_size, n), c.rm.lr, c.rm.weight_decay, order_seed, world.pad, b)
            train_s = time.time() - t0
            rm.offset.fill_(float(score(rm, pi0_prompts, pi0_resp, world.pad).mean()))
            rc = torch.tensor(score(rm, val_prompts, t(val_true.chosen), world.pad))
            rr = torch.tensor(score(rm, val_prompts, t(val_true.rejected), world.pad))
            state = {"state_dict": {k: v.cpu() for k, v in rm.state_dict().items()},
                     "val_loss": float(bradley_terry_loss(rc, rr).mean()),
                     "val_acc": float(((rc > rr).float() + 0.5 * (rc == rr).float()).mean()),
                     "train_s": round(train_s, 2)}
            run.cache.put("rm", key, state)
        rm.load_state_dict(state["state_dict"])
        st.update(val_acc=round(state["val_acc"], 4))
        if c.rm.length_norm:  # the same weights, read as a length-normalised reward: new scores downstream
            st["length_coef"] = round(length_normalize(rm, pi0_prompts, pi0_resp, world.pad), 5)
            key = f"{key}-lnorm"
    return {"rm": name, "size": size, "key": key, "params": n_params(rm), "n_train": n,
            "seed": run.cfg.run.seed, "val_loss": state["val_loss"], "val_acc": state["val_acc"],
            "train_s": state["train_s"], "model": rm.eval()}


def size_seed(cfg: Config, size: str) -> tuple[int, int]:
    """Two integers that stand for a proxy size in seeds: (hidden, layers), or a hash of a checkpoint's name."""
    if cfg.hf.policy:
        from .world.hf import name_seed
        return name_seed(size), 0
    return parse_size(size)


def new_rm(run: Run, world, size: str, seed: int) -> RewardModel:
    """An untrained proxy of ``size``: a GPT-NeoX of that shape, or the named hf.proxies checkpoint's base model
    with a fresh scalar head (initialised from ``seed``)."""
    c = run.cfg
    if world.kind == "hf":
        from .world.hf import load_backbone
        path = dict(zip(family_sizes(c), c.hf.proxies))[size]
        backbone = load_backbone(path, c.hf, run.device)
        world.check_fits(backbone, "hf.proxies")
        torch.manual_seed(seed)
        return RewardModel(backbone, backbone.config.hidden_size).eval()
    hidden, layers = parse_size(size)
    return build_rm(len(world.vocab), hidden, layers, world.prompt_len + c.world.max_new_tokens + 1, seed)


def build_pool(run: Run, world: ToyWorld, pi0) -> dict:
    """N pi0 samples (temperature 1, no truncation) for each held-out prompt, with log pi0(y)."""
    c = run.cfg
    key = c.section_hash("world", "policy", extra=[c.bon.pool_size])
    with run.stage("pool") as st:
        pool = run.cache.get("pool", key)
        st["cached"] = pool is not None
        if pool is None:
            pidx = np.repeat(world.eval_prompt_idx, c.bon.pool_size)
            tok, lp = _sample(run, pi0, pidx, world, run.seed(30), "best-of-n pool")
            pool = {"prompt_idx": pidx, "tokens": tok, "logprob": lp, "key": key}
            run.cache.put("pool", key, pool)
    return pool


def score_pool(run: Run, world: ToyWorld, pool: dict, proxies: list[dict]) -> dict[str, np.ndarray]:
    """Proxy scores of every pool sample, cached per (proxy, pool)."""
    out = {}
    prompts = torch.tensor(world.prompt_ids[pool["prompt_idx"]], device=run.device)
    resp = torch.tensor(pool["tokens"].astype(np.int64), device=run.device)
    for p in proxies:
        key = f"{p['key']}-{pool['key']}"
        with run.stage(f"score {p['rm']}") as st:
            s = run.cache.get("scores", key)
            st["cached"] = s is not None
            if s is None:
                with run.bar(len(resp), f"score {p['rm']}") as b:
                    s = score(p["model"], prompts, resp, world.pad, progress=b)
                run.cache.put("scores", key, s)
        out[p["rm"]] = s
    return out


# ---------------------------------------------------------------- tables

def bon_table(run: Run, world: ToyWorld, pool: dict, proxies: list[dict], scores: dict, pool_gold) -> tuple:
    """bon.csv rows and, per proxy, the bootstrap replicates of the gold curve (for fit intervals).

    ``pool_gold``: (normalised gold, dimensions) of every pool sample, from `ToyWorld.gold`."""
    c = run.cfg
    P, N = len(world.eval_prompt_idx), c.bon.pool_size
    ns = bon.default_ns(N)
    gold = pool_gold[0].reshape(P, N)
    dims = {k: v.reshape(P, N).astype(float) for k, v in pool_gold[1].items()}
    logprob = pool["logprob"].reshape(P, N)
    q = [(1 - c.fit.ci) / 2 * 100, (1 + c.fit.ci) / 2 * 100]
    rows, boots = [], {}
    for p in proxies:
        proxy = scores[p["rm"]].reshape(P, N)
        per_gold = bon.best_of_n_per_prompt(proxy, gold, ns)
        per_proxy = bon.best_of_n_per_prompt(proxy, proxy, ns)
        gain_gold = per_gold - per_gold[:, :1]   # n = 1 is pi0 itself
        gain_proxy = per_proxy - per_proxy[:, :1]
        bg = bon.bootstrap_rows(gain_gold, c.bon.n_boot, run.seed(40))
        bp = bon.bootstrap_rows(gain_proxy, c.bon.n_boot, run.seed(40))
        boots[p["rm"]] = bg
        kl_est = bon.kl_estimate_pool(proxy, logprob, ns)
        dim_gain = {d: bon.best_of_n(proxy, dims[d], ns) - dims[d].mean() for d in GOLD_DIMS}
        length = bon.best_of_n(proxy, dims["n_words"], ns)
        for j, n in enumerate(ns):
            rows.append({"rm": p["rm"], "rm_params": p["params"], "n_train": p["n_train"], "n": n,
                         "kl_bound": float(bon.kl_bound(n)), "kl_est": float(kl_est[j]),
                         "proxy": gain_proxy[:, j].mean(), "proxy_lo": np.percentile(bp[:, j], q[0]),
                         "proxy_hi": np.percentile(bp[:, j], q[1]), "gold": gain_gold[:, j].mean(),
                         "gold_lo": np.percentile(bg[:, j], q[0]), "gold_hi": np.percentile(bg[:, j], q[1]),
                         **{f"gold_{d}": dim_gain[d][j] for d in GOLD_DIMS}, "length": length[j]})
    return pd.DataFrame(rows, columns=BON_COLUMNS), boots


def tilt_table(run: Run, world: ToyWorld, proxies: list[dict], scores: dict, pool_gold) -> pd.DataFrame:
    """tilt.csv: per proxy, the KL-regularised optimum pi0 exp(r / beta) / Z estimated on the best-of-n pool
    (`bon.tilt_per_prompt`): the gold a KL-penalised optimizer converges to at each beta, and the most any
    optimizer gets at that KL within pi0's support. RL curves are read against it."""
    c = run.cfg
    P, N = len(world.eval_prompt_idx), c.bon.pool_size
    gold = pool_gold[0].reshape(P, N)
    length = pool_gold[1]["n_words"].reshape(P, N).astype(float)
    q = [(1 - c.fit.ci) / 2 * 100, (1 + c.fit.ci) / 2 * 100]
    rows = []
    for p in proxies:
        proxy = scores[p["rm"]].reshape(P, N)
        betas = bon.tilt_betas(proxy)
        kl, w = bon.tilt_weights(proxy, betas)  # one set of weights for gold, proxy and length
        g, pr, ln = (np.einsum("pbn,pn->pb", w, v) for v in (gold, proxy, length))
        gain = g - gold.mean(1, keepdims=True)
        bg = bon.bootstrap_rows(gain, c.bon.n_boot, run.seed(41))
        for j, b in enumerate(betas):
            rows.append({"rm": p["rm"], "rm_params": p["params"], "beta": b, "kl": kl[:, j].mean(),
                         "proxy": (pr[:, j] - proxy.mean(1)).mean(), "gold": gain[:, j].mean(),
                         "gold_lo": np.percentile(bg[:, j], q[0]), "gold_hi": np.percentile(bg[:, j], q[1]),
                         "length": ln[:, j].mean()})
    return pd.DataFrame(rows, columns=TILT_COLUMNS)


def fit_tables(run: Run, bon_df: pd.DataFrame, boots: dict, rl_df: pd.DataFrame | None = None,
               rl_boots: dict | None = None, daa_df: pd.DataFrame | None = None
               ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """fits.csv (chosen and rejected forms per curve), scaling.csv, extrapolation.csv."""
    c = run.cfg
    fits, extrap = [], []
    for rm, g in bon_df.groupby("rm", sort=False):
        kl, gold = g["kl_bound"].to_numpy(), g["gold"].to_numpy()
        for form in ("bon", *laws.ALTERNATIVES["bon"]):
            r = laws.fit(kl, gold, form, boot_gains=boots.get(rm), ci=c.fit.ci)
            fits.append({"curve": f"bon/gold/{rm}", **r.to_dict()})
        r = laws.fit(kl, g["proxy"].to_numpy(), "bon", ci=c.fit.ci, n_boot=c.bon.n_boot)
        fits.append({"curve": f"bon/proxy/{rm}", **r.to_dict()})
        n = g["n"].to_numpy()
        N = int(n.max())
        early = n <= max(4, int(c.fit.extrap_frac * N))
        if early.sum() >= 3:
            r = laws.fit(kl[early], gold[early], "bon", ci=c.fit.ci, n_boot=c.bon.n_boot)
            pred = float(r.predict(kl[-1]))
            extrap.append({"rm": rm, "n_fit_max": int(n[early].max()), "n_target": N, "kl_target": kl[-1],
                           "gold_target": gold[-1], "gold_predicted": pred, "abs_error": abs(pred - gold[-1]),
                           "r2_early": r.r2})
    rl_curves = {}
    if rl_df is not None and len(rl_df):
        for curve, g in rl_df.groupby("curve", sort=False):
            kl, gold = g["kl"].to_numpy(), g["gold"].to_numpy()
            if "/" not in curve:  # the family; sweep curves are named rm/kl<coef>
                rl_curves[curve] = (kl, gold)
            for form in ("rl", *laws.ALTERNATIVES["rl"], "bon"):
                r = laws.fit(kl, gold, form, boot_gains=(rl_boots or {}).get(curve), ci=c.fit.ci)
                fits.append({"curve": f"rl/gold/{curve}", **r.to_dict()})
        if len(rl_curves) > 1:
            alpha, betas, r2 = laws.fit_shared_alpha(rl_curves, "rl")
            for rm, b in betas.items():
                kp, gp = laws.peak("rl", alpha, b)
                fits.append({"curve": f"rl/gold/{rm}", "form": "rl_shared_alpha", "alpha": alpha, "beta": b,
                             "r2": r2[rm], "kl_peak": kp, "gain_peak": gp, "n_points": len(rl_curves[rm][0])})
    if daa_df is not None and len(daa_df):
        # Rafailov et al.: one curve per loss and policy size, pooling every beta and checkpoint.
        for (loss, policy), g in daa_df.groupby(["loss", "policy"], sort=False):
            for form in ("rl", "quad_kl"):
                r = laws.fit(g["kl"].to_numpy(), g["gold"].to_numpy(), form, ci=c.fit.ci, n_boot=c.bon.n_boot)
                fits.append({"curve": f"daa/gold/{loss}/pi0-{policy}", **r.to_dict()})
    fits_df = pd.DataFrame(fits).reindex(columns=FIT_COLUMNS)
    family = bon_df[bon_df["n_train"] == c.rm.n_train]
    params = family.groupby("rm", sort=False)["rm_params"].first()
    chosen = fits_df[fits_df["form"] == "bon"].set_index("curve")
    scal = []
    for coef in ("alpha", "beta", "kl_peak", "gain_peak"):
        vals = [chosen.loc[f"bon/gold/{rm}", coef] for rm in params.index]
        scal.append(vars(laws.fit_scaling(params.to_numpy(), vals, f"{coef}_bon")))
    at_n = family[family["n"] == family["n"].max()].set_index("rm")["gold"]
    scal.append(vars(laws.fit_scaling(params.to_numpy(), at_n[params.index].to_numpy(), "gold_at_N")))
    for form, name in (("rl", "beta_rl"), ("rl_shared_alpha", "beta_rl_shared_alpha")):
        rows = fits_df[(fits_df["form"] == form) & fits_df["curve"].str.startswith("rl/gold/")]
        rows = rows[rows["curve"].str[len("rl/gold/"):].isin(params.index)]
        if len(rows) > 1:
            rms = rows["curve"].str[len("rl/gold/"):]
            scal.append(vars(laws.fit_scaling(params[rms].to_numpy(), rows["beta"].to_numpy(), name)))
    return fits_df, pd.DataFrame(scal), pd.DataFrame(extrap)


def sample_table(run: Run, world: ToyWorld, pool: dict, proxies: list[dict], scores: dict, pool_gold) -> pd.DataFrame:
    """pi0's text beside the best-of-N choice of the smallest and largest proxy, for a few prompts."""
    c = run.cfg
    P, N = len(world.eval_prompt_idx), c.bon.pool_size
    family = [p for p in proxies if p["n_train"] == c.rm.n_train]
    chosen = [family[0], family[-1]] if len(family) > 1 else family
    gold = pool_gold[0].reshape(P, N)
    toks = pool["tokens"].reshape(P, N, -1)
    rows = []
    for i in np.random.default_rng([c.run.seed, 50]).choice(P, size=min(c.bon.n_examples, P), replace=False):
        prompt = world.prompt_text(world.eval_prompt_idx[i])
        rows.append({"prompt": prompt, "policy": "pi0", "rm": "", "text": world.decode(toks[i, 0]),
                     "gold": gold[i, 0], "proxy": np.nan})
        for p in chosen:
            j = int(np.argmax(scores[p["rm"]].reshape(P, N)[i]))
            rows.append({"prompt": prompt, "policy": f"best-of-{N}", "rm": p["rm"],
                         "text": world.decode(toks[i, j]), "gold": gold[i, j],
                         "proxy": scores[p["rm"]].reshape(P, N)[i, j]})
    return pd.DataFrame(rows)


def rl_curves(run: Run, world: ToyWorld, pi0, pool: dict, proxies: list[dict], scores: dict, gold_norm,
              pairs_data: dict):
    """RL against every proxy of the family, the KL-penalty sweep and the policy-size comparison:
    rl.csv rows, each curve's bootstrap replicates and each family curve's evaluation responses."""
    c = run.cfg
    if not c.rl.enabled:
        return None, None, {}
    evaluator = Evaluator(run, world, pi0, pool["prompt_idx"], pool["tokens"], scores, gold_norm)
    family = [p for p in proxies if p["n_train"] == c.rm.n_train]
    jobs = [(p, p["rm"], rl_settings(c), pi0, evaluator) for p in family]
    sweep = next(p for p in family if p["rm"] == (c.rl.sweep_rm or family[0]["rm"]))
    jobs += [(sweep, f"{sweep['rm']}/kl{coef:g}", replace(rl_settings(c), kl_coef=float(coef), kl_target=0.0), pi0,
              evaluator) for coef in c.rl.kl_sweep]
    for spec in c.rl.policy_sizes:
        policy, ev = _other_policy(run, world, spec, sweep, gold_norm)
        jobs.append((sweep, f"{sweep['rm']}/pi0-{spec}", rl_settings(c), policy, ev))
    if c.rl.iterated_rounds >= 2:
        jobs.append((sweep, f"{sweep['rm']}/iter{c.rl.iterated_rounds}", rl_settings(c), pi0, evaluator))
    # A curve depends on the shared RL settings and its own variant, not on which other curves run.
    shared = {k: v for k, v in c.to_dict()["rl"].items()
              if k not in ("enabled", "kl_sweep", "sweep_rm", "policy_sizes", "iterated_rounds", "iterated_pairs")}
    rows, boots, samples = [], {}, {}
    for p, curve, settings, ref, ev in jobs:
        own = [c.rl.iterated_rounds, c.rl.iterated_pairs] if "/iter" in curve else []
        key = c.section_hash("world", "gold", "policy", extra=[shared, own, p["key"], pool["key"], curve, EVAL_VERSION])
        source = None
        if "/iter" in curve:
            train, _, center = labelled_pairs(run, world, pairs_data)
            hidden, layers = parse_size(p["size"])
            source = IteratedProxy(run, world, p, hidden, layers, train, center, gold_norm, c.rl.iterated_rounds,
                                   c.rl.steps, c.rl.iterated_pairs or c.rm.n_train // c.rl.iterated_rounds)
        with run.stage(f"rl {curve}") as st:
            st["cached"] = run.cache.get("rl", key) is not None
            try:
                res = run_curve(run, world, ref, p, ev, key, f"rl {curve}", settings, curve, source)
            except RLError as e:  # every point evaluated so far stays written
                write_table(pd.DataFrame(rows + getattr(e, "rows", [])).reindex(columns=RL_COLUMNS), run.out, "rl")
                raise
        rows += res["rows"]
        boots[curve] = res["boot"]
        if "/" not in curve:
            samples[curve] = res["samples"]
    return pd.DataFrame(rows).reindex(columns=RL_COLUMNS), boots, samples


def _other_policy(run: Run, world: ToyWorld, spec: str, proxy: dict | None, gold_norm, n_prompts: int | None = None,
                  n_samples: int | None = None):
    """A pi0 of another size (trained like pi0) and an evaluator whose baseline is its own samples."""
    c = run.cfg
    hidden, layers = parse_size(spec)
    pcfg = replace(c.policy, hidden=hidden, layers=layers, heads=max(1, hidden // 16))
    policy = build_pi0(run, world, pcfg, name=f"pi0-{spec}")
    n = 32  # baseline samples per evaluation prompt
    pidx = np.repeat(world.eval_prompt_idx[: n_prompts or c.rl.eval_prompts], n)
    tok, _ = _sample(run, policy, pidx, world, run.seed(64, hidden, layers), f"pi0-{spec} baseline")
    base = {}
    if proxy is not None:
        base[proxy["rm"]] = score(proxy["model"], torch.tensor(world.prompt_ids[pidx], device=run.device),
                                  torch.tensor(tok.astype(np.int64), device=run.device), world.pad)
    return policy, Evaluator(run, world, policy, pidx, tok, base, gold_norm, n_prompts, n_samples)


def ensemble_stage(run: Run, world: ToyWorld, pi0, pool: dict, pairs: dict, proxies: list[dict], pool_gold,
                   gold_norm) -> tuple[pd.DataFrame | None, pd.DataFrame | None, dict]:
    """calibration.csv and reliability.csv for every proxy; with ensemble.enabled, ensembles.csv and
    ensemble_rl.csv (`ensemblerun`), and each ensemble objective as a labeller for direct alignment.
    Each table is written as soon as it is complete."""
    c = run.cfg
    ensembles = build_ensembles(run, world, pairs) if c.ensemble.enabled else []
    _, val_true, _ = labelled_pairs(run, world, pairs)
    with run.stage("calibration"):
        members = [p for e in ensembles for p in e["members"] if p["key"] not in {q["key"] for q in proxies}]
        cal, rel = calibrate(run, world, proxies + members, val_true)
        for e in ensembles:  # member 0 at the run's noise is a family proxy: share its temperature
            for m in e["members"]:
                m.setdefault("tau", next((p["tau"] for p in proxies if p["key"] == m["key"]), 1.0))
        write_table(cal, run.out, "calibration")
        write_table(rel, run.out, "reliability")
    if not ensembles:
        for name in ("ensembles", "ensemble_rl"):
            write_or_drop(None, run.out, name)
        return None, None, {}
    with run.stage("ensemble bon"):
        scores = {e["name"]: member_pool_scores(run, world, pool, e) for e in ensembles}
        ens_bon = ensemble_bon(run, world, ensembles, scores, pool_gold)
        write_table(ens_bon, run.out, "ensembles")
    ens_rl = ensemble_rl(run, world, pi0, pool, ensembles, scores, gold_norm)
    write_or_drop(ens_rl, run.out, "ensemble_rl")
    return ens_bon, ens_rl, ensemble_labellers(run, ensembles)


# ---------------------------------------------------------------- driver

def write_table(df: pd.DataFrame, out: Path, name: str) -> None:
    tmp = out / f".{name}.csv.tmp"
    df.to_csv(tmp, index=False)
    os.replace(tmp, out / f"{name}.csv")
    try:
        import pyarrow  # noqa: F401
        df.to_parquet(out / f"{name}.parquet", index=False)
    except ImportError:
        pass


def write_or_drop(df: pd.DataFrame | None, out: Path, name: str) -> None:
    """Write a stage's table, or remove one an earlier run with that stage on left behind (it would
    otherwise be reported as this run's)."""
    if df is not None:
        write_table(df, out, name)
        return
    for stale in (out / f"{name}.csv", out / f"{name}.parquet"):
        stale.unlink(missing_ok=True)


def write_manifest(run: Run, status: str, started: float) -> None:
    m = {"overopt": __version__, "python": platform.python_version(), "torch": torch.__version__,
         "numpy": np.__version__, "platform": platform.platform(), "device": str(run.device),
         "threads": torch.get_num_threads(), "seed": run.cfg.run.seed, "config_hash": run.cfg.hash,
         "status": status, "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
         "wall_s": round(time.time() - started, 2), "stages": run.timings}
    if torch.cuda.is_available() and run.device.type == "cuda":
        m["peak_gpu_mem_mb"] = round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)
    try:
        import resource
        m["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    except ImportError:
        pass
    (run.out / "manifest.json").write_text(json.dumps(m, indent=2))


def run_experiment(cfg: Config, out: str | Path, quiet: bool = False) -> Path:
    """Run the whole pipeline into ``out``; returns the output directory."""
    from .report import write_report

    out = Path(out)
    if cfg.run.track:  # a missing backend is said now, not after the run
        from .tracking import require
        for b in cfg.run.track:
            require(b)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    run = Run(cfg, out, quiet)
    started = time.time()
    write_manifest(run, "running", started)
    torch.manual_seed(cfg.run.seed)
    world = build_world(run)
    pi0 = build_pi0(run, world)
    pairs = build_pairs(run, world, pi0)
    gold_norm = (pairs["gold_mean"], pairs["gold_std"])
    proxies = build_proxies(run, world, pairs)
    write_table(pd.DataFrame([{k: p[k] for k in RM_COLUMNS} for p in proxies]), out, "rm")
    pool = build_pool(run, world, pi0)
    scores = score_pool(run, world, pool, proxies)
    pool_gold = world.gold(pool["prompt_idx"], pool["tokens"], cfg.gold, gold_norm)
    with run.stage("bon table"):  # written before RL, so an interrupted RL stage loses nothing of best-of-n
        bon_df, boots = bon_table(run, world, pool, proxies, scores, pool_gold)
        write_table(bon_df, out, "bon")
        write_table(tilt_table(run, world, proxies, scores, pool_gold), out, "tilt")
    with run.stage("length"):
        length_df, length_bon = length_tables(run, world, proxies, pool, scores, pool_gold, gold_norm)
        write_table(length_df, out, "length")
        write_table(length_bon, out, "length_bon")
    rl_df, rl_boots, rl_samples = rl_curves(run, world, pi0, pool, proxies, scores, gold_norm, pairs)
    write_or_drop(rl_df, out, "rl")
    ens_bon, ens_rl, labellers = ensemble_stage(run, world, pi0, pool, pairs, proxies, pool_gold, gold_norm)
    mon_df = trace = None
    if cfg.monitor.enabled and rl_df is not None:
        trace, mon_df = monitor_stage(run, world, pairs, proxies, rl_df, rl_samples, gold_norm)
    write_or_drop(trace, out, "monitor_trace")
    write_or_drop(mon_df, out, "monitor")
    if cfg.multi.enabled:
        dim_proxies = build_dimension_proxies(run, world, pairs)
        with run.stage("multi-objective"):
            for df, name in zip(multi_tables(run, world, pi0, pool, proxies, scores, pool_gold, gold_norm,
                                             dim_proxies), ("multi", "pareto", "collapse")):
                write_table(df, out, name)
    else:
        for name in ("multi", "pareto", "collapse"):
            write_or_drop(None, out, name)
    aif_df = None
    if cfg.aif.enabled:
        aif_df = aif_table(run, world, pairs, proxies, pool, scores, pool_gold, gold_norm)
    write_or_drop(aif_df, out, "aif")
    active_df = None
    if cfg.active.enabled:
        active_df = active_table(run, world, pairs, pool, pool_gold)
    write_or_drop(active_df, out, "active")
    try:
        daa_df, _, daa_sum = daa_runs(run, world, pi0, pool, pairs, gold_norm, proxies, labellers)
    except DAAError as e:  # every run finished so far stays written
        write_table(pd.DataFrame(getattr(e, "rows", [])).reindex(columns=DAA_COLUMNS), out, "daa")
        raise
    write_or_drop(daa_df, out, "daa")
    write_or_drop(daa_sum, out, "daa_summary")
    with run.stage("tables"):
        fits_df, scal_df, extrap_df = fit_tables(run, bon_df, boots, rl_df, rl_boots, daa_df)
        write_table(fits_df, out, "fits")
        write_table(scal_df, out, "scaling")
        write_table(extrap_df, out, "extrapolation")
        write_table(claim_table(bon_df, rl_df, fits_df, daa_sum, ens_bon, ens_rl, mon_df), out, "claims")
        # how well a partial RL curve forecasts its gold peak (issue 6): every family curve, every prefix
        family_rl = None if rl_df is None else {c: (g["kl"].to_numpy(), g["gold"].to_numpy())
                                                for c, g in rl_df.groupby("curve", sort=False) if "/" not in c}
        write_or_drop(laws.forecast_table(family_rl, "rl", n_boot=cfg.bon.n_boot // 2, ci=cfg.fit.ci)
                      if family_rl else None, out, "forecast")
        write_table(sample_table(run, world, pool, proxies, scores, pool_gold), out, "samples")
    write_manifest(run, "complete", started)  # every table is written; the report only reads them
    with run.stage("report"):
        write_report(out)
    if cfg.run.track:
        from .tracking import track
        with run.stage("tracking") as st:
            st.update(track(out, cfg.run.track, config=cfg.to_dict(), wandb_mode=cfg.run.wandb_mode,
                            wandb_project=cfg.run.wandb_project))
    write_manifest(run, "complete", started)
    return out


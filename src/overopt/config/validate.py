"""Range checks that types alone cannot express, one function per part of the config; each failure is one
`ConfigError` naming the key. Also the parsers of the config's small languages (sizes, per-size learning rates,
AI labellers, proxy names).
"""
from __future__ import annotations

import math
import os
from pathlib import Path

from .schema import GOLD_DIMS, Config, ConfigError, active_dims


def parse_size(spec: str, key: str = "rm.sizes") -> tuple[int, int]:
    """'32x2' -> (hidden=32, layers=2)."""
    try:
        h, l = (int(x) for x in str(spec).lower().split("x"))
    except ValueError:
        raise ConfigError(f"config key '{key}' entry {spec!r} must look like HIDDENxLAYERS, e.g. 32x2")
    if h < 2 or l < 1 or h % 2:
        raise ConfigError(f"config key '{key}' entry {spec!r}: hidden must be even >= 2, layers >= 1")
    return h, l


def size_lrs(rm) -> dict[tuple[int, int], float]:
    """rm.lrs as {(hidden, layers): learning rate}; raises ConfigError naming rm.lrs."""
    out = {}
    for spec in rm.lrs:
        size, _, lr = str(spec).partition("=")
        try:
            rate = float(lr)
        except ValueError:
            rate = 0.0
        if not 0 < rate < math.inf:
            raise ConfigError(f"config key 'rm.lrs' entry {spec!r} must look like SIZE=LR with a finite LR > 0, e.g. 6x1=8e-3")
        hw = parse_size(size, "rm.lrs")
        if hw in out:
            raise ConfigError(f"config key 'rm.lrs' names {size} twice")
        out[hw] = rate
    return out


def rm_lr(rm, hidden: int, layers: int) -> float:
    """A toy-world proxy's learning rate: its own in rm.lrs, else rm.lr scaled down above rm.lr_width."""
    return size_lrs(rm).get((hidden, layers)) or width_lr(rm.lr, rm.lr_width, hidden)


def width_lr(lr: float, base_width: int, width: int) -> float:
    """Adam's learning rate for a proxy of ``width``: lr x base_width / width when wider than base_width (muP's
    1/width for hidden weights, Yang et al. 2022, Tensor Programs V); base_width 0 = lr at every width."""
    return lr * min(1.0, base_width / width) if base_width else lr


def parse_labeller(spec: str, rm_sizes, key: str = "aif.labellers") -> tuple:
    """'rm:96x3' -> ("rm", "96x3"); 'length:0.05' -> ("length", 0.05); 'dim:sentiment:3' -> ("dim", "sentiment", 3.0).
    Raises ConfigError naming the key."""
    parts = str(spec).split(":")
    try:
        if parts[0] == "rm" and len(parts) == 2 and parts[1] in rm_sizes:
            return ("rm", parts[1])
        if parts[0] == "length" and len(parts) == 2:
            return ("length", float(parts[1]))
        if parts[0] == "dim" and len(parts) == 3 and parts[1] in GOLD_DIMS and float(parts[2]) >= 0:
            return ("dim", parts[1], float(parts[2]))
    except ValueError:
        pass
    raise ConfigError(f"config key '{key}' entry {spec!r} must be rm:SIZE (one of rm.sizes), length:B or "
                      f"dim:NAME:F (NAME one of {', '.join(GOLD_DIMS)}, F >= 0)")


def proxy_names(paths) -> list[str]:
    """A short unique name per proxy checkpoint: its folder name, prefixed with its parent's where two folder
    names coincide. Never a '/': the tables mark a curve's variants with one (16x1/kl0.1)."""
    parts = [Path(str(p).rstrip("/")).parts or (str(p),) for p in paths]
    names = [q[-1] for q in parts]
    return [n if names.count(n) == 1 else "-".join(q[-2:]) for n, q in zip(names, parts)]


def family_sizes(cfg: Config) -> list[str]:
    """The proxy family: rm.sizes (HIDDENxLAYERS), or in the Hugging Face world the names of hf.proxies."""
    if cfg.hf.policy:
        return proxy_names(cfg.hf.proxies)
    return list(cfg.rm.sizes)


def validate(cfg: Config) -> Config:
    """Every range check, in the order of the config's sections."""
    def need(ok: bool, key: str, msg: str):
        if not ok:
            raise ConfigError(f"config key '{key}' {msg}")

    names = _core(cfg, need)
    _rl(cfg, need, names)
    _grpo(cfg, need, names)
    _daa(cfg, need, names)
    _studies(cfg, need, names)
    held_out = ("hf.eval_prompts", cfg.hf.eval_prompts) if cfg.hf.policy else ("world.eval_prompts", cfg.world.eval_prompts)
    need(cfg.rl.eval_prompts <= held_out[1], "rl.eval_prompts", f"must be <= {held_out[0]}")
    need(0 < cfg.fit.extrap_frac < 1, "fit.extrap_frac", "must be in (0, 1)")
    need(0.5 <= cfg.fit.ci < 1, "fit.ci", "must be in [0.5, 1)")
    return cfg


def _core(cfg: Config, need) -> list[str]:
    """run, world, policy, the proxy family, rm, gold and bon; returns the family's names."""
    need(cfg.run.device in ("auto", "cpu", "cuda"), "run.device", "must be auto, cpu or cuda")
    need(0 <= cfg.run.seed < 2 ** 32, "run.seed", "must be in [0, 2^32)")
    need(cfg.run.threads >= 0, "run.threads", "must be >= 0")
    need(cfg.run.workers >= 0, "run.workers", "must be >= 0")
    for b in cfg.run.track:
        need(b in ("tensorboard", "wandb"), "run.track", f"entries must be tensorboard or wandb, got {b!r}")
    need(cfg.run.wandb_mode in ("offline", "online", "disabled"), "run.wandb_mode", "must be offline, online or disabled")
    need(cfg.world.n_names >= 1, "world.n_names", "must be >= 1")
    need(cfg.world.n_corpus >= 100, "world.n_corpus", "must be >= 100")
    need(cfg.world.n_bigram >= 100, "world.n_bigram", "must be >= 100")
    need(8 <= cfg.world.max_new_tokens <= 256, "world.max_new_tokens", "must be in [8, 256]")
    need(cfg.world.eval_prompts >= 2, "world.eval_prompts", "must be >= 2")
    need(cfg.hf.policy or cfg.world.eval_prompts <= 10 * 8 * cfg.world.n_names // 2, "world.eval_prompts",
         "must be at most half of the prompts (10 x 8 x world.n_names)")
    for k in ("hidden", "layers", "heads", "steps", "batch_size", "sample_batch"):
        need(getattr(cfg.policy, k) >= 1, f"policy.{k}", "must be >= 1")
    need(cfg.policy.hidden % cfg.policy.heads == 0, "policy.heads", "must divide policy.hidden")
    need(cfg.policy.lr > 0, "policy.lr", "must be > 0")
    h = cfg.hf
    if h.policy:
        _validate_hf(cfg, need)
    else:
        need(len(cfg.rm.sizes) >= 1, "rm.sizes", "must list at least one size")
        sizes = [parse_size(s) for s in cfg.rm.sizes]
        need(len(set(sizes)) == len(sizes), "rm.sizes", "has a repeated size")
    names = family_sizes(cfg)
    need(cfg.rm.n_train >= 2, "rm.n_train", "must be >= 2")
    need(cfg.rm.n_val >= 2, "rm.n_val", "must be >= 2")
    need(cfg.rm.epochs >= 1, "rm.epochs", "must be >= 1")
    need(cfg.rm.batch_size >= 1, "rm.batch_size", "must be >= 1")
    need(cfg.rm.lr > 0, "rm.lr", "must be > 0")
    need(cfg.rm.lr_width >= 0, "rm.lr_width", "must be >= 0 (0: no width scaling)")
    size_lrs(cfg.rm)
    need(0.0 <= cfg.rm.label_noise < 0.5, "rm.label_noise", "must be in [0, 0.5)")
    need(isinstance(cfg.rm.draws, int) and cfg.rm.draws >= 1, "rm.draws", f"must be an integer >= 1, got {cfg.rm.draws!r}")
    need(isinstance(cfg.rm.pretrain_steps, int) and cfg.rm.pretrain_steps >= 0, "rm.pretrain_steps",
         f"must be an integer >= 0, got {cfg.rm.pretrain_steps!r}")
    need(not (cfg.hf.policy and cfg.rm.pretrain_steps), "rm.pretrain_steps",
         "is for the toy world: hf.proxies are checkpoints, pretrained already")
    for n in cfg.rm.data_sizes:
        need(isinstance(n, int) and 2 <= n, "rm.data_sizes", f"entries must be integers >= 2, got {n!r}")
        need(n <= cfg.rm.n_train, "rm.data_sizes", f"entry {n} exceeds rm.n_train={cfg.rm.n_train} (subsets are nested)")
    if cfg.rm.data_sweep_rm:
        need(cfg.rm.data_sweep_rm in names, "rm.data_sweep_rm", "must be one of rm.sizes (hf.proxies' names)")
    need(cfg.gold.length_target > 0, "gold.length_target", "must be > 0")
    need(0 <= cfg.gold.naturalness_decay <= 10, "gold.naturalness_decay", "must be in [0, 10]")
    for d in GOLD_DIMS:  # beyond this one dimension drowns the others in float rounding: every gain reads 0
        need(abs(getattr(cfg.gold, f"w_{d}")) <= 1e6, f"gold.w_{d}", "must be within +-1e6")
    need(cfg.bon.pool_size >= 4, "bon.pool_size", "must be >= 4")
    need(cfg.bon.n_boot >= 10, "bon.n_boot", "must be >= 10")
    need(cfg.bon.n_examples >= 0, "bon.n_examples", "must be >= 0")
    if not cfg.hf.policy:
        _fits_memory(cfg, need)
    return names


def _fits_memory(cfg: Config, need) -> None:
    """The largest arrays the toy world allocates (token ids of the corpus, the pairs, the pool; 8 bytes a token),
    each within the machine's memory: a size that cannot be allocated is named now, not as a traceback later."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not a POSIX system: no check
        return
    T = cfg.world.max_new_tokens + 20
    for key, rows in (("world.n_corpus", cfg.world.n_corpus), ("world.n_bigram", cfg.world.n_bigram),
                      ("rm.n_train", 2 * (cfg.rm.n_train + cfg.rm.n_val)),
                      ("bon.pool_size", cfg.bon.pool_size * cfg.world.eval_prompts)):
        need(rows * T * 8 <= total, key, f"needs about {rows * T * 8 / 2 ** 30:.3g} GiB for its token ids, more than "
                                          f"this machine's {total / 2 ** 30:.3g} GiB")


def _rl(cfg: Config, need, names: list[str]) -> None:
    """rl."""
    need(cfg.rl.algo in ("rloo", "ppo", "grpo"), "rl.algo", "must be rloo, ppo or grpo")
    for k in ("steps", "prompts_per_step", "eval_points", "eval_prompts", "eval_samples", "epochs", "minibatches",
              "kl_horizon"):
        need(getattr(cfg.rl, k) >= 1, f"rl.{k}", "must be >= 1")
    need(cfg.rl.k >= (1 if cfg.rl.algo == "ppo" else 2), "rl.k", "must be >= 2 for rloo and grpo (>= 1 for ppo)")
    need(cfg.rl.lr > 0, "rl.lr", "must be > 0")
    need(cfg.rl.kl_coef >= 0, "rl.kl_coef", "must be >= 0")
    need(cfg.rl.kl_target >= 0, "rl.kl_target", "must be >= 0")
    need(cfg.rl.kl_target == 0 or cfg.rl.kl_coef > 0, "rl.kl_coef", "must be > 0 when rl.kl_target is set")
    for v in cfg.rl.kl_sweep:
        need(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0, "rl.kl_sweep",
             f"entries must be numbers >= 0, got {v!r}")
    need(cfg.rl.iterated_rounds == 0 or 2 <= cfg.rl.iterated_rounds <= cfg.rl.steps, "rl.iterated_rounds",
         "must be 0 (off) or between 2 and rl.steps")
    need(cfg.rl.iterated_pairs >= 0, "rl.iterated_pairs", "must be >= 0")
    for spec in cfg.rl.policy_sizes:
        need(parse_size(spec, "rl.policy_sizes") != (cfg.policy.hidden, cfg.policy.layers), "rl.policy_sizes",
             f"entry {spec} is pi0's own size")
    if cfg.rl.sweep_rm:
        need(cfg.rl.sweep_rm in names, "rl.sweep_rm", "must be one of rm.sizes (hf.proxies' names)")
    need(cfg.rl.eval_spacing > 0, "rl.eval_spacing", "must be > 0")


GRPO_SCALES, GRPO_LEVELS = ("group", "batch", "none"), ("token", "sequence")
GRPO_LOSSES = ("grpo", "bnpo", "dapo", "dr_grpo")
GRPO_CHOICES = {"scale_rewards": GRPO_SCALES, "loss_type": GRPO_LOSSES, "importance_sampling_level": GRPO_LEVELS}
GRPO_NUMBERS = ("beta", "epsilon", "epsilon_high", "kl_coef")
GRPO_FLAGS = {"true": True, "false": False}  # use_bias_correction_kl's values in a variant
GRPO_VARIANT_KEYS = (*GRPO_NUMBERS, *GRPO_CHOICES, "use_bias_correction_kl")


def _grpo_value(name: str, value) -> str | None:
    """Why ``value`` is no good for GRPO option ``name`` (None when it is)."""
    if name in GRPO_CHOICES:
        return None if value in GRPO_CHOICES[name] else f"must be one of {', '.join(GRPO_CHOICES[name])}"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "must be a finite number"
    if name == "epsilon" and value <= 0:
        return "must be > 0"
    return "must be >= 0" if value < 0 else None


def parse_grpo_variant(spec: str) -> dict:
    """A grpo.variants entry: 'base' -> {}, 'beta=0.04,loss_type=grpo' -> {'beta': 0.04, 'loss_type': 'grpo'};
    raises ConfigError naming grpo.variants."""
    if spec == "base":
        return {}
    out = {}
    for part in str(spec).split(","):
        name, eq, raw = part.strip().partition("=")
        if not eq or name not in GRPO_VARIANT_KEYS:
            raise ConfigError(f"config key 'grpo.variants' entry {spec!r} must be base or KEY=VALUE[,KEY=VALUE] with "
                              f"KEY one of {', '.join(GRPO_VARIANT_KEYS)}")
        if name == "use_bias_correction_kl":
            if raw.lower() not in GRPO_FLAGS:
                raise ConfigError(f"config key 'grpo.variants' entry {spec!r}: {name} must be true or false")
            out[name] = GRPO_FLAGS[raw.lower()]
            continue
        try:
            value = raw if name in GRPO_CHOICES else float(raw)
        except ValueError:
            value = raw
        why = _grpo_value(name, value)
        if why:
            raise ConfigError(f"config key 'grpo.variants' entry {spec!r}: {name} {why}")
        out[name] = value
    return out


def _grpo(cfg: Config, need, names: list[str]) -> None:
    """grpo."""
    g = cfg.grpo
    for name in (*GRPO_CHOICES, *GRPO_NUMBERS[:3]):
        why = _grpo_value(name, getattr(g, name))
        need(why is None, f"grpo.{name}", why or "")
    need(not g.enabled or cfg.rl.k >= 2, "rl.k", "must be >= 2 for the GRPO study (the group size)")
    need(len(g.variants) > 0 and len(set(g.variants)) == len(g.variants), "grpo.variants",
         "must list at least one variant, each once")
    for spec in g.variants:
        parse_grpo_variant(spec)
    for key in ("sizes", "variant_sizes"):
        for n in getattr(g, key):
            need(n in names, f"grpo.{key}", f"entry {n!r} must be one of rm.sizes (hf.proxies' names)")


def _daa(cfg: Config, need, names: list[str]) -> None:
    """daa."""
    d = cfg.daa
    need(len(d.losses) > 0 and all(x in ("dpo", "ipo", "slic", "rdpo") for x in d.losses), "daa.losses",
         "must list dpo, ipo, slic or rdpo")
    need(len(d.betas) > 0 and all(isinstance(b, (int, float)) and not isinstance(b, bool) and b > 0
                                  for b in d.betas), "daa.betas", "must be numbers > 0")
    need(d.rdpo_alpha >= 0, "daa.rdpo_alpha", "must be >= 0")
    for spec in d.policy_sizes:
        need(parse_size(spec, "daa.policy_sizes") != (cfg.policy.hidden, cfg.policy.layers), "daa.policy_sizes",
             "must differ from the default pi0 (policy.hidden x policy.layers)")
    ens_labels = {f"{sz}/noise{r:g}/{k}" for sz in cfg.ensemble.sizes for r in cfg.ensemble.noise
                  for k in cfg.ensemble.kinds} if cfg.ensemble.enabled else set()
    need(d.labels == "gold" or d.labels in names or d.labels in ens_labels, "daa.labels",
         "must be gold, one of rm.sizes, or SIZE/noiseRATE/KIND of an enabled ensemble")
    for k in ("n_pairs", "n_val_pairs", "epochs", "batch_size", "checkpoints_per_epoch", "eval_prompts", "eval_samples"):
        need(getattr(d, k) >= 1, f"daa.{k}", "must be >= 1")
    need(d.lr > 0, "daa.lr", "must be > 0")
    need(d.optimizer in ("rmsprop", "adam"), "daa.optimizer", "must be rmsprop or adam")


def _studies(cfg: Config, need, names: list[str]) -> None:
    """aif, active, monitor, budget, multi and ensemble."""
    if cfg.aif.enabled:
        need(len(cfg.aif.labellers) > 0, "aif.labellers", "must name at least one labeller")
        for spec in cfg.aif.labellers:
            parse_labeller(spec, cfg.rm.sizes)
        need(len(cfg.aif.sizes) > 0, "aif.sizes", "must name at least one size")
        for spec in cfg.aif.sizes:
            parse_size(spec, "aif.sizes")
    ac = cfg.active
    parse_size(ac.size, "active.size")
    need(ac.k >= 2, "active.k", "must be >= 2")
    need(ac.start >= 2, "active.start", "must be >= 2")
    need(ac.per_round >= 1, "active.per_round", "must be >= 1")
    need(ac.rounds >= 1, "active.rounds", "must be >= 1")
    mo = cfg.monitor
    need(mo.k >= 2, "monitor.k", "must be >= 2 (the proxy and at least one reference member)")
    need(mo.min_points >= 3, "monitor.min_points", "must be >= 3")
    need(0.01 <= mo.alpha <= 0.2, "monitor.alpha", "must be between 0.01 and 0.2 (the stop rule's calibrated range)")
    need(mo.ratio >= 0, "monitor.ratio", "must be >= 0")
    need(0 <= mo.drop < 1, "monitor.drop", "must be in [0, 1)")
    need(mo.patience >= 1, "monitor.patience", "must be >= 1")
    need(mo.disagreement_rise > 0, "monitor.disagreement_rise", "must be > 0")
    need(mo.gold_eval_prompts >= 0, "monitor.gold_eval_prompts", "must be >= 0")
    b = cfg.budget
    ints = lambda xs, low: all(isinstance(x, int) and not isinstance(x, bool) and x >= low for x in xs)  # noqa: E731
    need(len(b.budgets) > 0 and ints(b.budgets, 0), "budget.budgets", "must be a list of label counts >= 0")
    need(len(b.strategies) > 0 and all(x in ("fixed", "triggered", "sequential") for x in b.strategies),
         "budget.strategies", "must be a list of fixed, triggered, sequential")
    need(len(b.judges) > 0 and all(x in ("pointwise", "pairwise") for x in b.judges), "budget.judges",
         "must be a list of pointwise, pairwise")
    need(b.fixed_set >= 2, "budget.fixed_set", "must be >= 2")
    need(b.batch >= 2, "budget.batch", "must be >= 2")
    need(b.z > 0, "budget.z", "must be > 0")
    need(0.01 <= b.alpha <= 0.2, "budget.alpha", "must be between 0.01 and 0.2 (the stop rule's calibrated range)")
    need(b.growth > 0, "budget.growth", "must be > 0")
    need(b.repeats >= 1, "budget.repeats", "must be >= 1")
    need(b.disjoint_members == 0 or b.disjoint_members >= 2, "budget.disjoint_members", "must be 0 or >= 2")
    need(len(b.bon_prompts) > 0 and ints(b.bon_prompts, 1) and max(b.bon_prompts) <= cfg.world.eval_prompts,
         "budget.bon_prompts", "must be a list of prompt counts between 1 and world.eval_prompts")
    need(b.bon_top >= 0 and b.bon_rest >= 0 and 1 <= b.bon_top + b.bon_rest <= cfg.bon.pool_size, "budget.bon_top",
         "plus budget.bon_rest must be between 1 and bon.pool_size")
    need(not ac.enabled or ac.start + ac.rounds * ac.per_round <= cfg.rm.n_train, "active.per_round",
         "times active.rounds plus active.start must be at most rm.n_train")
    mo = cfg.multi
    parse_size(mo.size, "multi.size")
    dims = active_dims(cfg.gold)
    need(len(mo.weights) in (0, len(dims)) and all(isinstance(x, (int, float)) and not isinstance(x, bool) and x >= 0
                                                   for x in mo.weights), "multi.weights",
         f"must be empty or {len(dims)} numbers >= 0, one per weighted gold dimension ({', '.join(dims)})")
    need(mo.pareto_points >= 2, "multi.pareto_points", "must be >= 2")
    need(1 <= mo.pareto_n and (not mo.enabled or mo.pareto_n <= cfg.bon.pool_size), "multi.pareto_n",
         "must be between 1 and bon.pool_size")
    e = cfg.ensemble
    need(e.k >= 2, "ensemble.k", "must be >= 2")
    need(len(e.sizes) > 0, "ensemble.sizes", "must name at least one size")
    for spec in e.sizes:
        parse_size(spec, "ensemble.sizes")
    need(len(e.noise) > 0 and all(isinstance(x, (int, float)) and not isinstance(x, bool) and 0 <= x < 0.5
                                  for x in e.noise), "ensemble.noise", "must be numbers in [0, 0.5)")
    need(len(e.kinds) > 0 and all(x in ("mean", "wco", "uwo") for x in e.kinds), "ensemble.kinds",
         "must be a list of mean, wco, uwo")
    need(e.lam >= 0, "ensemble.lam", "must be >= 0")


# what only the toy world can do: it writes texts to order, has gold dimensions, and trains policies of any size
HF_UNSUPPORTED = (("multi.enabled", lambda c: c.multi.enabled), ("aif.enabled", lambda c: c.aif.enabled),
                  ("active.enabled", lambda c: c.active.enabled), ("ensemble.enabled", lambda c: c.ensemble.enabled),
                  ("monitor.enabled", lambda c: c.monitor.enabled), ("rl.policy_sizes", lambda c: c.rl.policy_sizes),
                  ("daa.policy_sizes", lambda c: c.daa.policy_sizes),
                  ("rl.iterated_rounds", lambda c: c.rl.iterated_rounds))


def _validate_hf(cfg: Config, need) -> None:
    h = cfg.hf
    need(bool(h.gold), "hf.gold", "must name a sequence-classification model or a 'module:function' callable")
    need(len(h.proxies) >= 1, "hf.proxies", "must list at least one checkpoint")
    need(len(set(h.proxies)) == len(h.proxies), "hf.proxies", "has a repeated checkpoint")
    need(bool(h.prompts), "hf.prompts", "must name a prompts file (.jsonl, .json, .csv, .parquet) or a saved dataset")
    need(h.chat_template in ("auto", "on", "off"), "hf.chat_template", "must be auto, on or off")
    need(h.gold_input in ("prompt+response", "response"), "hf.gold_input", "must be prompt+response or response")
    need(h.dtype in ("auto", "float32", "bfloat16", "float16"), "hf.dtype",
         "must be auto, float32, bfloat16 or float16")
    need(h.eval_prompts >= 2, "hf.eval_prompts", "must be >= 2")
    need(h.max_prompts >= 0, "hf.max_prompts", "must be >= 0")
    need(h.max_prompt_tokens >= 1, "hf.max_prompt_tokens", "must be >= 1")
    need(h.gold_batch >= 1, "hf.gold_batch", "must be >= 1")
    for key, on in HF_UNSUPPORTED:
        need(not on(cfg), key, "is a toy-world study; turn it off for the Hugging Face world (hf.policy is set)")

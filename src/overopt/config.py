"""Typed, frozen run configuration: presets, YAML files, ``--set`` overrides, content hashes.

    cfg = load_config(preset="smoke", overrides=["rm.n_train=2000"])
    cfg.rm.n_train  # 2000

Every field carries a help string (``field_help``). Unknown keys and bad values raise
``ConfigError`` naming the key, at load time.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import yaml

PRESET_DIR = Path(__file__).parent / "presets"
# Bump when a change to the code invalidates cached artifacts.
CACHE_VERSION = 2


class ConfigError(ValueError):
    """A bad config key or value; the message names the key."""


def _f(default, help: str, **kw):
    if isinstance(default, (list, tuple)):
        return field(default_factory=lambda: tuple(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass(frozen=True)
class RunConfig:
    seed: int = _f(0, "master seed; every stage derives its own seed from it")
    device: str = _f("auto", "torch device: auto (cuda if available), cpu or cuda")
    threads: int = _f(0, "torch CPU threads; 0 = all cores")
    cache_dir: str = _f("", "artifact cache; empty = $OVEROPT_CACHE or ~/.cache/overopt")
    track: tuple = _f((), "log every curve of the tables to tensorboard and/or wandb (out/tracking/)")
    wandb_mode: str = _f("offline", "W&B mode: offline (no network; `wandb sync` later), online or disabled")
    wandb_project: str = _f("overopt", "W&B project name")


@dataclass(frozen=True)
class WorldConfig:
    n_names: int = _f(30, "place/product names; prompts = 10 topics x 8 aspects x n_names (30 -> 2400)")
    n_corpus: int = _f(40000, "texts from the hidden world model used to train pi0")
    n_bigram: int = _f(100000, "texts used to estimate the world's bigram model (gold fluency)")
    max_new_tokens: int = _f(40, "longest response sampled, end token included")
    eval_prompts: int = _f(300, "held-out prompts for best-of-n; never used to train a reward model")


@dataclass(frozen=True)
class GoldConfig:
    length_target: float = _f(14.0, "the length term peaks at this many words")
    w_sentiment: float = _f(1.0, "weight: log(1+distinct positive) - log(1+distinct negative) words, negation-aware")
    w_fluency: float = _f(1.0, "weight: mean log-prob per token under the world's bigram model")
    w_relevance: float = _f(1.0, "weight: mentions the prompt's aspect, stays on the prompt's topic")
    w_length: float = _f(0.01, "weight: -(words - length_target)^2")
    w_diversity: float = _f(1.5, "weight: distinct-token ratio (penalises repetition)")


@dataclass(frozen=True)
class PolicyConfig:
    hidden: int = _f(64, "pi0 GPT-NeoX hidden size")
    layers: int = _f(2, "pi0 transformer layers")
    heads: int = _f(4, "pi0 attention heads")
    steps: int = _f(1500, "pi0 supervised training steps on the world corpus")
    batch_size: int = _f(64, "pi0 training batch (sequences)")
    lr: float = _f(3e-3, "pi0 AdamW learning rate (cosine decay)")
    sample_batch: int = _f(2048, "sequences per sampling batch")


@dataclass(frozen=True)
class RMConfig:
    sizes: tuple = _f(("8x1", "16x1", "32x2", "64x2", "96x3"),
                      "proxy RM family as HIDDENxLAYERS (GPT-NeoX backbone + scalar head)")
    n_train: int = _f(12000, "gold-labelled preference pairs used to train each proxy")
    n_val: int = _f(2000, "held-out pairs for rm.csv's val_loss and val_acc")
    epochs: int = _f(2, "passes over the training pairs")
    batch_size: int = _f(64, "pairs per step")
    lr: float = _f(2e-3, "AdamW learning rate (linear warm-up, cosine decay)")
    weight_decay: float = _f(0.01, "AdamW weight decay")
    label_noise: float = _f(0.0, "probability of flipping each gold label (Coste et al. 2023 use 0.25)")
    length_norm: bool = _f(False, "length-normalised proxies: remove each proxy's slope on response length, fitted "
                                  "on pi0's samples (best-of-n, RL and labels then use the residual)")
    data_sizes: tuple = _f((), "data-size sweep: n_train values for one proxy size (empty = no sweep)")
    data_sweep_rm: str = _f("", "proxy size used by the data-size sweep (empty = the middle size)")


@dataclass(frozen=True)
class BonConfig:
    pool_size: int = _f(512, "N: samples per held-out prompt; n runs over powers of two up to N, and N")
    n_boot: int = _f(200, "bootstrap resamples over prompts for the curve and fit intervals")
    n_examples: int = _f(4, "prompts whose pi0 and best-of-N texts the report shows")


@dataclass(frozen=True)
class RLConfig:
    enabled: bool = _f(False, "run RL against every proxy of the family (rl.csv, the RL fits and report section)")
    algo: str = _f("rloo", "rloo (k samples per prompt, leave-one-out baseline) or ppo (GAE, value head)")
    steps: int = _f(60, "rollout-and-update steps per curve")
    prompts_per_step: int = _f(64, "training prompts per step (each sampled k times)")
    k: int = _f(4, "samples per prompt")
    lr: float = _f(5e-5, "Adam learning rate of the policy (and value head)")
    kl_coef: float = _f(0.0, "coefficient of the KL penalty in the reward (initial value when adaptive)")
    kl_target: float = _f(0.0, "> 0: adapt the coefficient toward this KL per sequence (Ziegler et al.)")
    kl_horizon: int = _f(10000, "adaptive controller horizon, in samples")
    epochs: int = _f(4, "optimisation passes over each rollout batch (PPO-style reuse, as TRL and CleanRL)")
    minibatches: int = _f(4, "minibatches per pass")
    eval_points: int = _f(12, "evaluations per curve, besides step 0")
    eval_spacing: float = _f(1.5, "evaluation step i is steps * (i / eval_points)^spacing: > 1 is dense early")
    eval_prompts: int = _f(200, "held-out prompts per evaluation")
    eval_samples: int = _f(4, "samples per held-out prompt per evaluation")
    kl_sweep: tuple = _f((), "fixed KL-penalty coefficients for extra curves on one proxy (Gao et al. Fig. 9)")
    sweep_rm: str = _f("", "proxy the KL-penalty sweep and the policy sizes use (empty = the smallest)")
    policy_sizes: tuple = _f((), "other pi0 sizes (HIDDENxLAYERS) optimized against that proxy")
    iterated_rounds: int = _f(0, ">= 2: an iterated-RLHF curve on that proxy with this many rounds (Gao sec. 4.3)")
    iterated_pairs: int = _f(0, "gold-labelled pairs of the current policy added each round (0 = rm.n_train / rounds)")


@dataclass(frozen=True)
class DAAConfig:
    enabled: bool = _f(False, "direct alignment sweep (daa.csv, daa_summary.csv and the report section)")
    losses: tuple = _f(("dpo", "ipo", "slic", "rdpo"), "preference losses: dpo, ipo, slic, rdpo (length-regularised)")
    betas: tuple = _f((0.01, 0.03, 0.1, 0.3, 1.0), "beta values, each run with every loss")
    rdpo_alpha: float = _f(0.05, "R-DPO's length coefficient alpha (per response token)")
    ipo_length_norm: bool = _f(False, "IPO on per-token mean log-ratios instead of sums")
    policy_sizes: tuple = _f((), "pi0 sizes (HIDDENxLAYERS) besides the default pi0, each the reference of its runs")
    labels: str = _f("gold", "who labels the pairs: gold, a proxy in rm.sizes, or an ensemble objective "
                             "SIZE/noiseRATE/KIND (e.g. 16x1/noise0.25/wco, with ensemble.enabled)")
    n_pairs: int = _f(4000, "training pairs: a prefix of the proxies' labelled pairs (at most rm.n_train)")
    n_val_pairs: int = _f(500, "held-out pairs for implicit-reward accuracy (at most rm.n_val)")
    epochs: int = _f(2, "passes over the pairs")
    batch_size: int = _f(64, "pairs per step")
    lr: float = _f(1e-4, "learning rate")
    optimizer: str = _f("rmsprop", "rmsprop (as Rafailov et al.) or adam")
    checkpoints_per_epoch: int = _f(8, "evaluations per epoch, evenly spaced (plus step 0)")
    eval_prompts: int = _f(100, "held-out prompts per evaluation (at most world.eval_prompts)")
    eval_samples: int = _f(4, "samples per held-out prompt per evaluation")


@dataclass(frozen=True)
class EnsembleConfig:
    enabled: bool = _f(False, "reward-model ensembles (Coste et al. 2023): ensembles.csv, ensemble_rl.csv, report section")
    k: int = _f(4, "members per ensemble; they differ only by seed (initialisation and data order)")
    sizes: tuple = _f(("16x1",), "proxy sizes (HIDDENxLAYERS) that get an ensemble")
    noise: tuple = _f((0.0, 0.25), "label-flip rates: one ensemble per size and rate")
    kinds: tuple = _f(("mean", "wco", "uwo"), "objectives compared with a single member: mean, wco (min), uwo")
    lam: float = _f(0.5, "UWO's lambda: mean - lam * variance over members")
    calibrate: bool = _f(True, "divide each member by its fitted temperature before combining (one scale)")
    bootstrap: bool = _f(False, "members past the first train on a resample of the pairs with replacement (bagging)")
    rl: bool = _f(True, "also run RL against the single member and each objective")


@dataclass(frozen=True)
class MultiConfig:
    enabled: bool = _f(False, "multi-objective rewards: one proxy per gold dimension (multi.csv, pareto.csv, "
                              "collapse.csv, report section)")
    size: str = _f("16x1", "size (HIDDENxLAYERS) of each dimension's proxy")
    weights: tuple = _f((), "one multiplier per gold dimension on the gold's own weighting (empty = 1 each)")
    pareto_points: int = _f(48, "weight vectors for the Pareto front (each dimension alone, then uniform on the simplex)")
    pareto_n: int = _f(64, "best-of-n's n for the Pareto front (at most bon.pool_size)")
    rl: bool = _f(True, "also run RL against the aggregate")


@dataclass(frozen=True)
class AifConfig:
    enabled: bool = _f(False, "AI-labelled preferences (RLAIF): proxies trained on an AI labeller's labels (aif.csv)")
    labellers: tuple = _f(("rm:16x1", "length:0.05", "dim:sentiment:3"),
                          "rm:SIZE (a family proxy judges), length:B (gold + B per word, gold-std units) or "
                          "dim:NAME:F (gold with dimension NAME's weight times F)")
    sizes: tuple = _f(("16x1", "64x2"), "proxy sizes trained on each labeller's labels (same pairs, same count)")


@dataclass(frozen=True)
class ActiveConfig:
    enabled: bool = _f(False, "active learning: label pairs chosen by ensemble disagreement or at random (active.csv)")
    size: str = _f("16x1", "proxy size (HIDDENxLAYERS)")
    k: int = _f(3, "members whose disagreement chooses the pairs")
    start: int = _f(1000, "random labelled pairs both strategies start from")
    per_round: int = _f(1000, "labels added per round")
    rounds: int = _f(3, "rounds of selection")


@dataclass(frozen=True)
class MonitorConfig:
    enabled: bool = _f(False, "evaluate overopt.monitor.Monitor on every family RL curve (monitor.csv, "
                              "monitor_trace.csv, report section; nothing without rl.enabled): it sees KL, the proxy "
                              "and an ensemble, never gold")
    k: int = _f(3, "ensemble members per proxy size; member 0 is the optimized proxy, the others (differing by seed) "
                   "are the reference")
    bootstrap: bool = _f(False, "members past the first train on a resample of the pairs (bagging)")
    min_points: int = _f(5, "Monitor: evaluations before any signal")
    window: int = _f(4, "Monitor: evaluations in the proxy/reference divergence window")
    drop: float = _f(0.1, "Monitor: reference gain this far (relative) below its best counts as falling")
    patience: int = _f(2, "Monitor: falling evaluations in a row before stop")
    disagreement_rise: float = _f(0.5, "Monitor: relative rise of ensemble disagreement from its low that warns "
                                       "(twice it stops)")
    gold_eval_prompts: int = _f(25, "for comparison, outside the rule that the monitor never sees gold: a reference "
                                    "made of this many held-out prompts' responses gold-labelled at each evaluation "
                                    "(0 = off)")


@dataclass(frozen=True)
class HFConfig:
    policy: str = _f("", "the Hugging Face world: pi0, a causal LM (local folder or hub name); empty = the toy world")
    gold: str = _f("", "gold: a sequence-classification model (folder or hub name), or a Python callable "
                       "'module:function' taking (prompts, responses) lists of strings and returning numbers")
    proxies: tuple = _f((), "proxy checkpoints (base models or causal LMs), each given a scalar head and trained on "
                            "gold-labelled pairs; they must share the policy's tokenizer")
    prompts: str = _f("", "prompts: a .jsonl, .json, .csv or .parquet file, or a datasets.save_to_disk folder")
    prompt_field: str = _f("prompt", "the column (or key) holding each prompt")
    max_prompts: int = _f(0, "use at most this many prompts (0 = all)")
    eval_prompts: int = _f(64, "held-out prompts for best-of-n and RL evaluation; the rest label pairs and train RL")
    max_prompt_tokens: int = _f(128, "prompts longer than this keep their last tokens")
    chat_template: str = _f("auto", "auto (when the tokenizer has one), on or off: wrap each prompt as a user turn")
    gold_input: str = _f("prompt+response", "what the gold model reads: prompt+response or response")
    gold_batch: int = _f(32, "texts per gold forward pass")
    dtype: str = _f("auto", "auto (bfloat16 for frozen models on CUDA, float32 on CPU), float32, bfloat16, float16")
    trust_remote_code: bool = _f(False, "allow checkpoints that ship their own modelling code (off: never runs it)")


@dataclass(frozen=True)
class FitConfig:
    extrap_frac: float = _f(0.125, "extrapolation check: fit on n <= extrap_frac * N, predict at N")
    ci: float = _f(0.9, "width of the bootstrap intervals")


@dataclass(frozen=True)
class Config:
    run: RunConfig = field(default_factory=RunConfig)
    world: WorldConfig = field(default_factory=WorldConfig)
    gold: GoldConfig = field(default_factory=GoldConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    rm: RMConfig = field(default_factory=RMConfig)
    bon: BonConfig = field(default_factory=BonConfig)
    rl: RLConfig = field(default_factory=RLConfig)
    daa: DAAConfig = field(default_factory=DAAConfig)
    ensemble: EnsembleConfig = field(default_factory=EnsembleConfig)
    multi: MultiConfig = field(default_factory=MultiConfig)
    aif: AifConfig = field(default_factory=AifConfig)
    active: ActiveConfig = field(default_factory=ActiveConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    hf: HFConfig = field(default_factory=HFConfig)
    fit: FitConfig = field(default_factory=FitConfig)

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def section_hash(self, *sections: str, extra: Any = None) -> str:
        """Content hash of the named sections (plus run.seed): the cache key of an artifact."""
        d = self.to_dict()
        payload = {s: d[s] for s in sections}
        if "world" in sections and self.hf.policy:  # the Hugging Face world: its checkpoints and prompts
            from .world.hf import fingerprint
            payload["hf"] = [d["hf"], fingerprint(self.hf)]
        payload["seed"] = self.run.seed
        payload["cache_version"] = CACHE_VERSION
        payload["extra"] = extra
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def hash(self) -> str:
        return self.section_hash("world", "gold", "policy", "rm", "bon", "rl", "fit")


def field_help(cls) -> dict[str, str]:
    return {f.name: f.metadata.get("help", "") for f in fields(cls)}


def _coerce(key: str, value: Any, typ) -> Any:
    """Coerce a YAML value to the field's type or raise ConfigError naming the key."""
    origin = get_origin(typ) or typ
    if typ is tuple or origin is tuple:
        if isinstance(value, str):
            # "0.01,0.05" from --set: each entry read as YAML, so numbers stay numbers
            value = [yaml.safe_load(v.strip()) for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{key}' must be a list, got {value!r}")
        return tuple(value)
    if typ is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"config key '{key}' must be true or false, got {value!r}")
    if typ is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise ConfigError(f"config key '{key}' must be an integer, got {value!r}")
        return int(value)
    if typ is float:
        if isinstance(value, str):  # YAML 1.1 reads 3e-5 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"config key '{key}' must be a number, got {value!r}")
        return float(value)
    if typ is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key '{key}' must be a string, got {value!r}")
        return value
    return value


def _build(cls, data: dict, prefix: str):
    if not isinstance(data, dict):
        raise ConfigError(f"config section '{prefix.rstrip('.')}' must be a mapping")
    hints = get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    for k in data:
        if k not in names:
            raise ConfigError(f"unknown config key '{prefix}{k}'")
    kwargs = {}
    for f in fields(cls):
        if f.name not in data:
            continue
        typ = hints[f.name]
        if dataclasses.is_dataclass(typ):
            kwargs[f.name] = _build(typ, data[f.name], f"{prefix}{f.name}.")
        else:
            kwargs[f.name] = _coerce(prefix + f.name, data[f.name], typ)
    return cls(**kwargs)


def _merge(base: dict, upd: dict) -> dict:
    out = dict(base)
    for k, v in upd.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def parse_size(spec: str, key: str = "rm.sizes") -> tuple[int, int]:
    """'32x2' -> (hidden=32, layers=2)."""
    try:
        h, l = (int(x) for x in str(spec).lower().split("x"))
    except ValueError:
        raise ConfigError(f"config key '{key}' entry {spec!r} must look like HIDDENxLAYERS, e.g. 32x2")
    if h < 2 or l < 1 or h % 2:
        raise ConfigError(f"config key '{key}' entry {spec!r}: hidden must be even >= 2, layers >= 1")
    return h, l


def validate(cfg: Config) -> Config:
    """Range checks that types alone cannot express."""
    def need(ok: bool, key: str, msg: str):
        if not ok:
            raise ConfigError(f"config key '{key}' {msg}")

    need(cfg.run.device in ("auto", "cpu", "cuda"), "run.device", "must be auto, cpu or cuda")
    need(cfg.run.threads >= 0, "run.threads", "must be >= 0")
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
    need(0.0 <= cfg.rm.label_noise < 0.5, "rm.label_noise", "must be in [0, 0.5)")
    for n in cfg.rm.data_sizes:
        need(isinstance(n, int) and 2 <= n, "rm.data_sizes", f"entries must be integers >= 2, got {n!r}")
        need(n <= cfg.rm.n_train, "rm.data_sizes", f"entry {n} exceeds rm.n_train={cfg.rm.n_train} (subsets are nested)")
    if cfg.rm.data_sweep_rm:
        need(cfg.rm.data_sweep_rm in names, "rm.data_sweep_rm", "must be one of rm.sizes (hf.proxies' names)")
    need(cfg.gold.length_target > 0, "gold.length_target", "must be > 0")
    need(cfg.bon.pool_size >= 4, "bon.pool_size", "must be >= 4")
    need(cfg.bon.n_boot >= 10, "bon.n_boot", "must be >= 10")
    need(cfg.bon.n_examples >= 0, "bon.n_examples", "must be >= 0")
    need(cfg.rl.algo in ("rloo", "ppo"), "rl.algo", "must be rloo or ppo")
    for k in ("steps", "prompts_per_step", "eval_points", "eval_prompts", "eval_samples", "epochs", "minibatches",
              "kl_horizon"):
        need(getattr(cfg.rl, k) >= 1, f"rl.{k}", "must be >= 1")
    need(cfg.rl.k >= (2 if cfg.rl.algo == "rloo" else 1), "rl.k", "must be >= 2 for rloo (>= 1 for ppo)")
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
    if cfg.aif.enabled:
        from .aif import parse_labeller
        need(len(cfg.aif.labellers) > 0, "aif.labellers", "must name at least one labeller")
        for spec in cfg.aif.labellers:
            try:
                parse_labeller(spec, cfg.rm.sizes)
            except ValueError as e:
                raise ConfigError(str(e))
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
    need(mo.window >= 2, "monitor.window", "must be >= 2")
    need(0 < mo.drop < 1, "monitor.drop", "must be in (0, 1)")
    need(mo.patience >= 1, "monitor.patience", "must be >= 1")
    need(mo.disagreement_rise > 0, "monitor.disagreement_rise", "must be > 0")
    need(mo.gold_eval_prompts >= 0, "monitor.gold_eval_prompts", "must be >= 0")
    need(not ac.enabled or ac.start + ac.rounds * ac.per_round <= cfg.rm.n_train, "active.per_round",
         "times active.rounds plus active.start must be at most rm.n_train")
    mo = cfg.multi
    parse_size(mo.size, "multi.size")
    need(len(mo.weights) in (0, 5) and all(isinstance(x, (int, float)) and not isinstance(x, bool) and x >= 0
                                           for x in mo.weights), "multi.weights",
         "must be empty or 5 numbers >= 0 (sentiment, fluency, relevance, length, diversity)")
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
    held_out = ("hf.eval_prompts", cfg.hf.eval_prompts) if cfg.hf.policy else ("world.eval_prompts", cfg.world.eval_prompts)
    need(cfg.rl.eval_prompts <= held_out[1], "rl.eval_prompts", f"must be <= {held_out[0]}")
    need(0 < cfg.fit.extrap_frac < 1, "fit.extrap_frac", "must be in (0, 1)")
    need(0.5 <= cfg.fit.ci < 1, "fit.ci", "must be in [0.5, 1)")
    return cfg


# what only the toy world can do: it writes texts to order, has gold dimensions, and trains policies of any size
HF_UNSUPPORTED = (("multi.enabled", lambda c: c.multi.enabled), ("aif.enabled", lambda c: c.aif.enabled),
                  ("active.enabled", lambda c: c.active.enabled), ("ensemble.enabled", lambda c: c.ensemble.enabled),
                  ("monitor.enabled", lambda c: c.monitor.enabled), ("rl.policy_sizes", lambda c: c.rl.policy_sizes),
                  ("daa.policy_sizes", lambda c: c.daa.policy_sizes),
                  ("rl.iterated_rounds", lambda c: c.rl.iterated_rounds))


def family_sizes(cfg: Config) -> list[str]:
    """The proxy family: rm.sizes (HIDDENxLAYERS), or in the Hugging Face world the names of hf.proxies."""
    if cfg.hf.policy:
        from .world.hf import proxy_names
        return proxy_names(cfg.hf.proxies)
    return list(cfg.rm.sizes)


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


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def _read_yaml(path: Path, what: str) -> dict:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{what} not found: {path}")
    except yaml.YAMLError as e:
        raise ConfigError(f"{what} {path} is not valid YAML: {str(e).splitlines()[0]}")
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {path} must hold a mapping of sections")
    return data


def parse_override(item: str) -> dict:
    """'rm.n_train=2000' -> {'rm': {'n_train': 2000}} (the value is parsed as YAML)."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like section.key=value")
    key, raw = item.split("=", 1)
    parts = key.strip().split(".")
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"override key '{key}' must look like section.key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return {parts[0]: {parts[1]: value}}


def load_config(preset: str | None = "default", config_file: str | None = None,
                overrides: list[str] | tuple = ()) -> Config:
    """Preset, then a YAML file, then ``--set`` overrides, each over the last."""
    data: dict = {}
    if preset:
        if preset not in list_presets():
            raise ConfigError(f"unknown preset '{preset}' (available: {', '.join(list_presets())})")
        data = _read_yaml(PRESET_DIR / f"{preset}.yaml", "preset")
    if config_file:
        data = _merge(data, _read_yaml(Path(config_file), "config file"))
    for item in overrides:
        data = _merge(data, parse_override(item))
    return validate(_build(Config, data, ""))


def config_from_dict(data: dict) -> Config:
    return validate(_build(Config, data, ""))

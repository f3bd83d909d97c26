"""The typed, frozen run configuration: one dataclass per section, a help string and a default per field.

    cfg = Config()            # every default
    cfg.rm.n_train            # 12000
    cfg.hash                  # one hash over the whole resolved config (manifest, sweep cells)
    cfg.section_hash("world", "policy")   # a cache key: the sections an artifact depends on

Loading, overrides and validation live in `config.load` and `config.validate`.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import ConfigError  # noqa: F401  (re-exported)

PRESET_DIR = Path(__file__).parent.parent / "presets"
# Bump when a change to the code invalidates cached artifacts.
CACHE_VERSION = 2
# The gold reward's named dimensions, one weight each in GoldConfig (w_<name>).
GOLD_DIMS = ("sentiment", "fluency", "relevance", "length", "diversity", "naturalness")


def active_dims(gold) -> tuple[str, ...]:
    """The gold dimensions a GoldConfig weighs (weight != 0), in GOLD_DIMS order."""
    return tuple(d for d in GOLD_DIMS if getattr(gold, f"w_{d}") != 0)


# run.* fields that cannot change a run's results (where it caches, how many threads, where it logs)
RESULT_FREE = ("cache_dir", "threads", "workers", "track", "wandb_mode", "wandb_project")


def _f(default, help: str, **kw):
    if isinstance(default, (list, tuple)):
        return field(default_factory=lambda: tuple(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass(frozen=True)
class RunConfig:
    seed: int = _f(0, "master seed; every stage derives its own seed from it")
    device: str = _f("auto", "torch device: auto (cuda if available), cpu or cuda")
    threads: int = _f(0, "torch CPU threads; 0 = all cores")
    workers: int = _f(0, "processes for the proxies and a study's RL curves on a CPU; 0 = one per thread, 1 = none")
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
    w_naturalness: float = _f(0.0, "weight: -(power-law weighted squared distance of the word mix from the grammar's "
                                   "on 64 random directions); 0 = off (as before the term existed)")
    naturalness_decay: float = _f(0.3, "the k-th naturalness direction weighs k^-decay (below 0.5 each doubling of "
                                       "the directions weighs more than the last)")


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
    lr_width: int = _f(0, "> 0: a proxy wider than this trains at lr x lr_width / width (Adam's rate falling as "
                          "1/width, as muP prescribes for hidden weights; Yang et al. 2022); 0 = lr at every width")
    lrs: tuple = _f((), "toy-world per-size learning rates as SIZE=LR (e.g. [6x1=8e-3, 128x1=1e-3]): a size listed trains at "
                        "its own rate instead of rm.lr and rm.lr_width (each size's best rate, as scaling-law studies "
                        "tune it per size)")
    weight_decay: float = _f(0.01, "AdamW weight decay")
    pretrain_steps: int = _f(0, "toy world: > 0 first trains each proxy's backbone as a language model on the world's "
                                "corpus for this many steps (pi0's batch and rate, the rate scaled as rm.lr_width), as "
                                "Gao et al.'s proxies start from pretrained LMs; 0 = from random initialisation")
    label_noise: float = _f(0.0, "probability of flipping each gold label (Coste et al. 2023 use 0.25)")
    length_norm: bool = _f(False, "length-normalised proxies: remove each proxy's slope on response length, fitted "
                                  "on pi0's samples (best-of-n, RL and labels then use the residual)")
    data_sizes: tuple = _f((), "data-size sweep: n_train values for one proxy size (empty = no sweep)")
    data_sweep_rm: str = _f("", "proxy size used by the data-size sweep (empty = the middle size)")
    draws: int = _f(1, "> 1: train every family size this many times in all, with other initialisation and data-order "
                       "seeds (the monitor's members), and fit the best-of-n trend on each draw (draws.csv; the claims "
                       "say on how many draws it is smooth)")


@dataclass(frozen=True)
class BonConfig:
    pool_size: int = _f(512, "N: samples per held-out prompt; n runs over powers of two up to N, and N")
    n_boot: int = _f(200, "bootstrap resamples over prompts for the curve and fit intervals")
    n_examples: int = _f(4, "prompts whose pi0 and best-of-N texts the report shows")


@dataclass(frozen=True)
class RLConfig:
    enabled: bool = _f(False, "run RL against every proxy of the family (rl.csv, the RL fits and report section)")
    algo: str = _f("rloo", "rloo (k samples per prompt, leave-one-out baseline), ppo (GAE, value head) or grpo "
                           "(group-relative advantages; its options in grpo.*)")
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
class GRPOConfig:
    enabled: bool = _f(False, "the GRPO study: GRPO and its variants against the family's proxies beside RLOO (grpo.csv, "
                              "grpo_summary.csv, report section; RLOO's curves from rl.enabled)")
    beta: float = _f(0.0, "coefficient of the per-token k3 KL term in the loss (TRL GRPOConfig.beta; 0 = none)")
    scale_rewards: str = _f("group", "advantages divided by the group's std (group), the batch's (batch) or not "
                                     "(none: Dr. GRPO)")
    loss_type: str = _f("dapo", "grpo (sequence mean, then batch mean), bnpo (minibatch token mean), dapo (token sum "
                                "over the generation batch's tokens per update; TRL's default), dr_grpo (over "
                                "batch x max length)")
    epsilon: float = _f(0.2, "lower clip of the importance ratio: 1 - epsilon")
    epsilon_high: float = _f(0.0, "upper clip 1 + epsilon_high (DAPO's clip-higher, 0.28); 0 = epsilon")
    importance_sampling_level: str = _f("token", "token (GRPO) or sequence (GSPO: one ratio per response)")
    use_bias_correction_kl: bool = _f(True, "the KL term times the importance ratio (DeepSeek-V3.2; TRL's default)")
    variants: tuple = _f(("base", "beta=0.04", "scale_rewards=none", "loss_type=grpo"),
                         "the study's curves on each proxy: base (the settings above) or overrides KEY=VALUE[,KEY=VALUE] "
                         "of the keys above and rl.kl_coef (kl_coef: the KL penalty in the reward, as RLOO)")
    sizes: tuple = _f((), "proxies (rm.sizes) the base variant runs against; empty = every proxy")
    variant_sizes: tuple = _f((), "proxies the other variants run against; empty = grpo.sizes")


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
    enabled: bool = _f(False, "evaluate overopt.online.monitor.Monitor on every family RL curve (monitor.csv, "
                              "monitor_trace.csv, report section; nothing without rl.enabled): it sees KL, the proxy "
                              "and an ensemble, never gold")
    k: int = _f(3, "ensemble members per proxy size; member 0 is the optimized proxy, the others (differing by seed) "
                   "are the reference")
    bootstrap: bool = _f(False, "members past the first train on a resample of the pairs (bagging)")
    alpha: float = _f(0.05, "Monitor: the chance its stop rules stop on noise over a whole run (online.stoprule)")
    min_points: int = _f(5, "Monitor: evaluations before the disagreement signal")
    drop: float = _f(0.1, "Monitor: a significant fall of the reference also needs to be this share of its best gain")
    patience: int = _f(1, "Monitor: looks in a row a stop rule must fire before stop")
    ratio: float = _f(0.1, "Monitor: divergence fires when the reference gains less than this share of what the proxy "
                           "gains (each in its own units; 0 = off)")
    disagreement_rise: float = _f(0.5, "Monitor: relative rise of ensemble disagreement from its low that warns "
                                       "(twice it stops)")
    gold_eval_prompts: int = _f(25, "for comparison, outside the rule that the monitor never sees gold: a reference "
                                    "made of this many held-out prompts' responses gold-labelled at each evaluation "
                                    "(0 = off)")


@dataclass(frozen=True)
class BudgetConfig:
    enabled: bool = _f(False, "judge on a label budget along every family RL curve, and n for best-of-n from a few "
                              "judged prompts (budget.csv, budget_summary.csv, bon_choice.csv, report section)")
    budgets: tuple = _f((0, 50, 100, 200, 400), "judge labels per RL run, each strategy measured at each")
    strategies: tuple = _f(("fixed", "triggered", "sequential"), "fixed, triggered and/or sequential "
                                                                   "(`overopt.online.budget`)")
    judges: tuple = _f(("pointwise", "pairwise"), "pointwise (a gold score per response) and/or pairwise (a "
                                                   "response against a pi0 response to its prompt: win 1, tie 0.5)")
    fixed_set: int = _f(100, "labels per evaluation of the fixed evaluation set the budgets are compared with")
    batch: int = _f(8, "sequential: labels per batch")
    z: float = _f(2.0, "sequential: Welch z that decides a checkpoint against the best one (no more labels for it)")
    alpha: float = _f(0.05, "the chance the stop rule (online.stoprule, on the judged means) stops a run on noise")
    growth: float = _f(0.5, "triggered: relative growth of sqrt(KL) since the last labelled evaluation that labels")
    repeats: int = _f(20, "independent label draws per curve, strategy and budget")
    disjoint_members: int = _f(3, "detectors: members of each proxy size trained on disjoint slices of the pairs, "
                                  "whose spread is a signal (0 = none)")
    bon_prompts: tuple = _f((5, 10, 20, 40), "calibration prompts m for choosing n of best-of-n")
    bon_top: int = _f(6, "best-of-n calibration: the proxy's top samples labelled per prompt")
    bon_rest: int = _f(4, "best-of-n calibration: samples labelled per prompt drawn from the rest")


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
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    daa: DAAConfig = field(default_factory=DAAConfig)
    ensemble: EnsembleConfig = field(default_factory=EnsembleConfig)
    multi: MultiConfig = field(default_factory=MultiConfig)
    aif: AifConfig = field(default_factory=AifConfig)
    active: ActiveConfig = field(default_factory=ActiveConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    hf: HFConfig = field(default_factory=HFConfig)
    fit: FitConfig = field(default_factory=FitConfig)

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def section_hash(self, *sections: str, extra: Any = None) -> str:
        """Content hash of the named sections (plus run.seed): the cache key of an artifact."""
        d = self.to_dict()
        payload = {s: d[s] for s in sections}
        if "world" in sections and self.hf.policy:  # the Hugging Face world: its checkpoints and prompts
            payload["hf"] = [d["hf"], fingerprint(self.hf)]
        payload["seed"] = self.run.seed
        payload["cache_version"] = CACHE_VERSION
        payload["extra"] = extra
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def hash(self) -> str:
        """One hash over the whole resolved config, less what cannot change results (RESULT_FREE): the
        manifest's config_hash and a sweep cell's name."""
        d = self.to_dict()
        d["run"] = {k: v for k, v in d["run"].items() if k not in RESULT_FREE}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def field_help(cls) -> dict[str, str]:
    return {f.name: f.metadata.get("help", "") for f in fields(cls)}


FINGERPRINT_SUFFIXES = (".safetensors", ".bin", ".json", ".model", ".txt", ".jinja", ".jsonl", ".csv", ".parquet",
                        ".arrow")


@functools.lru_cache(maxsize=8)
def fingerprint(hcfg) -> str:
    """A hash of the local files behind the policy, gold, proxies and prompts (names, sizes, modification
    times), so that a retrained checkpoint at the same path is not mistaken for a cached one. Hub names
    hash as themselves. Computed once per config in a process (every cache key asks for it)."""
    h = hashlib.sha256()
    for p in (hcfg.policy, hcfg.gold, *hcfg.proxies, hcfg.prompts):
        h.update(str(p).encode())
        path = Path(str(p))
        files = sorted(path.rglob("*")) if path.is_dir() else ([path] if path.is_file() else [])
        for f in files:
            if f.is_file() and (f.suffix in FINGERPRINT_SUFFIXES or path.is_file()):
                st = f.stat()
                h.update(f"{f.relative_to(path) if path.is_dir() else f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]

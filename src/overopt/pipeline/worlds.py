"""One builder per world: everything that differs between the toy world (`world.toy`) and the Hugging Face world
(`world.hf`) when a run builds its world, pi0 and proxies. `builder(cfg)` is the one place that decides which world
a run is in (hf.policy set: the Hugging Face world); the rest of the pipeline asks the builder.

    b = builder(run.cfg)
    world = b.world(run); pi0 = b.pi0(run, world); rm = b.new_rm(run, world, "16x1", seed)
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from ..config import Config, family_sizes, parse_size, rm_lr
from ..models.policy import build_lm, n_params, train_lm
from ..models.reward import RewardModel, build_rm
from ..world.base import World
from ..world.toy import ToyWorld
from .run import Run, stage_error


def corpus(run: Run, world: World) -> tuple[torch.Tensor, torch.Tensor]:
    """(prompts, responses) of the toy world's corpus that pi0 learns from: world.n_corpus texts of the hidden world
    model, drawn from the run's seed, responses cut at world.max_new_tokens."""
    pidx, resp = world.corpus(run.cfg.world.n_corpus, run.rng("pi0.corpus"))
    return torch.tensor(world.prompt_ids[pidx]), torch.tensor(resp[:, : run.cfg.world.max_new_tokens])


class ToyBuilder:
    """The synthetic world: built and cached by content, pi0 trained on its corpus, proxies GPT-NeoX of a named size
    (HIDDENxLAYERS) trained from scratch."""
    kind = "toy"

    def world(self, run: Run) -> ToyWorld:
        key = run.cfg.section_hash("world", extra=list(ToyWorld.TABLES))  # a world cached with other tables is not read
        with run.stage("world") as st:
            cached = run.cache.get("world", key)
            st["cached"] = cached is not None
            world = ToyWorld(run.cfg.world, run.cfg.run.seed, cached)
            if cached is None:
                run.cache.put("world", key, world.tables)
        return world

    def pi0(self, run: Run, world: World, policy_cfg=None, name: str = "pi0") -> torch.nn.Module:
        """A small GPT-NeoX trained on the world's corpus (``policy_cfg`` for another size), cached."""
        p = policy_cfg or run.cfg.policy
        key = run.cfg.section_hash("world", "policy") if policy_cfg is None else \
            run.cfg.section_hash("world", extra=dataclasses.asdict(p))
        model = build_lm(len(world.vocab), p.hidden, p.layers, p.heads,
                         world.prompt_len + run.cfg.world.max_new_tokens + 1, run.seed("pi0.init"))
        with run.stage(name) as st:
            state = run.cache.get("pi0", key)
            st["cached"] = state is not None
            if state is None:
                prompts, resp = corpus(run, world)
                with run.bar(p.steps, f"{name} training") as b, stage_error(f"{name} training"):
                    losses = train_lm(model, prompts, resp, p.steps, p.batch_size, p.lr, run.seed("pi0.data_order"),
                                      world.pad, b)
                state = {"state_dict": model.state_dict(), "final_loss": float(np.mean(losses[-50:]))}
                run.cache.put("pi0", key, state)
            model.load_state_dict(state["state_dict"])
            st["params"] = n_params(model)
            st["final_loss"] = state["final_loss"]
        return model.to(run.device).eval()

    def pi0_name(self, cfg: Config) -> str:
        return f"{cfg.policy.hidden}x{cfg.policy.layers}"

    def new_rm(self, run: Run, world: World, size: str, seed: int) -> RewardModel:
        """An untrained GPT-NeoX proxy of ``size`` (initialised from ``seed``)."""
        hidden, layers = parse_size(size)
        return build_rm(len(world.vocab), hidden, layers, world.prompt_len + run.cfg.world.max_new_tokens + 1, seed)

    def proxy_lr(self, cfg: Config, size: str) -> float:
        """Its own rate in rm.lrs, else rm.lr scaled down above rm.lr_width."""
        return rm_lr(cfg.rm, *parse_size(size))

    def size_seed(self, cfg: Config, size: str) -> tuple[int, int]:
        """The two integers that stand for a proxy size in seeds: (hidden, layers)."""
        return parse_size(size)

    def train_cost(self, cfg: Config, world: World, size: str, n: int) -> float:
        """Its pairs (and its language-model pretraining's sequences, as pairs over all epochs) times its trunk's
        parameters plus 20,000 (a training step's fixed cost, measured on this project's 2-core machine)."""
        hidden, layers = parse_size(size)
        pairs = n + cfg.rm.pretrain_steps * cfg.policy.batch_size / (2 * cfg.rm.epochs)
        return pairs * (12 * layers * hidden ** 2 + 2 * len(world.vocab) * hidden + 20_000)


class HFBuilder:
    """Hugging Face checkpoints: the world read from hf.prompts and the policy's tokenizer (rebuilt each run), pi0
    the hf.policy checkpoint as it is, each proxy an hf.proxies checkpoint's base model with a fresh scalar head."""
    kind = "hf"

    def world(self, run: Run) -> World:
        from ..world.hf import HFWorld
        with run.stage("world") as st:
            st["kind"] = "hf"
            world = HFWorld(run.cfg.hf, run.cfg.world.max_new_tokens, run.cfg.run.seed, run.device, run.cache)
            st.update(prompts=len(world.texts), prompt_tokens=world.prompt_len)
        return world

    def pi0(self, run: Run, world: World, policy_cfg=None, name: str = "pi0") -> torch.nn.Module:
        from ..world.hf import load_causal_lm
        with run.stage(name) as st:
            model = load_causal_lm(run.cfg.hf.policy, run.cfg.hf, run.device)
            world.check_fits(model, "hf.policy")
            st.update(cached=True, params=n_params(model))
        return model.eval()

    def pi0_name(self, cfg: Config) -> str:
        return Path(cfg.hf.policy.rstrip("/")).name

    def new_rm(self, run: Run, world: World, size: str, seed: int) -> RewardModel:
        """The named hf.proxies checkpoint's base model with a fresh scalar head (initialised from ``seed``)."""
        from ..world.hf import load_backbone
        c = run.cfg
        path = dict(zip(family_sizes(c), c.hf.proxies))[size]
        backbone = load_backbone(path, c.hf, run.device)
        world.check_fits(backbone, "hf.proxies")
        torch.manual_seed(seed)
        return RewardModel(backbone, backbone.config.hidden_size).eval()

    def proxy_lr(self, cfg: Config, size: str) -> float:
        return cfg.rm.lr

    def size_seed(self, cfg: Config, size: str) -> tuple[int, int]:
        """A hash of the checkpoint's name, and 0."""
        from ..world.hf import name_seed
        return name_seed(size), 0

    def train_cost(self, cfg: Config, world: World, size: str, n: int) -> float:
        """By its pairs alone."""
        return float(n)


TOY, HF = ToyBuilder(), HFBuilder()


def builder(cfg: Config) -> ToyBuilder | HFBuilder:
    """The world a run is in: the Hugging Face world when hf.policy names a checkpoint, else the toy world."""
    return HF if cfg.hf.policy else TOY

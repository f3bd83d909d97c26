"""Proxies whose backbone first learns the world's corpus as a language model (rm.pretrain_steps; Gao et al.'s
proxies start from pretrained LMs)."""
import math

import pytest
import torch

from overopt.config import ConfigError, load_config
from overopt.models.reward import build_rm
from overopt.pipeline.build import build_world
from overopt.pipeline.proxies import pretrain_lr, pretrained_rm, proxy_key, train_cost
from overopt.pipeline.run import Run


def test_a_pretrained_proxy_starts_from_a_language_model_of_the_world(tmp_path):
    cfg = load_config("smoke", overrides=[f"run.cache_dir={tmp_path / 'cache'}", "rm.pretrain_steps=80"])
    run = Run(cfg, tmp_path / "out", quiet=True)
    world = build_world(run)
    rm = pretrained_rm(run, world, "8x1", seed=7)
    first = run.timings["lm 8x1"]
    assert not first["cached"]
    # it learned the corpus: next-token loss well below a uniform guess over the vocabulary (an untrained LM's)
    assert first["final_loss"] < math.log(len(world.vocab)) - 1.0
    scratch = build_rm(len(world.vocab), 8, 1, world.prompt_len + cfg.world.max_new_tokens + 1, 7)
    assert not torch.equal(rm.backbone.embed_in.weight, scratch.backbone.embed_in.weight)
    assert rm.head.weight.shape == (1, 8) and float(rm.offset) == 0.0
    # a second proxy of that size and seed (the data sweep's) reads the same language model from the cache
    again = pretrained_rm(run, world, "8x1", seed=7)
    assert run.timings["lm 8x1"]["cached"]
    assert all(torch.equal(a, b) for a, b in zip(rm.state_dict().values(), again.state_dict().values()))
    other = pretrained_rm(run, world, "8x1", seed=8)  # another member's seed: another language model
    assert not torch.equal(other.backbone.embed_in.weight, rm.backbone.embed_in.weight)


def test_pretraining_is_keyed_costed_and_checked():
    scratch = load_config("smoke")
    pre = load_config("smoke", overrides=["rm.pretrain_steps=80", "rm.lr_width=16"])
    # proxies from scratch keep their keys whatever rm.pretrain_steps' default; pretrained ones get their own
    assert proxy_key(scratch, "8x1", 600) == proxy_key(load_config("smoke", overrides=["rm.pretrain_steps=0"]), "8x1", 600)
    assert proxy_key(pre, "8x1", 600) != proxy_key(load_config("smoke", overrides=["rm.lr_width=16"]), "8x1", 600)
    # pi0's rate, scaled down above rm.lr_width like the proxies' own
    assert pretrain_lr(pre, "8x1") == pytest.approx(pre.policy.lr)
    assert pretrain_lr(pre, "32x1") == pytest.approx(pre.policy.lr / 2)
    # its sequences count as pairs over all epochs: 80 steps x 32 / (2 x 1) = 1,280 pairs more than 600
    world = type("W", (), {"vocab": range(100)})()
    assert train_cost(pre, world, "8x1", 600) == pytest.approx(train_cost(scratch, world, "8x1", 600) * 1880 / 600)
    with pytest.raises(ConfigError, match="config key 'rm.pretrain_steps' must be an integer >= 0, got -1"):
        load_config("smoke", overrides=["rm.pretrain_steps=-1"])

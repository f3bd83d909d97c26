"""Reward models as TRL reward_funcs: the same numbers as overopt's own scoring, and gold logged at weight 0."""
import json
import logging
import warnings

import numpy as np
import pytest
import torch

from overopt.config import GoldConfig, WorldConfig
from overopt.models.reward import build_rm, score
from overopt.online.trladapter import gold_func, reward_func, toy_reward_funcs
from overopt.world.toy import PAD, ToyWorld


@pytest.fixture(scope="module")
def world():
    return ToyWorld(WorldConfig(n_names=2, n_bigram=500, eval_prompts=20), seed=0)


def test_text_rewards_match_scores_on_ids(world):
    rng = np.random.default_rng(0)
    pidx, resp = world.corpus(12, rng)
    rm = build_rm(len(world.vocab), 8, 1, world.prompt_len + resp.shape[1] + 1, seed=0)
    prompts = [world.prompt_text(i) for i in pidx]
    texts = [world.decode(r) for r in resp]
    want = score(rm, torch.tensor(world.prompt_ids[pidx]), torch.tensor(resp), PAD)
    np.testing.assert_allclose(reward_func(world, rm, "proxy")(prompts, texts), want, atol=1e-5)
    norm = (0.5, 2.0)
    g, _ = world.gold(pidx, resp, GoldConfig(), norm)
    np.testing.assert_allclose(gold_func(world, GoldConfig(), norm)(prompts, texts), g, atol=1e-9)
    funcs, weights = toy_reward_funcs(world, proxy=rm, gold=(GoldConfig(), norm))
    assert [f.__name__ for f in funcs] == ["proxy", "gold"] and weights == [1.0, 0.0]


def test_trl_run_logs_gold_at_weight_zero(world, tmp_path):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import RLOOConfig, RLOOTrainer

    from overopt.models.policy import build_lm

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    m = build_lm(len(world.vocab), 16, 1, 2, 64, 0)
    m.generation_config.top_k = None
    m.save_pretrained(tmp_path / "m")
    world.tokenizer().save_pretrained(tmp_path / "m")
    rm = build_rm(len(world.vocab), 8, 1, 64, seed=1)
    funcs, weights = toy_reward_funcs(world, proxy=rm, gold=(GoldConfig(), (0.0, 1.0)))
    args = RLOOConfig(output_dir=str(tmp_path / "out"), per_device_train_batch_size=8, num_generations=4,
                      max_completion_length=12, beta=0.05, learning_rate=1e-3, max_steps=3, logging_steps=1,
                      save_strategy="steps", save_steps=3, report_to=[], use_cpu=True, seed=0, temperature=1.0,
                      top_k=0, disable_tqdm=True, bf16=False, reward_weights=weights)
    ds = Dataset.from_dict({"prompt": [world.prompt_text(i) for i in world.train_prompt_idx[:32]]})
    RLOOTrainer(model=AutoModelForCausalLM.from_pretrained(tmp_path / "m"), reward_funcs=funcs, args=args,
                train_dataset=ds, processing_class=world.tokenizer()).train()
    logging.disable(logging.NOTSET)
    hist = [h for h in json.loads((tmp_path / "out" / "checkpoint-3" / "trainer_state.json").read_text())
            ["log_history"] if "reward" in h]
    assert len(hist) == 3
    for h in hist:  # the optimized reward is the proxy alone; gold is there, logged
        assert h["reward"] == pytest.approx(h["rewards/proxy/mean"], abs=1e-5)
        assert "rewards/gold/mean" in h and h["rewards/gold/mean"] != h["reward"]

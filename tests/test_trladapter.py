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


def run_trl(world, tmp_path, trainer="rloo", gold=None, max_steps=3, save_steps=3, prompts=32, callbacks=()):
    """A real TRL trainer on a tiny GPT-NeoX of the toy world for a few steps, a toy proxy as its reward (and gold at
    weight 0); saves into tmp_path/out and returns the trainer. RLOO with a KL penalty of 0.05; GRPO at TRL's
    defaults that matter here (beta 0: no KL term and no KL logged; DAPO's loss; group-std scaling)."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

    from overopt.models.policy import build_lm

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    m = build_lm(len(world.vocab), 16, 1, 2, 64, 0)
    m.generation_config.top_k = None
    m.save_pretrained(tmp_path / "m")
    world.tokenizer().save_pretrained(tmp_path / "m")
    funcs, weights = toy_reward_funcs(world, proxy=build_rm(len(world.vocab), 8, 1, 64, seed=1), gold=gold)
    Config, Trainer, beta = {"rloo": (RLOOConfig, RLOOTrainer, 0.05), "grpo": (GRPOConfig, GRPOTrainer, 0.0)}[trainer]
    args = Config(output_dir=str(tmp_path / "out"), per_device_train_batch_size=8, num_generations=4,
                  max_completion_length=12, beta=beta, learning_rate=1e-3, max_steps=max_steps, logging_steps=1,
                  save_strategy="steps", save_steps=save_steps, report_to=[], use_cpu=True, seed=0,
                  temperature=1.0, top_k=0, disable_tqdm=True, bf16=False, reward_weights=weights)
    ds = Dataset.from_dict({"prompt": [world.prompt_text(i) for i in world.train_prompt_idx[:prompts]]})
    tr = Trainer(model=AutoModelForCausalLM.from_pretrained(tmp_path / "m"), reward_funcs=funcs, args=args,
                 train_dataset=ds, processing_class=world.tokenizer(), callbacks=list(callbacks))
    tr.train()
    logging.disable(logging.NOTSET)
    return tr


def test_callback_with_a_judge_inside_grpo_at_beta_zero_measures_its_kl_and_names_the_checkpoint(world, tmp_path):
    """GRPO with beta = 0 logs no KL: the callback measures the KL of its own completions against the starting model
    at every save (so the judge's checkpoints have a KL axis), spends its label budget and stops training at the
    third save, naming the best judged checkpoint, which is on disk."""
    from overopt.online.callback import OveroptCallback

    def judge(prompts, completions):  # a pointwise judge: fewer words is better
        return [-len(c.split()) for c in completions]

    prompts = [world.prompt_text(i) for i in world.eval_prompt_idx[:10]]
    cb = OveroptCallback(judge=judge, judge_prompts=prompts, budget=12, strategy="fixed", per_eval=4,
                         max_new_tokens=12)
    tr = run_trl(world, tmp_path, "grpo", max_steps=10, save_steps=2, prompts=48, callbacks=[cb])
    logged = [h for h in tr.state.log_history if "reward" in h]
    assert logged and not any("kl" in h for h in logged)  # TRL's GRPO at beta 0 logs no KL
    assert tr.state.global_step == 6  # stopped at the third save, not at max_steps
    w = cb.judged.watch
    assert w.spent == 12 and w.history[-1].state == "stop"
    assert [s for s, _ in cb.kl_measured] == [2.0, 4.0, 6.0]
    assert all(kl > 0 for _, kl in cb.kl_measured)  # the policy moved away from where it started
    assert [c.kl for c in w.checkpoints] == pytest.approx([kl for _, kl in cb.kl_measured])
    best = max(w.checkpoints, key=lambda c: c.mean)
    assert cb.best_checkpoint == str(tmp_path / "out" / f"checkpoint-{int(best.step)}")
    assert (tmp_path / "out" / f"checkpoint-{int(best.step)}").is_dir()


def test_trl_run_logs_gold_at_weight_zero(world, tmp_path):
    run_trl(world, tmp_path, "rloo", gold=(GoldConfig(), (0.0, 1.0)))
    hist = [h for h in json.loads((tmp_path / "out" / "checkpoint-3" / "trainer_state.json").read_text())
            ["log_history"] if "reward" in h]
    assert len(hist) == 3
    for h in hist:  # the optimized reward is the proxy alone; gold is there, logged
        assert h["reward"] == pytest.approx(h["rewards/proxy/mean"], abs=1e-5)
        assert "rewards/gold/mean" in h and h["rewards/gold/mean"] != h["reward"]


def test_callback_with_a_judge_inside_a_trl_trainer_spends_its_budget_and_names_the_checkpoint(world, tmp_path):
    """RLOO for 6 steps saving every 2: each save is judged with 4 generated completions (fixed strategy, budget 12);
    the third save spends the budget and stops training; the rollback checkpoint is the best judged one, on disk."""
    from overopt.online.callback import OveroptCallback

    calls = []

    def judge(prompts, completions):  # a pointwise judge: fewer words is better
        calls.append(len(completions))
        return [-len(c.split()) for c in completions]

    prompts = [world.prompt_text(i) for i in world.eval_prompt_idx[:10]]
    cb = OveroptCallback(judge=judge, judge_prompts=prompts, budget=12, strategy="fixed", per_eval=4,
                         max_new_tokens=12)
    run_trl(world, tmp_path, "rloo", max_steps=6, save_steps=2, prompts=48, callbacks=[cb])
    w = cb.judged.watch
    assert calls == [4, 4, 4] and w.spent == 12
    assert [h.step for h in w.history] == [2, 4, 6] and [h.labels for h in w.history] == [4] * 3
    assert w.history[-1].state == "stop" and "budget (12) is spent" in w.history[-1].reasons[-1]
    best = max(w.checkpoints, key=lambda c: c.mean)
    assert cb.best_checkpoint == str(tmp_path / "out" / f"checkpoint-{int(best.step)}")
    assert (tmp_path / "out" / f"checkpoint-{int(best.step)}").is_dir()
    assert all(c.kl >= 0 for c in w.checkpoints) and w.checkpoints[-1].kl > 0  # the logged KL at each save


def test_callback_with_a_pairwise_judge_compares_with_the_starting_models_completions(world, tmp_path):
    """A pairwise judge gets each completion beside one the model wrote before training (sampled once, at the
    start): the labels are wins, ties and losses, 4 per save."""
    from overopt.online.callback import OveroptCallback

    seen = []

    def judge(prompts, completions, references):  # shorter than the reference wins
        seen.append((len(prompts), len(completions), len(references)))
        return [1.0 if len(c) < len(r) else 0.5 if len(c) == len(r) else 0.0 for c, r in zip(completions, references)]

    prompts = [world.prompt_text(i) for i in world.eval_prompt_idx[:5]]
    cb = OveroptCallback(judge=judge, judge_prompts=prompts, budget=8, strategy="fixed", per_eval=4,
                         max_new_tokens=12, pairwise=True, references=3)
    run_trl(world, tmp_path, "rloo", max_steps=4, save_steps=2, callbacks=[cb])
    assert [len(r) for r in cb.judged.refs] == [3] * 5 and seen == [(4, 4, 4)] * 2
    w = cb.judged.watch
    assert w.spent == 8 and all(set(c.labels) <= {0.0, 0.5, 1.0} for c in w.checkpoints)


def test_callback_measures_the_kl_where_the_trainer_logs_none(world):
    """TRL's GRPO with beta = 0 logs no KL: the callback keeps the starting model and measures the KL of its own
    completions at each save; the monitor judges on steps until then and on that KL after."""
    import math
    from types import SimpleNamespace

    from transformers import TrainerControl, TrainerState

    from overopt.models.policy import build_lm
    from overopt.online.callback import OveroptCallback

    model, tok = build_lm(len(world.vocab), 16, 1, 2, 64, 0), world.tokenizer()
    prompts = [world.prompt_text(i) for i in world.eval_prompt_idx[:6]]
    cb = OveroptCallback(kl_prompts=prompts)  # measuring is on wherever there are prompts to sample
    state, control, args = TrainerState(), TrainerControl(), SimpleNamespace(output_dir="out")
    cb.on_train_begin(args, state, control, model=model, processing_class=tok)
    state.global_step = 1
    cb.on_log(args, state, control, logs={"reward": 0.1, "loss": 0.3})
    assert math.isnan(cb.monitor.kl[-1])  # no KL yet: judged on steps
    cb.on_save(args, state, control, model=model, processing_class=tok)
    assert cb.kl_measured[0][0] == 1 and abs(cb.kl_measured[0][1]) < 1e-6  # the model has not moved
    kls = []
    for step, scale in ((2, 0.05), (3, 0.2)):  # the model moves away from where it started
        with torch.no_grad():
            torch.manual_seed(step)
            for p in model.parameters():
                p.add_(scale * torch.randn_like(p))
        state.global_step = step
        cb.on_save(args, state, control, model=model, processing_class=tok)
        cb.on_log(args, state, control, logs={"reward": 0.1 * step})
        kls.append(cb.kl_measured[-1][1])
        assert cb.monitor.kl[-1] == kls[-1]  # the line without a KL gets the measured one
    assert 0 < kls[0] < kls[1]
    assert [s for s, _ in cb.kl_measured] == [1, 2, 3]

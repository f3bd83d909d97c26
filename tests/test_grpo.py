"""GRPO's objective (optimizers.grpo): advantages and each aggregation by hand, and loss and gradient equal to TRL's
GRPOTrainer on the same model, batch and old log-probs for every option (the dev extra)."""
import logging
import warnings

import numpy as np
import pytest
import torch

from overopt.optimizers.grpo import GRPOSettings, aggregate_loss, group_advantages, grpo_token_loss, log_importance


def test_group_advantages_by_hand():
    r = torch.tensor([[1.0, 3.0], [2.0, 2.0]])
    # group: (r - mean) / (std + 1e-4), std Bessel-corrected: sqrt(2) for the first group, 0 for the second
    want = torch.tensor([[-1 / (2 ** 0.5 + 1e-4), 1 / (2 ** 0.5 + 1e-4)], [0.0, 0.0]])
    torch.testing.assert_close(group_advantages(r, "group"), want)
    torch.testing.assert_close(group_advantages(r, "none"), torch.tensor([[-1.0, 1.0], [0.0, 0.0]]))
    sd = float(np.std([1, 3, 2, 2], ddof=1))
    torch.testing.assert_close(group_advantages(r, "batch"), torch.tensor([[-1.0, 1.0], [0.0, 0.0]]) / (sd + 1e-4))
    with pytest.raises(ValueError, match="scale_rewards"):
        group_advantages(r, "rank")
    with pytest.raises(ValueError, match=">= 2"):
        group_advantages(r[:, :1], "group")


def test_aggregations_by_hand():
    per = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]], dtype=torch.bool)
    assert float(aggregate_loss(per, mask, "grpo", 5)) == pytest.approx((2.0 + 4.0) / 2)   # sequence means, then mean
    assert float(aggregate_loss(per, mask, "bnpo", 5)) == pytest.approx(10.0 / 4)          # token mean
    assert float(aggregate_loss(per, mask, "dapo", 5, 8.0)) == pytest.approx(10.0 / 8)     # over the batch's tokens
    assert float(aggregate_loss(per, mask, "dr_grpo", 5)) == pytest.approx(10.0 / (2 * 5))  # over B x max length
    with pytest.raises(ValueError, match="loss_type"):
        aggregate_loss(per, mask, "mean", 5)


def test_clipping_and_the_sequence_ratio_by_hand():
    new = torch.tensor([[0.0, 0.0]])
    old = torch.tensor([[-0.5, 0.5]])  # token ratios e^0.5 and e^-0.5
    mask = torch.ones(1, 2, dtype=torch.bool)
    adv = torch.tensor([1.0])
    s = GRPOSettings(epsilon=0.2, epsilon_high=0.28)
    # A > 0: the ratio is capped at 1 + eps_high above, and min() keeps the lower ratio below
    want = -torch.tensor([[1.28, np.exp(-0.5)]], dtype=torch.float32)
    torch.testing.assert_close(grpo_token_loss(new, old, adv, mask, s), want)
    seq = log_importance(new, old, mask, "sequence")  # the mean token log-ratio: 0, so the ratio is 1
    torch.testing.assert_close(seq, torch.zeros(1, 1))
    g = GRPOSettings(importance_sampling_level="sequence", beta=0.5, use_bias_correction_kl=False)
    ref = torch.tensor([[0.1, -0.2]])
    k3 = (ref - new).exp() - (ref - new) - 1
    torch.testing.assert_close(grpo_token_loss(new, old, adv, mask, g, ref), -1.0 + 0.5 * k3)
    # the bias correction multiplies the KL term by the (here token) ratio, so on-policy its value is unchanged
    c = GRPOSettings(beta=0.5)
    torch.testing.assert_close(grpo_token_loss(old, old, adv, mask, c, ref),
                               grpo_token_loss(old, old, adv, mask, GRPOSettings(beta=0.5, use_bias_correction_kl=False), ref))


# ------------------------------------------------------------------ against TRL's GRPOTrainer


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    pytest.importorskip("trl")
    from overopt.config import WorldConfig
    from overopt.models.policy import build_lm
    from overopt.world.toy import ToyWorld

    warnings.filterwarnings("ignore")
    world = ToyWorld(WorldConfig(n_names=2, n_bigram=500, eval_prompts=20), seed=0)
    path = tmp_path_factory.mktemp("grpo") / "m"
    m = build_lm(len(world.vocab), 16, 1, 2, 64, 0)
    m.generation_config.top_k = None
    m.save_pretrained(path)
    world.tokenizer().save_pretrained(path)
    return world, path


def trl_trainer(world, path, out, **kw):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import GRPOConfig, GRPOTrainer

    logging.disable(logging.WARNING)
    args = GRPOConfig(output_dir=str(out), per_device_train_batch_size=8, num_generations=4, max_completion_length=12,
                      report_to=[], use_cpu=True, seed=0, temperature=1.0, top_k=0, disable_tqdm=True, bf16=False,
                      **kw)
    ds = Dataset.from_dict({"prompt": [world.prompt_text(i) for i in world.train_prompt_idx[:8]]})
    tr = GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(path), reward_funcs=lambda completions, **k: [0.0] *
                     len(completions), args=args, train_dataset=ds, processing_class=world.tokenizer())
    logging.disable(logging.NOTSET)
    return tr


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_advantages_equal_trl(setup, tmp_path, scale):
    """TRL computes its advantages from the rewards of completions it generates itself: the same rewards through
    group_advantages give the same numbers."""
    world, path = setup
    seen = []

    def reward(completions, **kw):
        r = [float(len(c.split()) % 3) + 0.1 * i for i, c in enumerate(completions)]
        seen.append(r)
        return r

    tr = trl_trainer(world, path, tmp_path, scale_rewards=scale)
    tr.reward_funcs[0] = reward
    tr.reward_func_names = ["reward"]
    tr.model.train()
    out = tr._generate_and_score_completions([{"prompt": world.prompt_text(i)} for i in world.train_prompt_idx[:2]
                                              for _ in range(4)])
    ours = group_advantages(torch.tensor(seen[0]).view(-1, 4), scale).reshape(-1)
    torch.testing.assert_close(ours, out["advantages"], atol=1e-6, rtol=1e-6)


def fixed_batch(world, seed=0):
    """8 completions of 2 prompts x 4, random tokens ending in EOS at random lengths then padding; old and reference
    log-probs off by random amounts so ratios clip and the KL term is not zero."""
    from overopt.world.toy import EOS, PAD
    g = torch.Generator().manual_seed(seed)
    prompts = torch.tensor(world.prompt_ids[world.train_prompt_idx[:2]]).repeat_interleave(4, 0)
    tokens = torch.randint(10, len(world.vocab), (8, 12), generator=g)
    tokens[(tokens == EOS) | (tokens == PAD)] = 11
    for i, n in enumerate(torch.randint(3, 12, (8,), generator=g).tolist()):
        tokens[i, n] = EOS
        tokens[i, n + 1:] = PAD
    rewards = torch.randn(8, generator=g)
    return prompts, tokens, rewards, torch.randn(8, 12, generator=g) * 0.3, torch.randn(8, 12, generator=g) * 0.3


OPTIONS = {"token-beta0": dict(importance_sampling_level="token", beta=0.0, epsilon_high=0.0),
           "token-beta": dict(importance_sampling_level="token", beta=0.04, epsilon_high=0.0),
           "token-beta-uncorrected": dict(importance_sampling_level="token", beta=0.04, use_bias_correction_kl=False),
           "sequence-beta-cliphigher": dict(importance_sampling_level="sequence", beta=0.04, epsilon_high=0.28)}


@pytest.mark.parametrize("options", OPTIONS.values(), ids=OPTIONS.keys())
@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dapo", "dr_grpo"])
def test_loss_and_gradient_equal_trl(setup, tmp_path, loss_type, options):
    from transformers import AutoModelForCausalLM

    from overopt.models.policy import response_logprobs
    from overopt.world.toy import PAD

    world, path = setup
    s = GRPOSettings(loss_type=loss_type, **options)
    tr = trl_trainer(world, path, tmp_path, loss_type=loss_type, beta=s.beta, epsilon=s.epsilon,
                     use_bias_correction_kl=s.use_bias_correction_kl,
                     epsilon_high=s.epsilon_high or None, importance_sampling_level=s.importance_sampling_level)
    tr.current_gradient_accumulation_steps = 1
    prompts, tokens, rewards, d_old, d_ref = fixed_batch(world)
    mask = tokens != PAD
    ours_model = AutoModelForCausalLM.from_pretrained(path)
    new = response_logprobs(ours_model, prompts, tokens, PAD)  # TRL keeps the padding token in the softmax
    old, ref = (new.detach() + d_old) * mask, (new.detach() + d_ref) * mask
    adv = group_advantages(rewards.view(-1, 4), "group").reshape(-1)
    loss = aggregate_loss(grpo_token_loss(new, old, adv, mask, s, ref), mask, loss_type, 12, float(mask.sum()))
    loss.backward()

    inputs = {"prompt_ids": prompts, "prompt_mask": torch.ones_like(prompts), "completion_ids": tokens,
              "completion_mask": mask.long(), "advantages": adv, "old_per_token_logps": old,
              "ref_per_token_logps": ref, "num_items_in_batch": mask.sum()}
    tr.model.train()
    trl_loss = tr._compute_loss(tr.model, inputs)
    trl_loss.backward()
    assert float(loss.detach()) == pytest.approx(float(trl_loss.detach()), abs=1e-5)
    grads = dict(tr.model.named_parameters())
    worst = max(float((p.grad - grads[n].grad).abs().max()) for n, p in ours_model.named_parameters())
    assert worst < 1e-5


# ------------------------------------------------------------------ the study's numbers and claims


def test_peaks_gaps_and_claims_on_curves_whose_truth_is_built():
    """Curves built by hand: the peak quantities and the equal-KL gap by hand, and each claim's verdict where the
    resamples agree, and "inconclusive" where they do not."""
    import pandas as pd

    from overopt.laws.claims import ClaimInputs, claim_table
    from overopt.laws.claims.grpo import grpo_claims
    from overopt.laws.curves import CurveId
    from overopt.studies.grpo import curve_replicates, equal_kl_gap, grpo_summary, peak_replicates

    kl = np.array([0.0, 1.0, 4.0, 9.0])
    g = pd.DataFrame({"kl": kl, "step": [0, 10, 20, 30]})
    boot = np.array([[0, 1, 3, 2], [0, 2, 1, 0.5]], dtype=float)
    r = peak_replicates(g, boot)
    assert r["gold_peak"].tolist() == [3, 2] and r["kl_peak"].tolist() == [4, 1] and r["step_peak"].tolist() == [20, 10]
    assert r["fall"].tolist() == [1, 1.5]
    # RLOO at d = 0, 1, 2, 3 with gold 0, 1, 2, 3; GRPO at d = 1, 2.5, 4: only the first two lie in RLOO's range
    assert float(equal_kl_gap(kl, np.arange(4.0), [1.0, 6.25, 16.0], [1.5, 2.0, 9.0])) == pytest.approx(
        ((1.5 - 1) + (2.0 - 2.5)) / 2)

    rng = np.random.default_rng(0)
    rows, boots = [], {}
    params = {"6x1": 1000, "16x1": 4000, "64x1": 30000}
    for i, (rm, n) in enumerate(params.items()):
        # RLOO peaks at evaluation 2; GRPO (base, and beta 0.04 falling half as far) at 1, 2 or 3 (KL 1, 4, 9) as the
        # proxy grows
        for variant, peak_at, fall in (("rloo", 2, 0.2), ("base", 1 + i, 1.0), ("beta=0.04", 1 + i, 0.5)):
            gold = np.where(np.arange(4) <= peak_at, np.arange(4) * 0.3, 0.3 * peak_at - fall)
            curve = f"{rm}/{variant}"
            rows += [{"curve": curve, "algo": "rloo" if variant == "rloo" else "grpo", "variant": variant, "rm": rm,
                      "rm_params": n, "step": 10 * j, "kl": kl[j], "gold": gold[j]} for j in range(4)]
            boots[CurveId("grpo", curve)] = gold + rng.normal(0, 0.001, (50, 4))
    df = pd.DataFrame(rows)
    s = grpo_summary(df, boots, 0.9)
    reps = curve_replicates(df, boots)
    base = s[s["variant"] == "base"].set_index("rm")
    assert base.loc["64x1", "kl_peak"] == 9 and base.loc["6x1", "kl_peak"] == 1 and base.loc["6x1", "step_peak"] == 10
    claims = claim_table([grpo_claims], ClaimInputs({"grpo_summary": s}, reps)).set_index(["claim", "curve"])
    size = claims.loc[("the KL at GRPO's gold peak grows with proxy size", "GRPO base, 3 proxies")]
    assert size["value"] == pytest.approx(1.0) and size["support"] == 1.0 and size["verdict"] == "holds"
    fall = claims.loc[("a GRPO variant falls further after its peak than base", "16x1/beta=0.04")]
    assert fall["value"] == pytest.approx(0.5) and fall["verdict"] == "does not hold"
    same_kl = claims.loc[("a GRPO variant peaks at a larger KL than base", "16x1/beta=0.04")]
    assert same_kl["support"] == 0 and same_kl["verdict"] == "does not hold"  # the same peak KL on every resample
    assert len(claims.loc["GRPO reaches RLOO's gold at equal KL (one frontier)"]) == 6

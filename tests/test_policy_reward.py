import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from overopt.models.policy import _filter_top_p, build_lm, response_logprobs, sample, train_lm
from overopt.models.reward import bradley_terry_loss, build_rm, score, train_rm

V, EOS, PAD = 12, 2, 0


@pytest.fixture(scope="module")
def lm():
    torch.manual_seed(0)
    return build_lm(V, 16, 1, 2, 32, seed=0)


def test_sampled_logprob_equals_recomputed_logprob(lm):
    prompts = torch.randint(3, V, (16, 5))
    s = sample(lm, prompts, 10, EOS, PAD, generator=torch.Generator().manual_seed(1))
    per_token = response_logprobs(lm, prompts, s.tokens, PAD, eos_id=EOS)
    torch.testing.assert_close(per_token.sum(1), s.logprob, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(per_token, s.token_logprob, atol=1e-5, rtol=1e-5)
    ended = (s.tokens == EOS).any(1)
    assert torch.equal(s.lengths[ended], (s.tokens[ended] != PAD).sum(1))
    assert (s.lengths[~ended] == 10).all() and (~ended).any()  # cut at max_new_tokens without an end token


def test_left_padding_leaves_logprobs_unchanged(lm):
    prompts = torch.randint(3, V, (4, 5))
    resp = torch.randint(3, V, (4, 6))
    plain = response_logprobs(lm, prompts, resp, PAD)
    padded = torch.cat([torch.full((4, 3), PAD), prompts], 1)
    mask = torch.cat([torch.zeros(4, 3, dtype=torch.long), torch.ones(4, 5, dtype=torch.long)], 1)
    torch.testing.assert_close(response_logprobs(lm, padded, resp, PAD, prompt_mask=mask), plain,
                               atol=1e-5, rtol=1e-5)
    s1 = sample(lm, prompts, 8, EOS, PAD, generator=torch.Generator().manual_seed(3))
    s2 = sample(lm, padded, 8, EOS, PAD, attention_mask=mask, generator=torch.Generator().manual_seed(3))
    assert torch.equal(s1.tokens, s2.tokens)


def test_sampler_frequencies_match_the_model_distribution(lm):
    prompt = torch.randint(3, V, (1, 5)).repeat(20000, 1)
    s = sample(lm, prompt, 1, EOS, PAD, generator=torch.Generator().manual_seed(2))
    freq = torch.bincount(s.tokens[:, 0], minlength=V).float() / len(prompt)
    logits = lm(prompt[:1]).logits[0, -1]
    logits[PAD] = float("-inf")  # the sampler never emits padding
    p = logits.softmax(-1)
    assert freq[PAD] == 0
    assert (freq - p).abs().max() < 0.015


def test_top_p_keeps_the_smallest_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = torch.isfinite(_filter_top_p(logits, 0.7))
    assert kept.tolist() == [[True, True, False, False]]
    assert torch.isfinite(_filter_top_p(logits, 1.0)).all()


def test_lm_training_lowers_the_loss():
    torch.manual_seed(0)
    model = build_lm(V, 16, 1, 2, 32, seed=0)
    prompts = torch.full((64, 3), 5)
    responses = torch.tensor([[7, 8, 9, EOS]] * 64)
    losses = train_lm(model, prompts, responses, steps=60, batch_size=16, lr=1e-2, seed=0, pad_id=PAD)
    assert losses[-1] < 0.2 * losses[0]


def test_bradley_terry_loss_against_hand_computed_values():
    loss = bradley_terry_loss(torch.tensor([1.0, 0.0, 2.0]), torch.tensor([0.0, 0.0, -1.0]))
    want = [math.log(1 + math.exp(-1)), math.log(2), math.log(1 + math.exp(-3))]
    torch.testing.assert_close(loss, torch.tensor(want))


def test_reward_model_learns_a_token_preference_and_scores_the_last_real_token():
    torch.manual_seed(0)
    rm = build_rm(V, 16, 1, 32, seed=0)
    n = 256
    prompts = torch.randint(3, V, (n, 4))
    good = torch.randint(3, V, (n, 5)); good[:, 2] = 11        # chosen responses contain token 11
    bad = torch.randint(3, 11, (n, 5))
    good = torch.cat([good, torch.full((n, 1), EOS), torch.full((n, 2), PAD)], 1)
    bad = torch.cat([bad, torch.full((n, 1), EOS), torch.full((n, 2), PAD)], 1)
    before = (score(rm, prompts, good, PAD) > score(rm, prompts, bad, PAD)).mean()
    train_rm(rm, prompts, good, bad, epochs=8, batch_size=32, lr=3e-3, weight_decay=0.0, seed=0, pad_id=PAD)
    after = (score(rm, prompts, good, PAD) > score(rm, prompts, bad, PAD)).mean()
    assert after > 0.95 and after > before
    # trailing padding must not change a score
    extra = torch.cat([good, torch.full((n, 3), PAD)], 1)
    np.testing.assert_allclose(score(rm, prompts, extra, PAD), score(rm, prompts, good, PAD), atol=1e-5)


@pytest.mark.parametrize("parallel,rotary_pct", [(True, 0.25), (False, 0.5), (True, 1.0)])
def test_lean_decoder_matches_the_model_forward(parallel, rotary_pct):
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    from overopt.models.fastdecode import NeoXDecoder
    torch.manual_seed(0)
    cfg = GPTNeoXConfig(vocab_size=V, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=32, use_parallel_residual=parallel,
                        rotary_pct=rotary_pct, attn_implementation="sdpa")
    model = GPTNeoXForCausalLM(cfg).eval()
    seq = torch.randint(3, V, (6, 12))
    full = model(input_ids=seq).logits  # [6, 12, V]
    dec = NeoXDecoder.maybe(model, batch=6, max_len=12)
    assert dec is not None
    torch.testing.assert_close(dec.prefill(seq[:, :5]), full[:, 4], atol=1e-5, rtol=1e-5)
    for t in range(5, 8):
        torch.testing.assert_close(dec.step(seq[:, t]), full[:, t], atol=1e-5, rtol=1e-5)
    keep = torch.tensor([4, 1, 0])  # drop rows, reorder the rest: the cache follows
    dec.select(keep)
    for t in range(8, 12):
        torch.testing.assert_close(dec.step(seq[keep, t]), full[keep, t], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(NeoXDecoder.maybe(model, 6, 12).logits(seq), full, atol=1e-5, rtol=1e-5)
    # Rows with padding after their first n tokens: the layers run on real tokens only, the same logits there
    n = torch.tensor([12, 3, 7, 1, 9, 5])
    real = torch.arange(12)[None, :] < n[:, None]
    packed = NeoXDecoder.maybe(model, 6, 12).logits(seq, 2, n)
    torch.testing.assert_close(packed[real[:, 2:]], full[:, 2:][real[:, 2:]], atol=1e-5, rtol=1e-5)
    assert (packed[~real[:, 2:]] == 0).all()
    # Training mode without dropout: the same logits and the same gradients, through the lean forward.
    model.train()
    dec = NeoXDecoder.maybe(model, 6, 12)
    assert dec is not None
    target = torch.randint(3, V, (6, 12)).masked_fill(~real, -100)
    grads = []
    for logits_fn in (lambda: model(input_ids=seq).logits, lambda: dec.logits(seq),
                      lambda: dec.logits(seq, 0, n)):
        model.zero_grad()
        F.cross_entropy(logits_fn().reshape(-1, V), target.reshape(-1)).backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b, c in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(a, c, atol=1e-5, rtol=1e-4)
    cfg.attention_dropout = 0.1  # dropout active: the model's own forward
    assert NeoXDecoder.maybe(GPTNeoXForCausalLM(cfg).train(), 6, 12) is None


@pytest.mark.parametrize("layers,parallel", [(1, True), (3, True), (2, False)])
def test_lean_reward_model_matches_the_backbone_forward(layers, parallel):
    """The reward model's lean trunk (last layer run at the read position only) and its prompt-once scoring give
    the scores and the gradients of the Hugging Face forward with its attention mask."""
    from overopt.models.reward import _pack

    rm = build_rm(V, 32, layers, 24, seed=3)
    rm.backbone.config.use_parallel_residual = parallel
    for layer in rm.backbone.layers:
        layer.use_parallel_residual = parallel
    rm.offset.fill_(0.3)
    prompts = torch.randint(3, V, (4, 5)).repeat(3, 1)  # 4 distinct prompts, each 3 times
    resp = torch.randint(3, V, (12, 7))
    for i, n in enumerate([1, 2, 7, 4, 3, 7, 5, 6, 1, 2, 3, 4]):  # right-padded after n tokens
        resp[i, n:] = PAD
    seq, mask = _pack(prompts, resp, PAD)

    def hf(model):
        pos = (mask.cumsum(1) - 1).clamp(min=0)
        h = model.backbone(input_ids=seq, attention_mask=mask, position_ids=pos).last_hidden_state
        last = (resp != PAD).sum(1) + prompts.shape[1] - 1
        return model.head(h[torch.arange(12), last]).squeeze(-1) - model.offset

    with torch.no_grad():
        want = hf(rm)
        torch.testing.assert_close(rm(seq, mask), want, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(rm.score_prefixed(prompts, resp, PAD), want, atol=1e-5, rtol=1e-5)
        assert np.allclose(score(rm, prompts, resp, PAD, batch=5), want.numpy(), atol=1e-5)
    left = torch.cat([torch.zeros(12, 1, dtype=torch.long), prompts], 1)  # left-padded prompts: the model's own path
    assert rm.score_prefixed(left, resp, PAD) is None
    assert np.allclose(score(rm, left, resp, PAD), want.numpy(), atol=1e-5)
    rm.train()
    grads = []
    for fn in (lambda: hf(rm), lambda: rm(seq, mask)):
        rm.zero_grad()
        bradley_terry_loss(fn()[:6], fn()[6:]).mean().backward()
        grads.append([p.grad.clone() for p in rm.parameters() if p.grad is not None])
    assert len(grads[0]) == len(grads[1]) == len(list(rm.parameters()))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_draw_never_picks_a_zero_probability_token(monkeypatch):
    from overopt.models import policy
    probs = torch.tensor([[0.0, 0.5, 0.5, 0.0], [0.0, 0.0, 1.0, 0.0]])
    for u, want in ((0.0, [1, 2]), (1 - 2 ** -24, [2, 2]), (0.5, [2, 2]), (0.25, [1, 2])):
        monkeypatch.setattr(policy.torch, "rand", lambda *a, u=u, **k: torch.full((2, 1), u))
        assert policy._draw(probs, None).tolist() == want, u


def test_batches_that_run_out_of_memory_are_halved(monkeypatch):
    """An out-of-memory batch is halved and the results are those of a run that never ran out."""
    import overopt.models.policy as P
    from overopt.models.policy import build_lm, sample_in_batches
    from overopt.models.reward import score_rows

    lm = build_lm(20, 16, 1, 1, 32, 0)
    prompts = torch.randint(3, 20, (12, 4))
    want = sample_in_batches(lm, prompts, 12, 6, 2, 0, seed=5)
    real, calls = P.sample, []

    def tight(model, p, *a, **kw):  # more than 4 prompts at once "does not fit"
        calls.append(len(p))
        if len(p) > 4:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return real(model, p, *a, **kw)

    monkeypatch.setattr(P, "sample", tight)
    got = sample_in_batches(lm, prompts, 12, 6, 2, 0, seed=5)
    assert calls[:3] == [12, 6, 3] and got.tokens.shape[0] == 12
    # same random stream whatever the batch: only the batch boundaries differ, so compare a fresh 3-batch run
    monkeypatch.setattr(P, "sample", real)
    assert torch.equal(got.tokens, sample_in_batches(lm, prompts, 3, 6, 2, 0, seed=5).tokens)
    seen = []

    def fn(seq, mask):
        seen.append(len(seq))
        if len(seq) > 5:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return seq.float().sum(1)

    resp = torch.randint(3, 20, (12, 6))
    out = score_rows(fn, prompts, resp, 0, 12)
    assert seen[:3] == [12, 6, 3] and np.allclose(out, torch.cat([prompts, resp], 1).float().sum(1).numpy())

import itertools
import math

import torch

from overopt.measure.kl import kl_from_logits, sequence_kl, token_kl
from overopt.models.policy import build_lm, response_logprobs, sample

V, EOS, PAD, L = 5, 2, 0, 3  # tokens 1..4 can be emitted (pad never), responses of at most L tokens


def all_responses():
    """Every response of at most L tokens: ends at EOS, or is cut at L tokens."""
    out = []
    for n in range(1, L + 1):
        for body in itertools.product([1, 3, 4], repeat=n - 1):
            out.append(list(body) + [EOS])
        if n == L:
            out += [list(b) for b in itertools.product([1, 3, 4], repeat=L)]
    resp = torch.full((len(out), L), PAD)
    for i, r in enumerate(out):
        resp[i, : len(r)] = torch.tensor(r)
    return resp


def models():
    p, q = build_lm(V, 16, 1, 2, 16, seed=0), build_lm(V, 16, 1, 2, 16, seed=1)
    with torch.no_grad():  # make the two distributions clearly different
        p.get_output_embeddings().weight.mul_(30)
        q.get_output_embeddings().weight.mul_(20)
    return p, q


def test_per_token_kl_estimator_equals_exact_sequence_kl_by_enumeration():
    p, q = models()
    resp = all_responses()
    prompt = torch.tensor([[1, 3, 4]]).repeat(len(resp), 1)
    lp = response_logprobs(p, prompt, resp, PAD, eos_id=EOS).sum(1)
    lq = response_logprobs(q, prompt, resp, PAD, eos_id=EOS).sum(1)
    assert abs(lp.exp().sum().item() - 1) < 1e-5          # the enumeration covers every response
    exact = (lp.exp() * (lp - lq)).sum()
    est = sequence_kl(p, q, prompt, resp, PAD, EOS)
    assert exact > 0.05
    torch.testing.assert_close((lp.exp() * est["kl"]).sum(), exact, rtol=1e-4, atol=1e-6)  # E_pi[kl] = KL
    torch.testing.assert_close((lp.exp() * est["k1"]).sum(), exact, rtol=1e-4, atol=1e-6)  # k1 unbiased
    torch.testing.assert_close((lp.exp() * est["k3"]).sum(), exact, rtol=1e-4, atol=1e-6)  # k3 unbiased
    # and by sampling: the full-vocabulary estimate has lower variance than k1
    prompts = torch.tensor([[1, 3, 4]]).repeat(20000, 1)
    s = sample(p, prompts, L, EOS, PAD, generator=torch.Generator().manual_seed(0))
    mc = sequence_kl(p, q, prompts, s.tokens, PAD, EOS)
    assert abs(mc["kl"].mean() - exact) < 0.02
    assert mc["kl"].var() < mc["k1"].var()


def test_token_kl_hand_computed_and_zero_for_equal_distributions():
    p = torch.log(torch.tensor([[0.5, 0.5, 0.0]]))
    q = torch.log(torch.tensor([[0.25, 0.25, 0.5]]))
    torch.testing.assert_close(token_kl(p, q), torch.tensor([torch.log(torch.tensor(2.0))]))
    x = torch.randn(4, 7)
    torch.testing.assert_close(token_kl(x, x), torch.zeros(4), atol=1e-6, rtol=0)
    resp = torch.tensor([[1, 2, 0]])
    out = kl_from_logits(torch.randn(1, 3, 4), torch.randn(1, 3, 4), resp, pad_id=0)
    assert out["k3"].item() >= 0


def test_token_entropy_hand_computed():
    """Uniform over 4 tokens: ln 4; one certain token (the rest -inf, as padding is): 0; a padded position is left out."""
    from overopt.measure.kl import token_entropy
    logits = torch.tensor([[[0.0, 0.0, 0.0, 0.0], [5.0, float("-inf"), float("-inf"), float("-inf")],
                            [1.0, 2.0, 3.0, 4.0]]])
    mask = torch.tensor([[True, True, False]])
    torch.testing.assert_close(token_entropy(logits, mask), torch.tensor([math.log(4) / 2]))

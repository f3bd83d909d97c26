import itertools
import math

import numpy as np
import pytest
import torch

from overopt.measure import bon


def brute_force(proxy, values, n):
    """Mean over prompts of the average value of the proxy-best over every n-subset."""
    out = []
    for p, v in zip(proxy, values):
        subsets = list(itertools.combinations(range(len(p)), n))
        out.append(np.mean([v[max(s, key=lambda i: p[i])] for s in subsets]))
    return float(np.mean(out))


def test_estimator_matches_enumeration_of_all_subsets():
    rng = np.random.default_rng(0)
    proxy, values = rng.normal(size=(5, 9)), rng.normal(size=(5, 9))
    ns = [1, 2, 3, 4, 5, 7, 9]
    got = bon.best_of_n(proxy, values, ns)
    want = [brute_force(proxy, values, n) for n in ns]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_estimator_accepts_torch_and_returns_numpy():
    rng = np.random.default_rng(1)
    proxy, values = rng.normal(size=(3, 8)), rng.normal(size=(3, 8))
    got = bon.best_of_n(torch.tensor(proxy), torch.tensor(values), [1, 8])
    assert isinstance(got, np.ndarray) and got.shape == (2,)
    assert got[0] == pytest.approx(values.mean())                     # n = 1: the pool mean
    assert got[1] == pytest.approx(values[np.arange(3), proxy.argmax(1)].mean())  # n = N: the argmax


def test_weights_are_a_distribution_for_large_pools():
    W = bon.bon_weights(12600, [1, 2, 64, 4096, 12600])
    np.testing.assert_allclose(W.sum(1), 1.0, rtol=1e-9)
    assert W[-1, -1] == pytest.approx(1.0)


def test_bad_n_is_rejected():
    with pytest.raises(ValueError, match="n must satisfy"):
        bon.best_of_n(np.zeros((2, 4)), np.zeros((2, 4)), [5])


def exact_bon_kl(p, n):
    """KL(best-of-n || p) for a discrete distribution whose outcomes have distinct rewards (sorted ascending)."""
    F = np.concatenate([[0.0], np.cumsum(p)])
    q = F[1:] ** n - F[:-1] ** n
    m = q > 0
    return float((q[m] * np.log(q[m] / p[m])).sum())


@pytest.mark.parametrize("n", [2, 4, 16, 64])
def test_kl_bound_against_exact_kl_on_discrete_distributions(n):
    rng = np.random.default_rng(n)
    for K in (3, 10, 50):
        p = rng.dirichlet(np.ones(K))
        assert exact_bon_kl(p, n) <= bon.kl_bound(n) + 1e-12
    # many small atoms approach the continuous case, where the bound is exact
    p = np.full(20000, 1 / 20000)
    assert exact_bon_kl(p, n) == pytest.approx(bon.kl_bound(n), abs=2e-3)


def test_kl_bound_values():
    np.testing.assert_allclose(bon.kl_bound([1, 2, 1024]), [0.0, math.log(2) - 0.5, math.log(1024) - 1023 / 1024])


def test_kl_estimate_limits_and_value():
    n = np.array([1, 4, 64])
    np.testing.assert_allclose(bon.kl_estimate(1e-30, n), bon.kl_bound(n), atol=1e-12)  # tiny eps -> bound
    np.testing.assert_allclose(bon.kl_estimate(1.0, n), 0.0, atol=1e-12)                # a sure outcome
    eps, k = 0.1, 4
    q = (1 - eps) ** k
    want = q * (math.log(k) + (k - 1) * math.log(1 - eps) - (k - 1) / k) + (1 - q) * math.log((1 - q) / eps)
    assert bon.kl_estimate(eps, k) == pytest.approx(want, rel=1e-12)
    assert np.all(bon.kl_estimate(np.array([0.01, 0.1, 0.5]), 8) <= bon.kl_bound(8) + 1e-12)


def test_kl_estimate_pool_weights_each_sample_by_its_chance_of_being_chosen():
    proxy = np.array([[0.0, 1.0, 2.0]])
    logprob = np.log([[0.5, 0.3, 0.2]])
    got = bon.kl_estimate_pool(proxy, logprob, [3])
    assert got[0] == pytest.approx(bon.kl_estimate(0.2, 3))  # n = N always picks the top sample


def test_default_ns():
    assert bon.default_ns(512) == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
    assert bon.default_ns(600)[-2:] == [512, 600]


def test_tilt_on_a_pool_matches_the_exact_kl_regularised_optimum():
    # pi0 over 5 outcomes; pi* = pi0 exp(r / beta) / Z in closed form; a pool of pi0 samples estimates it.
    p = np.array([0.4, 0.25, 0.2, 0.1, 0.05])
    r = np.array([0.0, 1.0, -0.5, 2.0, 3.0])
    v = np.array([1.0, -2.0, 0.5, 4.0, -3.0])
    rng = np.random.default_rng(0)
    draws = rng.choice(5, size=(4, 50_000), p=p)
    betas = np.array([4.0, 1.0, 0.5])
    kl, val = bon.tilt_per_prompt(r[draws], v[draws], betas)
    for j, b in enumerate(betas):
        star = p * np.exp(r / b)
        star /= star.sum()
        exact_kl = float((star * np.log(star / p)).sum())
        # the pool holds repeats of 5 values: sum_i w_i ln(N w_i) of the draws is the KL of the empirical tilt
        assert kl[:, j].mean() == pytest.approx(exact_kl, abs=0.01)
        assert val[:, j].mean() == pytest.approx(float(star @ v), abs=0.03)


def test_tilt_limits_are_pi0_and_the_best_of_the_pool():
    rng = np.random.default_rng(1)
    proxy = rng.normal(size=(3, 64))
    values = rng.normal(size=(3, 64))
    kl, val = bon.tilt_per_prompt(proxy, values, [1e6, 1e-6])
    np.testing.assert_allclose(kl[:, 0], 0.0, atol=1e-9)
    np.testing.assert_allclose(val[:, 0], values.mean(1), atol=1e-5)
    np.testing.assert_allclose(kl[:, 1], np.log(64), rtol=1e-9)  # all weight on one sample of 64
    np.testing.assert_allclose(val[:, 1], values[np.arange(3), proxy.argmax(1)])
    with pytest.raises(ValueError, match="beta"):
        bon.tilt_per_prompt(proxy, values, [0.0])
    betas = bon.tilt_betas(proxy)
    assert (np.diff(betas) < 0).all()
    kls = bon.tilt_per_prompt(proxy, values, betas)[0].mean(0)
    assert (np.diff(kls) > 0).all() and kls[0] < 0.02 and kls[-1] > 0.8 * np.log(64)


def test_tilt_gets_at_least_best_of_n_proxy_at_equal_kl():
    # pi0 exp(r / beta) / Z maximises E[r] - beta KL, so no distribution over the pool has more proxy at the
    # same KL: best-of-n drawn from the pool included, whose KL to the uniform pool is sum W ln(N W).
    rng = np.random.default_rng(2)
    proxy = rng.gumbel(size=(50, 256))
    kl, val = bon.tilt_per_prompt(proxy, proxy, np.geomspace(20, 0.01, 400))
    kl, val = kl.mean(0), val.mean(0)
    ns = bon.default_ns(256)
    W = bon.bon_weights(256, ns)
    pool_kl = (W * np.log(np.where(W > 0, 256 * W, 1.0))).sum(1)
    for k, v in zip(pool_kl[1:], bon.best_of_n(proxy, proxy, ns)[1:]):
        assert np.interp(k, kl, val) >= v - 1e-3

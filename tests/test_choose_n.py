"""Choosing n for best-of-n from a few judged prompts: the estimator against brute force, the choice on a pool
whose gold peak is known."""
import numpy as np
import pytest

from overopt.measure.bon import best_of_n_per_prompt, default_ns
from overopt.online.choose_n import choose_n, judged_bon


def _pool(m=40, N=64, seed=0):
    """Proxy scores and gold: gold rises with the proxy, then falls (an over-optimized proxy)."""
    rng = np.random.default_rng(seed)
    proxy = rng.normal(size=(m, N))
    gold = proxy - 0.35 * proxy ** 2 + 0.3 * rng.normal(size=(m, N))
    return proxy, gold


def test_judging_every_sample_is_the_exact_estimator():
    proxy, gold = _pool()
    ns = default_ns(64)
    est, labels = judged_bon(proxy, lambda p, i: gold[p, i], ns, top=10, rest=54, rng=np.random.default_rng(1))
    np.testing.assert_allclose(est, best_of_n_per_prompt(proxy, gold, ns), atol=1e-12)
    assert labels == 40 * 64


def test_top_and_rest_labels_are_unbiased_for_every_n():
    """The mean over many label draws (top 4, 3 of the other 60) matches the full pool's estimator."""
    proxy, gold = _pool(m=6)
    ns = default_ns(64)
    exact = best_of_n_per_prompt(proxy, gold, ns)
    rng = np.random.default_rng(2)
    draws = np.stack([judged_bon(proxy, lambda p, i: gold[p, i], ns, 4, 3, rng)[0] for _ in range(4000)])
    se = draws.std(0) / np.sqrt(len(draws))
    assert np.all(np.abs(draws.mean(0) - exact) < 4 * se + 1e-12)
    # n = N puts all weight on the top sample: labelled, so exact in every draw
    np.testing.assert_allclose(draws[:, :, -1], np.broadcast_to(exact[:, -1], draws[:, :, -1].shape))


def test_the_chosen_n_is_near_the_pools_gold_peak_and_the_labels_are_counted():
    proxy, gold = _pool(m=300, N=64, seed=3)
    ns = np.array(default_ns(64))
    truth = best_of_n_per_prompt(proxy, gold, ns).mean(0)
    best = int(ns[np.argmax(truth)])
    assert 2 < best < 64  # the pool peaks inside the grid
    c = choose_n(proxy[:20], lambda p, i: gold[p, i], top=6, rest=4, rng=np.random.default_rng(4), ns=ns)
    assert c.labels == 20 * 10
    assert c.n_lo <= c.n <= c.n_hi
    assert abs(np.log2(c.n) - np.log2(best)) <= 1  # within a factor of two of the best n
    assert (truth.max() - truth[list(ns).index(c.n)]) / truth.max() < 0.1


def test_a_grid_without_n_1_is_refused():
    proxy, gold = _pool(m=3)
    with pytest.raises(ValueError, match="start at 1"):
        choose_n(proxy, lambda p, i: gold[p, i], ns=[2, 4, 8])

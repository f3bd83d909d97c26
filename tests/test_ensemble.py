import numpy as np
import pytest
import torch

from overopt.models.ensemble import ensemble_objective, fit_temperature, reliability


def test_ensemble_objectives_by_hand():
    # three members, two samples
    s = np.array([[1.0, 2.0], [3.0, 2.0], [2.0, 5.0]])
    assert np.allclose(ensemble_objective(s, "mean"), [2.0, 3.0])
    assert np.allclose(ensemble_objective(s, "wco"), [1.0, 2.0])
    # population variances: (1 + 1 + 0) / 3 and (1 + 1 + 4) / 3
    assert np.allclose(ensemble_objective(s, "uwo", lam=0.5), [2.0 - 0.5 * 2 / 3, 3.0 - 0.5 * 2.0])
    assert np.allclose(ensemble_objective(s, "uwo", lam=0.0), ensemble_objective(s, "mean"))
    t = torch.tensor(s)
    for kind in ("mean", "wco", "uwo"):
        assert np.allclose(ensemble_objective(t, kind, 0.7).numpy(), ensemble_objective(s, kind, 0.7))
    with pytest.raises(ValueError, match="ensemble objective"):
        ensemble_objective(s, "max")


@pytest.mark.parametrize("tau", [0.3, 1.0, 4.0])
def test_temperature_recovered(tau):
    rng = np.random.default_rng(0)
    d = rng.normal(0, 2.0, 40000)
    y = rng.random(len(d)) < 1 / (1 + np.exp(-d / tau))
    assert fit_temperature(d, y) == pytest.approx(tau, rel=0.05)
    # no signal at all: the best non-negative slope is 0, so tau is infinite
    assert fit_temperature(d, ~(d > 0)) == float("inf")


def test_reliability_by_hand_and_on_calibrated_pairs():
    # diffs with sigmoid(|d|) = 0.75 (bin [0.7, 0.8)) and 0.95 (bin [0.9, 1.0])
    d = np.array([np.log(3), np.log(3), -np.log(3), np.log(19)])
    y = np.array([True, False, True, True])  # right, wrong, wrong, right
    ece, rows = reliability(d, y, tau=1.0, bins=5)
    assert [r["count"] for r in rows] == [3, 1]
    assert rows[0]["accuracy"] == pytest.approx(1 / 3) and rows[0]["confidence"] == pytest.approx(0.75)
    assert ece == pytest.approx(0.75 * abs(1 / 3 - 0.75) + 0.25 * abs(1.0 - 0.95))
    rng = np.random.default_rng(1)
    d = rng.normal(0, 3.0, 40000)
    y = rng.random(len(d)) < 1 / (1 + np.exp(-d / 2.0))
    assert reliability(d, y, tau=2.0)[0] < 0.01          # calibrated
    assert reliability(d, y, tau=0.5)[0] > 0.1           # overconfident
    assert reliability(d, y, tau=fit_temperature(d, y))[0] < 0.01


def test_ensemble_rm_combines_scaled_members():
    from overopt.models.reward import build_rm, score
    from overopt.models.ensemble import EnsembleRM, member_scores

    members = [build_rm(20, 8, 1, 16, seed=s) for s in range(3)]
    for m, off in zip(members, (0.1, -0.2, 0.3)):
        m.offset.fill_(off)
    taus = [0.5, 1.0, 2.0]
    g = torch.Generator().manual_seed(0)
    prompts = torch.randint(4, 20, (6, 4), generator=g)
    resp = torch.randint(4, 20, (6, 5), generator=g)
    resp[:2, 3:] = 0  # right padding
    each = np.stack([score(m, prompts, resp, 0) for m in members]) / np.array(taus)[:, None]
    for kind in ("mean", "wco", "uwo"):
        ens = EnsembleRM(members, kind, lam=0.7, taus=taus)
        np.testing.assert_allclose(score(ens, prompts, resp, 0), ensemble_objective(each, kind, 0.7), atol=1e-5)
    np.testing.assert_allclose(member_scores(EnsembleRM(members, "mean", taus=taus), prompts, resp, 0), each,
                               atol=1e-5)


def test_length_slope_and_normalised_rm():
    from overopt.models.reward import build_rm, length_normalize, length_slope, score

    assert length_slope([1.0, 3.0, 5.0], [1, 2, 3]) == pytest.approx(2.0)
    assert length_slope([2.0, 2.0, 2.0], [1, 5, 9]) == pytest.approx(0.0)
    rm = build_rm(20, 8, 1, 24, seed=0)
    g = torch.Generator().manual_seed(1)
    prompts = torch.randint(4, 20, (64, 4), generator=g)
    resp = torch.randint(4, 20, (64, 12), generator=g)
    lengths = torch.randint(1, 13, (64,), generator=g)
    resp[torch.arange(12)[None, :] >= lengths[:, None]] = 0
    raw = score(rm, prompts, resp, 0)
    b = length_normalize(rm, prompts, resp, 0)
    s = score(rm, prompts, resp, 0)
    assert b == pytest.approx(length_slope(raw, lengths.numpy()))
    # the residual: no slope on length left, centred, and the weights' own scores otherwise unchanged
    assert length_slope(s, lengths.numpy()) == pytest.approx(0.0, abs=1e-6) and abs(s.mean()) < 1e-6
    np.testing.assert_allclose(s - s.mean(), raw - b * lengths.numpy() - (raw - b * lengths.numpy()).mean(), atol=1e-5)
    assert "length_coef" not in rm.state_dict()  # a cached proxy loads into it unchanged


def test_pareto_front_against_brute_force():
    from overopt.studies.multi import pareto_front

    def brute(p):
        return np.array([not any(np.all(q >= x) and np.any(q > x) for q in p) for x in p])

    rng = np.random.default_rng(0)
    for trial in range(30):
        p = rng.integers(0, 4, size=(rng.integers(1, 25), rng.integers(1, 4))).astype(float)  # many ties
        np.testing.assert_array_equal(pareto_front(p), brute(p))
    # by hand: (3,1) and (1,3) trade off, (2,2) too; (1,1) is dominated; a duplicate stays on the front
    np.testing.assert_array_equal(pareto_front([[3, 1], [1, 3], [2, 2], [1, 1], [2, 2]]),
                                  [True, True, True, False, True])


def test_weighted_sum_rm():
    from overopt.models.reward import build_rm, score
    from overopt.models.ensemble import WeightedSumRM

    members = [build_rm(20, 8, 1, 16, seed=s) for s in range(2)]
    g = torch.Generator().manual_seed(3)
    prompts, resp = torch.randint(4, 20, (5, 4), generator=g), torch.randint(4, 20, (5, 6), generator=g)
    each = np.stack([score(m, prompts, resp, 0) for m in members])
    np.testing.assert_allclose(score(WeightedSumRM(members, [0.5, -2.0]), prompts, resp, 0),
                               0.5 * each[0] - 2.0 * each[1], atol=1e-5)


def test_active_selection_picks_the_most_disputed_unlabelled_pairs():
    from overopt.studies.active import select_by_disagreement

    # three members, five pairs: pair 1 split (+3 / -3), pair 3 split less, pair 0 agreed; pair 4 labelled
    margins = np.array([[2.0, 3.0, 0.0, 1.0, 5.0],
                        [2.0, -3.0, 0.0, -1.0, -5.0],
                        [2.0, 0.0, 0.0, 0.0, 0.0]])
    labelled = np.array([False, False, False, False, True])
    assert select_by_disagreement(margins, labelled, 2).tolist() == [1, 3]
    assert select_by_disagreement(margins, labelled, 10).tolist() == [1, 3, 0, 2]  # never a labelled pair
    p = 1 / (1 + np.exp(-margins[:, 1]))
    assert p.std() > (1 / (1 + np.exp(-margins[:, 3]))).std() > 0

"""Gold-free detectors: the distance against hand computation, the AUC against brute force, and the leave-one-out
stop rule never reading the curve it scores."""
import numpy as np
import pytest

from overopt.online.detectors import first_at_or_above, leave_one_out, mahalanobis, outlier_share, roc_auc


def test_mahalanobis_hand_computed():
    """200 reference points, mean 0: x = +-2 on half of them, y = +-1 on the other half, so the sample variances
    are 400/199 and 100/199 and the covariance 0: (2, 1) is at 4 x 199/400 + 1 x 199/100 = 3.98."""
    ref = np.array([[2.0, 0], [-2, 0], [0, 1], [0, -1]] * 50)
    assert mahalanobis(ref, [[2.0, 1.0]], ridge=1e-9)[0] == pytest.approx(4 * 199 / 400 + 199 / 100, rel=1e-6)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20000, 3))
    d2 = mahalanobis(x, x)
    assert d2.mean() == pytest.approx(3, rel=0.01)                   # chi-square with 3 degrees of freedom
    assert outlier_share(d2, 3) == pytest.approx(0.01, abs=0.003)


def test_roc_auc_against_brute_force():
    rng = np.random.default_rng(1)
    s, y = rng.normal(size=40).round(1), rng.random(40) < 0.4
    pairs = [(a > b) + 0.5 * (a == b) for a in s[y] for b in s[~y]]
    assert roc_auc(s, y) == pytest.approx(np.mean(pairs))
    assert roc_auc([1, 2, 3, 4], [0, 0, 1, 1]) == 1.0 and np.isnan(roc_auc([1, 2], [1, 1]))


def test_leave_one_out_thresholds_come_from_the_other_curves():
    gold = np.array([0.0, 0.5, 1.0, 0.8, 0.2])                      # peaks at index 2
    curves = {"a": (np.array([0, 1, 2, 3, 4.0]), gold), "b": (np.array([0, 2, 4, 6, 8.0]), gold),
              "c": (np.array([0, 3, 6, 9, 12.0]), gold)}
    rule = leave_one_out(curves)
    # for "a": b stops at its peak with any threshold in (2, 4], c in (3, 6]: the lowest both take is 4 (b's own
    # value at its peak), regret 0 for b, and c stops at 6: its peak too; 4 on "a" stops at index 4
    assert rule["a"] == (4.0, 4)
    assert first_at_or_above(np.array([np.nan, 1, 5]), 3) == 2 and first_at_or_above(np.array([0, 1, 2.0]), 9) == 2
    changed = dict(curves, a=(np.array([0, 100, 200, 300, 400.0]), gold))  # "a" itself does not move its threshold
    assert leave_one_out(changed)["a"][0] == rule["a"][0]

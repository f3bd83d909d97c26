"""The stop rule (`online.stoprule`): the same statistic one point at a time as all at once, the false-stop rate on
logs that never fall (flat, rising, rising then flat; Gaussian and binomial noise), the power on logs that rise,
peak and fall, and the properties that make a flat log the worst case."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from overopt.online.power import first_stops, rates, reference_mean, synthetic_logs
from overopt.online.stopcal import ESTIMATED, KNOWN, statistic
from overopt.online.stoprule import DropRule, boundary, kappa


def incremental(y, se=None, **kw):
    rule = DropRule(tested=10 ** 6, known=se is not None, **kw)
    return np.array([rule.update(v, None if se is None else s).z for v, s in zip(y, se if se is not None else y)])


def test_one_point_at_a_time_is_the_calibrated_statistic():
    """Brute force: the rule's statistic at every look equals `stopcal.statistic`'s on the same log, in both modes
    (a fall of 1 sd half way, unequal standard errors in the known mode)."""
    rng = np.random.default_rng(3)
    Y = rng.standard_normal((4, 90))
    Y[:, 45:] -= 1.0
    Z = statistic(Y)
    for y, z in zip(Y, Z[:, 1:]):
        ok = np.isfinite(z)
        assert np.allclose(incremental(y)[ok], z[ok]) and np.isinf(incremental(y)[~ok]).all()
    S = rng.uniform(0.5, 2.0, (4, 30))
    Z = statistic(Y[:, :30] * S, KNOWN, S)
    for y, s, z in zip(Y[:, :30] * S, S, Z[:, 1:]):
        ok = np.isfinite(z)
        assert np.allclose(incremental(y, s)[ok], z[ok])


@pytest.mark.parametrize("noise", ["gaussian", "binomial"])
@pytest.mark.parametrize("shape", ["flat", "rising", "concave", "plateau"])
def test_false_stops_stay_under_alpha_on_logs_that_never_fall(shape, noise):
    """1,000 logs of 50 points each (and of 200): the share the rule ever stops is at most alpha = 0.05."""
    for points in (50, 200):
        assert rates(shape, 1000, points, seed=11, noise=noise)["stopped"] <= 0.05


def test_the_rule_one_point_at_a_time_stops_where_the_statistic_does():
    """The DropRule itself (16 blocks tested a look) on 300 flat and 300 falling logs: the same first stops as the
    calibrated statistic, so the rates of the tables are the rule's."""
    rng = np.random.default_rng(5)
    for shape in ("flat", "fall"):
        Y = synthetic_logs(shape, 300, 60, rng, peak=0.4)
        want = first_stops(Y)
        got = []
        for y in Y:
            rule = DropRule()
            got.append(next((i for i, v in enumerate(y) if rule.update(v).stop), -1))
        assert (np.array(got) == want).mean() >= 0.99


def test_a_fall_of_three_noise_sd_is_caught_soon_after_the_peak():
    """Gold rises 3 sd over 40 points, falls 3 sd over 5 and stays there (100 points): the rule stops after the peak
    and within 10 points of the fall's end on >= 80% of 500 logs, naming a checkpoint whose mean is within one noise
    sd of the peak's on >= 90% of them and counting the peak itself among those it cannot tell from the best."""
    r = rates("fall", 500, 100, seed=2, fall=3, peak=0.4)
    assert r["detected"] >= 0.8 and r["early"] <= 0.05
    rng, mu = np.random.default_rng(2), reference_mean("fall", 100, peak=0.4)
    near, tied = [], []
    for y in synthetic_logs("fall", 200, 100, rng, peak=0.4):
        rule = DropRule()
        d = next((d for d in (rule.update(v) for v in y) if d.stop), None)
        if d is not None:
            near.append(mu[d.best] >= mu.max() - 1.0)
            tied.append(int(np.argmax(mu)) in d.tied)
    assert np.mean(near) >= 0.9 and np.mean(tied) >= 0.9


def test_known_standard_errors_let_a_short_curve_stop():
    """13 evaluations, each with its own standard error (the toy world's RL curves): flat curves stop at most alpha
    of the time; a fall of 5 standard errors after the sixth point is caught on most."""
    rng = np.random.default_rng(9)
    flat = rng.standard_normal((2000, 13))
    ex = statistic(flat, KNOWN) - np.array([boundary(max(n, 1), 0.05, KNOWN) for n in range(14)])
    assert (ex.max(1) > 0).mean() <= 0.05
    mu = np.r_[np.linspace(0, 4, 6), np.full(7, -1.0)]
    rule_stops = []
    for y in mu + rng.standard_normal((300, 13)):
        rule = DropRule(known=True)
        rule_stops.append(any(rule.update(v, 1.0).stop for v in y))
    assert np.mean(rule_stops) >= 0.8


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 3), min_size=8, max_size=8), st.integers(0, 10 ** 6), st.floats(0.1, 10),
       st.floats(-5, 5))
def test_no_fall_never_looks_worse_than_flat_and_the_scale_does_not_matter(steps, seed, scale, shift):
    """A mean that rises at block boundaries (flat within each block of 5) only lowers the statistic against the same
    noise on a flat mean; and the statistic is the same for any positive scale and any shift of the log. So the
    flat Gaussian logs the boundary was calibrated on are the worst case of a reference that does not fall."""
    noise = np.random.default_rng(seed).standard_normal((1, 40))
    mu = np.repeat(np.cumsum(steps), 5)[None, :]
    flat, rising = statistic(noise), statistic(noise + mu)
    ok = np.isfinite(flat)
    assert (rising[ok] <= flat[ok] + 1e-9).all()
    assert np.allclose(statistic(scale * noise + shift)[ok], flat[ok])


def test_bad_settings_and_points_are_refused():
    with pytest.raises(ValueError, match="alpha must be between 0.01 and 0.2"):
        DropRule(alpha=0.5)
    with pytest.raises(ValueError, match="margin must be"):
        DropRule(margin=-1)
    with pytest.raises(ValueError, match="point 0: the score must be a finite number"):
        DropRule().update(float("inf"))
    with pytest.raises(ValueError, match="needs each point's standard error"):
        DropRule(known=True).update(1.0)
    assert kappa(0.05) == pytest.approx(2.859) and kappa(0.05, KNOWN) == pytest.approx(1.817)
    assert kappa(0.03) < kappa(0.02) and boundary(100) > boundary(50) > boundary(20) == kappa(0.05) + ESTIMATED.beta * \
        np.log(4)

import math

import numpy as np
import pytest

from overopt import laws


@pytest.mark.parametrize("form,alpha,beta", [("bon", 0.8, 0.2), ("rl", 0.5, 0.25)])
def test_fit_recovers_known_coefficients_from_noisy_curves(form, alpha, beta):
    rng = np.random.default_rng(0)
    kl = np.linspace(0.0, 12.0, 40)
    gain = laws.predict(form, alpha, beta, kl) + rng.normal(0, 0.01, size=kl.shape)
    r = laws.fit(kl, gain, form, n_boot=300)
    assert r.alpha == pytest.approx(alpha, abs=0.02)
    assert r.beta == pytest.approx(beta, abs=0.02)
    assert r.alpha_lo <= alpha <= r.alpha_hi
    assert r.beta_lo <= beta <= r.beta_hi
    assert r.r2 > 0.99


def test_fit_with_bootstrap_replicates():
    kl = np.linspace(0, 6, 10)
    base = laws.predict("bon", 1.0, 0.3, kl)
    reps = base + np.random.default_rng(1).normal(0, 0.05, size=(200, 10))
    r = laws.fit(kl, base, "bon", boot_gains=reps)
    assert r.alpha == pytest.approx(1.0) and r.beta == pytest.approx(0.3)
    assert r.alpha_lo < 1.0 < r.alpha_hi and r.alpha_hi - r.alpha_lo < 0.2


def test_peaks_follow_the_closed_forms():
    kp, gp = laws.peak("bon", 1.0, 0.25)        # d* = 2, R* = 1
    assert (kp, gp) == pytest.approx((4.0, 1.0))
    kp, gp = laws.peak("rl", 0.5, 0.25)         # d* = e, R* = 0.25 e
    assert (kp, gp) == pytest.approx((math.e ** 2, 0.25 * math.e))
    kp, gp = laws.peak("log1p", 1.0, 0.5)
    d = math.sqrt(kp)
    assert 1.0 - 0.5 * (math.log1p(d) + d / (1 + d)) == pytest.approx(0, abs=1e-9)
    assert laws.peak("bon", 1.0, -0.1) == (math.inf, math.inf)


def test_chosen_form_beats_the_alternatives_on_its_own_curve():
    kl = np.linspace(0, 8, 30)
    gain = laws.predict("bon", 1.0, 0.3, kl)
    r2 = {f: laws.fit(kl, gain, f).r2 for f in ("bon", "log1p", "quad_kl")}
    assert r2["bon"] > r2["log1p"] and r2["bon"] > r2["quad_kl"]


@pytest.mark.parametrize("kl,gain,msg", [
    ([0, 1], [0, 1], "too few points"),
    ([0, -1, 2], [0, 1, 2], "KL must be >= 0"),
    ([0, 1, float("nan")], [0, 1, 2], "finite"),
    ([0, 0, 0], [0, 1, 2], "KL > 0"),
])
def test_bad_input_is_named(kl, gain, msg):
    with pytest.raises(laws.FitError, match=msg):
        laws.fit(kl, gain, "bon")


def test_gamma_hand_computed():
    """Gold d(1 - d/2), proxy d, to d = 2: the gap d^2/2 integrates to 4/3, the proxy to 2, gold to 2/3."""
    from overopt.laws import gamma
    assert gamma("bon", (1.0, 0.5), (1.0, 0.0), 4.0) == pytest.approx(2 / 3, rel=1e-6)
    assert gamma("bon", (1.0, 0.5), (1.0, 0.0), 4.0, by="gold") == pytest.approx(2.0, rel=1e-6)  # Kim et al.'s
    assert gamma("rl", (0.7, 0.2), (0.7, 0.2), 9.0) == 0.0          # the proxy's gains are gold's
    assert math.isnan(gamma("bon", (1.0, 1.0), (1.0, 0.0), 16.0, by="gold"))  # gold's area is negative
    assert gamma("bon", (1.0, 1.0), (1.0, 0.0), 16.0) == pytest.approx((64 / 3) / 8)  # the proxy's is not


def test_scaling_recovers_a_log_linear_trend():
    params = np.array([1e3, 1e4, 1e5, 1e6])
    s = laws.fit_scaling(params, 2.0 - 0.3 * np.log10(params), "beta_bon")
    assert s.slope == pytest.approx(-0.3) and s.intercept == pytest.approx(2.0)
    assert s.r2 == pytest.approx(1.0) and s.spearman == pytest.approx(-1.0)
    assert s.axis == "params" and s.n == 4 and s.slope_lo == pytest.approx(-0.3) == s.slope_hi


def test_scaling_interval_covers_the_true_slope_as_often_as_it_says():
    """The slope's t interval on noisy log-linear points: 90% intervals cover the true slope about 90% of the time
    (the residual noise is what it is built on), and two points give no interval."""
    x = np.geomspace(1e2, 1e6, 6)
    rng = np.random.default_rng(0)
    covered = []
    for _ in range(400):
        s = laws.fit_scaling(x, 0.5 + 0.1 * np.log10(x) + rng.normal(0, 0.05, len(x)), "val_acc", "data", ci=0.9)
        covered.append(s.slope_lo <= 0.1 <= s.slope_hi)
    assert s.axis == "data" and 0.85 <= np.mean(covered) <= 0.95
    two = laws.fit_scaling([10, 100], [1.0, 2.0], "beta_bon")
    assert two.slope == pytest.approx(1.0) and np.isnan(two.slope_lo) and two.n == 2


def test_replicate_fits_recover_each_replicate_and_give_the_fit_its_interval():
    kl = np.linspace(0, 6, 10)
    true = np.array([[1.0, 0.3], [0.8, 0.2], [1.2, 0.5]])
    exact = np.stack([laws.predict("bon", a, b, kl) for a, b in true])
    coefs, r2 = laws.replicate_fits("bon", kl, exact)
    assert np.allclose(coefs, true) and r2 == pytest.approx([1.0, 1.0, 1.0])
    reps = exact[:1] + np.random.default_rng(2).normal(0, 0.05, size=(300, 10))
    coefs, r2 = laws.replicate_fits("bon", kl, reps)
    r = laws.fit(kl, exact[0], "bon", boot_gains=reps, ci=0.9)
    assert (r.beta_lo, r.beta_hi) == pytest.approx(tuple(np.percentile(coefs[:, 1], [5, 95])))
    assert r2[:20] == pytest.approx([laws.fit(kl, y, "bon", n_boot=0).r2 for y in reps[:20]])  # each one's own fit
    assert np.isnan(laws.replicate_fits("bon", kl, np.ones((1, 10)))[1][0])  # a flat replicate has no R^2


def test_trend_stats_match_scipy_and_support_counts_the_smooth_resamples():
    from scipy import stats as scipy_stats

    from overopt.laws.fits import trend_stats

    params = np.geomspace(1e3, 1e5, 6)
    rng = np.random.default_rng(3)
    Y = 0.6 - 0.1 * np.log10(params) + rng.normal(0, 0.03, size=(50, 6))
    r2, rho = trend_stats(params, Y)
    assert r2 == pytest.approx([laws.fit_scaling(params, y, "beta_bon").r2 for y in Y])
    assert rho == pytest.approx([scipy_stats.spearmanr(params, y)[0] for y in Y])
    # 7 resamples on an exact line (smooth), 2 with the middle pair swapped (R^2 0.89, Spearman -0.94: smooth),
    # 1 flat (no spread: not smooth) of 10: support 0.9; the point estimate's own row says nothing of it
    line = 0.6 - 0.1 * np.log10(params)
    swapped = line[[0, 1, 3, 2, 4, 5]]
    reps = np.vstack([np.tile(line, (7, 1)), np.tile(swapped, (2, 1)), np.full((1, 6), 0.3)])
    s = laws.fit_scaling(params, line, "beta_bon", replicates=reps)
    assert s.support == pytest.approx(0.9) and s.r2 == pytest.approx(1.0)
    # two pairs swapped: Spearman -(1 - 6 * 4 / 210) = -0.886 is not smooth on any resample
    two = line[[1, 0, 3, 2, 4, 5]]
    assert trend_stats(params, two[None])[1] == pytest.approx([-(1 - 6 * 4 / 210)])
    assert laws.fit_scaling(params, line, "beta_bon", replicates=np.tile(two, (4, 1))).support == 0.0
    assert np.isnan(laws.fit_scaling(params, line, "beta_bon").support)


def test_forecast_error_shrinks_as_the_curve_grows():
    from overopt.laws import forecast_table, peak, predict

    alpha, beta = 0.8, 0.35
    true_peak = peak("rl", alpha, beta)[0]  # 13.1
    kl = np.linspace(0, 30, 31)
    rng = np.random.default_rng(0)
    gain = predict("rl", alpha, beta, kl) + rng.normal(0, 0.02, len(kl))
    t = forecast_table({"c": (kl, gain)}, "rl", min_points=4, n_boot=50)
    assert t["points"].tolist() == list(range(4, 32))
    assert t["kl_peak_full"].iloc[0] == pytest.approx(true_peak, rel=0.05)
    early, late = t[t["seen"] < 0.5], t[t["seen"] > 1.2]
    assert late["abs_log_error"].median() < early["abs_log_error"].median()
    assert late["abs_log_error"].median() < 0.05 and late["regret"].max() < 0.05
    assert t["abs_log_error"].iloc[-1] == pytest.approx(0.0, abs=1e-6)   # the whole curve is the full fit
    # a curve that never turns down has no peak to forecast
    assert forecast_table({"up": (kl, np.sqrt(kl))}).empty


def test_dimension_weights_read_back_what_a_proxy_scores():
    """A proxy scoring 3 x gold weighs every dimension 1 (R^2 1); one blind to a dimension weighs it 0."""
    from overopt.studies.learned import dimension_weights

    x = np.random.default_rng(0).normal(size=(4000, 3)) * [1.0, 0.5, 2.0]
    w, r2 = dimension_weights(3 * x.sum(1) + 0.7, x)
    assert np.allclose(w, 1.0) and r2 == pytest.approx(1.0)
    w, _ = dimension_weights(x[:, 0] + x[:, 1], x)
    assert abs(w[2]) < 1e-9 and w[0] == pytest.approx(w[1]) and w[0] > 1

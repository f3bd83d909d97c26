"""The judge on a label budget: labels spent as each strategy says, a significant fall stops, the best checkpoint is
kept; checked on curves whose labels are built by hand."""
import math

import numpy as np
import pytest

from overopt.online.budget import BudgetWatch, Judged, welch_z


def labeller(mean: float, spread: float = 1.0):
    """Labels mean +- spread, alternating: any even count has exactly that mean and a known standard error."""
    def label(n):
        return mean + spread * np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    return label


CURVE = [(0, 0.0, 0.0), (10, 1.0, 1.0), (20, 4.0, 2.0), (30, 9.0, 2.2), (40, 16.0, 1.0), (50, 25.0, -1.0)]


def feed(w: BudgetWatch, curve=CURVE, spread=1.0):
    for step, kl, gold in curve:
        st = w.update(step, kl, proxy=kl, label=labeller(gold, spread))
        if st.state == "stop":
            return st
    return st


def test_welch_z_hand_computed():
    a, b = Judged(0, 0, [1.0, 3.0]), Judged(1, 1, [0.0, 0.0, 3.0, 3.0])
    # means 2 and 1.5; se sqrt(2)/sqrt(2) = 1 and sqrt(3)/2
    assert welch_z(a, b) == pytest.approx(0.5 / math.sqrt(1 + 0.75))
    assert welch_z(Judged(0, 0, [1.0, 1.0]), Judged(0, 0, [1.0, 1.0])) == 0.0


def test_fixed_labels_every_evaluation_stops_on_the_fall_and_keeps_the_best():
    w = BudgetWatch("fixed", budget=1000, per_eval=8, z=2.0)
    st = feed(w)
    # the stop rule, known-noise mode: 8 labels +-1, pooled sd sqrt(8/7), se sqrt(8/7) / sqrt(8) = 0.378 times
    # t_df / z at 0.995 (df 7, 14, ..., 42): 0.514, 0.437, 0.416, 0.406, 0.400, 0.396. Step 40: 1.0 is 1.2 below
    # 2.2, z = 1.2 / sqrt(0.406^2 + 0.400^2) = 2.11 < 1.817 + 0.7 ln 5 = 2.94 (five judged points): go on. Step 50:
    # steps 40-50 average 0, 2.2 below: z = 2.2 / sqrt(0.406^2 + (0.400^2 + 0.396^2) / 4) = 4.46 > 3.07: stop
    assert st.state == "stop" and st.step == 50 and "below step 30's (4.5 standard errors" in st.reasons[0], st
    assert st.best_step == 30 and w.spent == 6 * 8 and st.tied == [20.0, 30.0]  # 0.2 below: within 1.645 x 0.53
    assert [h.labels for h in w.history] == [8] * 6


def test_a_small_fall_within_the_noise_does_not_stop():
    w = BudgetWatch("fixed", budget=1000, per_eval=4, z=2.0)
    st = feed(w, CURVE[:4] + [(40, 16.0, 1.9)], spread=1.0)  # 0.3 below the best, se of the difference 0.82
    assert st.state == "ok" and st.best_step == 30


def test_triggered_labels_only_where_sqrt_kl_grew_enough():
    w = BudgetWatch("triggered", budget=1000, per_eval=6, growth=0.5)
    feed(w, [(0, 0.0, 0.0), (5, 0.01, 0.1), (10, 0.0144, 0.2), (20, 1.0, 1.0), (30, 1.44, 1.1), (40, 2.25, 1.2)])
    # d = 0, 0.1 (first above 0), 0.12 (< 1.5 x 0.1), 1.0, 1.2 (< 1.5), 1.5 (>= 1.5 x 1.0)
    assert [h.labels for h in w.history] == [6, 6, 0, 6, 0, 6]


def test_sequential_buys_batches_while_a_drop_is_suspected_and_undecided():
    w = BudgetWatch("sequential", budget=1000, per_eval=32, batch=4, z=2.0)
    feed(w, [(0, 0.0, 0.0), (10, 1.0, 5.0), (20, 4.0, 4.6), (30, 9.0, 5.2)], spread=1.0)
    # step 10: far above the best: one batch; step 20: 0.4 below the best, never decided at 8 looks (boundary
    # 2.54; z after 32 labels: -0.4 / sqrt(0.333 + 0.031) = -0.66): the cap, 32; step 30: above: one batch
    assert [h.labels for h in w.history] == [4, 4, 32, 4] and w.history[-1].state == "ok"
    w = BudgetWatch("sequential", budget=1000, per_eval=32, batch=4, z=2.0)
    st = feed(w, [(0, 0.0, 0.0), (10, 1.0, 5.0), (20, 4.0, 3.0)], spread=1.0)
    # 2 below: z = -2 / sqrt(1/3 + 1/3) = -2.45 after one batch, inside the boundary 2.54; after two batches
    # -2 / sqrt(1/3 + 1/7) = -2.90: decided, no more labels. The stop rule is slower to trust 16 labels: step 10's
    # se 1.155 / 2 x t_6 / z = 0.831, step 20's 1.109 / sqrt(8) x t_13 / z = 0.458; z = 2 / sqrt(0.831^2 + 0.458^2)
    # = 2.11 < 1.817 + 0.7 ln 3 = 2.59: no stop yet
    assert [h.labels for h in w.history] == [4, 4, 8] and st.state == "ok"


def test_the_budget_caps_the_labels_and_stops_the_run():
    w = BudgetWatch("fixed", budget=20, per_eval=8)
    st = feed(w)
    assert w.spent == 20 and st.state == "stop" and "budget (20) is spent" in st.reasons[-1]
    assert [h.labels for h in w.history] == [8, 8, 4]
    assert "20 of 20 labels" in w.summary()


@pytest.mark.parametrize("kw,msg", [(dict(strategy="greedy"), "unknown strategy 'greedy'"),
                                    (dict(budget=-1), "budget >= 0"), (dict(batch=1), "batch >= 2")])
def test_bad_settings_are_named(kw, msg):
    with pytest.raises(ValueError, match=msg):
        BudgetWatch(**kw)


def test_a_label_that_is_not_a_number_is_named():
    w = BudgetWatch("fixed", per_eval=2)
    with pytest.raises(ValueError, match="step 3: the judge returned a label that is not a finite number"):
        w.update(3, 0.0, 0.0, lambda n: [1.0, float("nan")])


def test_the_repeated_looks_boundary_keeps_the_one_look_error():
    """Two looks (after n and 2n labels: correlation sqrt(1/2)): the bivariate normal gives the boundary 2.217 for
    the chance of one look at z = 2; checked by scipy's multivariate normal, and one look is z itself."""
    from scipy import stats

    from overopt.online.budget import repeated_z
    assert repeated_z(2.0, 1) == 2.0
    c = repeated_z(2.0, 2)
    mvn = stats.multivariate_normal(mean=[0, 0], cov=[[1, math.sqrt(0.5)], [math.sqrt(0.5), 1]])
    assert 1 - mvn.cdf([c, c]) == pytest.approx(stats.norm.sf(2.0), rel=0.03)
    assert repeated_z(2.0, 2) < repeated_z(2.0, 5) < repeated_z(2.0, 10)
    assert BudgetWatch("sequential", per_eval=40, batch=8).bound == repeated_z(2.0, 5)

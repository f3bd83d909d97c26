"""The monitor's evaluation in the toy world: stop points and gold regret on traces with known answers."""
import numpy as np
import pandas as pd

from overopt.laws.curves import monitor_summary as summary
from overopt.studies.monitor import MONITOR_COLUMNS, evaluate


def trace(curve, gold, reference, kl=None):
    n = len(gold)
    kl = np.arange(n, dtype=float) if kl is None else kl
    return pd.DataFrame({"curve": curve, "rm": curve, "step": np.arange(n) * 10, "kl": kl, "proxy": kl,
                         "gold": gold, "reference": reference, "disagreement": 0.1})


def test_regret_and_early_stops_by_hand():
    # gold peaks at point 5 (1.0); the reference peaks one point later and falls 0.2 per point
    gold = np.array([0, .4, .6, .8, .9, 1.0, .9, .7, .5, .3, .1])
    ref = np.array([0, .2, .4, .6, .8, 1.0, 1.2, 1.0, .8, .6, .4])
    # a reference that peaks at point 2 and one at point 1
    soon = np.array([0, .5, 1.0, .5, .2, .1, 0, 0, 0, 0, 0])
    sooner = np.array([0, 1.0, .5, .2, .1, 0, 0, 0, 0, 0, 0])
    t = pd.concat([trace("a", gold, ref), trace("b", gold, soon), trace("c", gold, sooner)])
    kw = {"min_points": 3, "window": 2, "drop": 0.1, "patience": 2, "disagreement_rise": 0.5, "n_boot": 0}
    mon = evaluate(t, kw, {"drop": ("reference-drop",), "none": ()}, {"ensemble": "reference"})
    assert list(mon.columns) == MONITOR_COLUMNS
    m = mon.set_index(["curve", "rule"])
    # "a": 1.0 at point 7 is the first below 90% of 1.2 (warn), 0.8 at point 8 the second: stop, gold 0.5
    assert m.loc[("a", "drop"), "stop_step"] == 80 and m.loc[("a", "drop"), "regret"] == 0.5
    assert m.loc[("a", "none"), "regret"] == 0.9 and not m.loc[("a", "none"), "stopped"]
    # a drop is judged from the fifth point on (the noise needs three second differences): "b" and "c" warn at
    # point 4 and stop at point 5, gold 1.0 there (the peak), not early
    for c in ("b", "c"):
        assert m.loc[(c, "drop"), "stop_step"] == 50 and not m.loc[(c, "drop"), "early"]
        assert np.isclose(m.loc[(c, "drop"), "regret"], 0.0)
    # the same stop on a curve whose gold rises late is early: 0.35 < half of 1.0
    late = np.array([0, .05, .1, .2, .3, .35, .8, 1.0, .9, .8, .7])
    mon2 = evaluate(trace("d", late, sooner), kw, {"drop": ("reference-drop",)}, {"ens": "reference"}).iloc[0]
    assert mon2["stop_step"] == 50 and mon2["early"] and np.isclose(mon2["regret"], 0.65)
    s = summary(mon).set_index("rule")
    assert s.loc["none", "curves"] == 3 and np.isclose(s.loc["none", "median_regret"], 0.9)
    assert s.loc["drop", "stopped"] == 1.0


def test_each_reference_is_evaluated_and_a_missing_one_skipped():
    gold = np.array([0, .4, .6, .8, .9, 1.0, .9, .7, .5, .3, .1])
    t = trace("a", gold, gold)
    t["second"] = np.nan  # no second reward model for this curve
    t["strong"] = gold[::-1]
    kw = {"min_points": 3, "window": 2, "drop": 0.1, "patience": 1, "disagreement_rise": 0.5, "n_boot": 0}
    mon = evaluate(t, kw, {"drop": ("reference-drop",), "none": ()},
                   {"ens": "reference", "second": "second", "strong": "strong"})
    assert mon[["reference", "rule"]].values.tolist() == [["ens", "drop"], ["strong", "drop"], ["", "none"]]
    # the reference is gold itself: 0.9 at point 6 is within 10% of the best, 0.7 at point 7 is not: stop there
    assert np.isclose(mon.iloc[0]["regret"], 0.3) and mon.iloc[0]["stop_step"] == 70


def test_summary_keeps_the_no_monitor_row_after_a_csv_round_trip(tmp_path):
    gold = np.array([0, .4, .6, .8, .9, 1.0, .9, .7, .5, .3, .1])
    kw = {"min_points": 3, "window": 2, "drop": 0.1, "patience": 1, "disagreement_rise": 0.5, "n_boot": 0}
    evaluate(trace("a", gold, gold), kw, {"drop": ("reference-drop",), "none": ()},
             {"ens": "reference"}).to_csv(tmp_path / "m.csv", index=False)
    s = summary(pd.read_csv(tmp_path / "m.csv")).set_index("rule")
    assert list(s.index) == ["drop", "none"] and np.isclose(s.loc["none", "median_regret"], 0.9)

"""The monitor's evaluation in the toy world: stop points and gold regret on traces with known answers."""
import numpy as np
import pandas as pd

from overopt.laws.curves import monitor_summary as summary
from overopt.studies.monitor import MONITOR_COLUMNS, evaluate


def trace(curve, gold, reference, kl=None, se=0.05):
    """Eleven evaluations; the reference with its standard error at each (the stop rule's known-noise mode)."""
    n = len(gold)
    kl = np.arange(n, dtype=float) if kl is None else kl
    return pd.DataFrame({"curve": curve, "rm": curve, "step": np.arange(n) * 10, "kl": kl, "proxy": kl,
                         "gold": gold, "reference": reference, "reference_se": se, "disagreement": 0.1})


KW = {"alpha": 0.05, "min_points": 3, "drop": 0.1, "patience": 1, "disagreement_rise": 0.5, "n_boot": 0}


def test_regret_and_early_stops_by_hand():
    # gold peaks at point 5 (1.0); the reference peaks one point later (1.2) and falls 0.2 per point; se 0.05 each
    gold = np.array([0, .4, .6, .8, .9, 1.0, .9, .7, .5, .3, .1])
    ref = np.array([0, .2, .4, .6, .8, 1.0, 1.2, 1.0, .8, .6, .4])
    # a reference that peaks at point 2
    soon = np.array([0, .5, 1.0, .5, .2, .1, 0, 0, 0, 0, 0])
    t = pd.concat([trace("a", gold, ref), trace("b", gold, soon)])
    mon = evaluate(t, {**KW, "patience": 2}, {"drop": ("reference-drop",), "none": ()}, {"ensemble": "reference"})
    assert list(mon.columns) == MONITOR_COLUMNS
    m = mon.set_index(["curve", "rule"])
    # the known-noise rule, kappa 1.817 + 0.7 ln n: "a" at point 7 (n = 8): 0.2 below 1.2, z = 0.2 / 0.0707 = 2.83
    # < 3.27; point 8: points 7-8 are 0.3 below, z = 0.3 / 0.0612 = 4.90 > 3.35 (warn: patience 2); point 9: stop,
    # gold 0.3, regret 0.7; rolled back to the best (point 6, gold 0.9): regret 0.1
    assert m.loc[("a", "drop"), "stop_step"] == 90 and np.isclose(m.loc[("a", "drop"), "regret"], 0.7)
    assert m.loc[("a", "drop"), "pick_step"] == 60 and np.isclose(m.loc[("a", "drop"), "regret_pick"], 0.1)
    assert "reference fell" in m.loc[("a", "drop"), "reasons"]
    assert m.loc[("a", "none"), "regret"] == 0.9 and not m.loc[("a", "none"), "stopped"]
    # "b" at point 3 (n = 4): 0.5 below 1.0, z = 0.5 / 0.0707 = 7.1 > 1.817 + 0.7 ln 4 = 2.79 (warn), point 4: stop
    # (gold 0.9, not early)
    assert m.loc[("b", "drop"), "stop_step"] == 40 and not m.loc[("b", "drop"), "early"]
    assert np.isclose(m.loc[("b", "drop"), "regret"], 0.1) and m.loc[("b", "drop"), "pick_step"] == 20
    # the same stop on a curve whose gold rises late is early: 0.3 at point 4 < half of 1.0
    late = np.array([0, .05, .1, .2, .3, .35, .8, 1.0, .9, .8, .7])
    mon2 = evaluate(trace("d", late, soon), {**KW, "patience": 2}, {"drop": ("reference-drop",)},
                    {"ens": "reference"}).iloc[0]
    assert mon2["stop_step"] == 40 and mon2["early"] and np.isclose(mon2["regret"], 0.7)
    s = summary(mon).set_index("rule")
    assert s.loc["none", "curves"] == 2 and np.isclose(s.loc["none", "median_regret"], 0.9)
    assert s.loc["drop", "stopped"] == 1.0


def test_each_reference_is_evaluated_and_a_missing_one_skipped():
    gold = np.array([0, .4, .6, .8, .9, 1.0, .9, .7, .5, .3, .1])
    t = trace("a", gold, gold)
    t["second"] = np.nan  # no second reward model for this curve
    t["strong"] = gold[::-1]
    t["strong_se"] = 0.05
    mon = evaluate(t, KW, {"drop": ("reference-drop",), "none": ()},
                   {"ens": "reference", "second": "second", "strong": "strong"})
    assert mon[["reference", "rule"]].values.tolist() == [["ens", "drop"], ["strong", "drop"], ["", "none"]]
    # the reference is gold itself: at point 6 0.1 below 1.0, z = 1.41 < 1.817 + 0.7 ln 7 = 3.18; point 7: points
    # 6-7 are 0.2 below, z = 0.2 / 0.0612 = 3.266 < 1.817 + 0.7 ln 8 = 3.273; point 8: points 6-8 are 0.3 below,
    # z = 0.3 / 0.0577 = 5.2: stop (gold 0.5), rolled back to point 5, the peak
    assert mon.iloc[0]["stop_step"] == 80 and np.isclose(mon.iloc[0]["regret"], 0.5)
    assert mon.iloc[0]["pick_step"] == 50 and np.isclose(mon.iloc[0]["regret_pick"], 0.0)


def test_summary_keeps_the_no_monitor_row_after_a_csv_round_trip(tmp_path):
    gold = np.array([0, .4, .6, .8, .9, 1.0, .9, .7, .5, .3, .1])
    evaluate(trace("a", gold, gold), KW, {"drop": ("reference-drop",), "none": ()},
             {"ens": "reference"}).to_csv(tmp_path / "m.csv", index=False)
    s = summary(pd.read_csv(tmp_path / "m.csv")).set_index("rule")
    assert list(s.index) == ["drop", "none"] and np.isclose(s.loc["none", "median_regret"], 0.9)

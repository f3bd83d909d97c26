"""The online monitor: each signal on curves with a known answer, with and without a KL, and the monitor command."""
import json

import numpy as np
import pytest

from overopt.laws import peak, predict
from overopt.online.monitor import Monitor, steps_text


def feed(mon, kl, proxy, reference=None, members=None, se=None):
    out = []
    for i, k in enumerate(kl):
        out.append(mon.update(i, k, proxy[i], None if reference is None else reference[i],
                              None if members is None else members[i], reference_se=None if se is None else se[i]))
    return out


def rise_and_fall(n=60, peak_at=24, gain=4.0, fall=5.0, sd=0.05, seed=0):
    """A reference that rises by ``gain`` noise sd to point ``peak_at``, falls by ``fall`` over 5 points, stays."""
    t = np.arange(n)
    mu = np.where(t <= peak_at, gain * t / peak_at, gain - fall * np.clip((t - peak_at) / 5, 0, 1))
    return 0.4 + sd * (mu + np.random.default_rng(seed).standard_normal(n))


def test_quiet_while_the_reference_rises():
    kl = np.linspace(0.1, 5, 60)
    ref = 0.5 * np.sqrt(kl) + 0.02 * np.random.default_rng(1).standard_normal(60)
    assert {s.state for s in feed(Monitor(), kl, np.sqrt(kl), reference=ref)} == {"ok"}


def test_stops_soon_after_the_reference_falls_and_names_the_peak():
    ref = rise_and_fall()
    kl = np.linspace(0, 6, 60)
    statuses = feed(Monitor(patience=2, signals=("reference-drop",)), kl, kl, reference=ref)
    states = [s.state for s in statuses]
    first = states.index("stop")
    assert 24 < first <= 39 and states[first - 1] == "warn"  # after the peak (24), within 10 points of the fall (29)
    st = statuses[first]
    assert st.reasons[0].startswith("reference fell: steps ") and "standard errors against the" in st.reasons[0]
    assert 18 <= st.best_step <= 28 and 24 in st.tied  # the peak's neighbourhood, the peak itself among the ties
    assert "stop" not in states[:25]


def test_divergence_stops_when_the_proxy_climbs_and_the_reference_does_not():
    """The most blatant reward hacking: the proxy rises from 0.20 to 0.68, the reference stays near 0."""
    rng = np.random.default_rng(3)
    proxy = np.linspace(0.2, 0.68, 50) + 0.02 * rng.standard_normal(50)
    gold = 0.01 + 0.01 * rng.standard_normal(50)
    statuses = feed(Monitor(), [None] * 50, proxy, reference=gold)
    stop = next(s for s in statuses if s.state == "stop")
    assert stop.signals == ["divergence"] and "the proxy rose" in stop.reasons[0]
    assert "less than 0.1 of the proxy's rise" in stop.reasons[0]
    # the same proxy with a reference that keeps up: no stop
    up = feed(Monitor(), [None] * 50, proxy, reference=0.5 * proxy + 0.01 * rng.standard_normal(50))
    assert {s.state for s in up} == {"ok"}


def test_a_log_without_kl_is_judged_on_steps():
    ref = rise_and_fall()
    mon = Monitor(signals=("reference-drop", "fitted-peak"))
    statuses = feed(mon, [None] * 60, np.arange(60.0), reference=ref)
    assert "stop" in {s.state for s in statuses}
    assert "fitted-peak" not in {n for s in statuses for n in s.signals}  # the laws need a KL
    assert "(no KL logged: judged on steps)" in mon.summary()


def test_the_fitted_peak_warns_and_never_stops_alone():
    alpha, beta = 0.8, 0.35
    kl_peak = peak("rl", alpha, beta)[0]  # 13.1
    kl = np.linspace(0, 30, 31)
    ref = 0.3 + predict("rl", alpha, beta, kl) + np.random.default_rng(0).normal(0, 0.005, len(kl))
    statuses = feed(Monitor(signals=("fitted-peak",), n_boot=50), kl, np.log1p(kl), reference=ref)
    warned = [i for i, s in enumerate(statuses) if s.state == "warn"]
    assert warned and kl[warned[0]] > kl_peak and "past the fitted peak" in statuses[warned[0]].reasons[0]
    assert "stop" not in {s.state for s in statuses}


def test_points_with_their_own_standard_error_let_a_short_curve_stop():
    """13 evaluations of a reference averaged over many responses (the toy world's): each point's standard error
    is known, so the rule judges from the third point; the fall after the sixth is caught."""
    ref = np.r_[np.linspace(0, 1.0, 7), [0.8, 0.6, 0.5, 0.45, 0.4, 0.4]]
    se = np.full(13, 0.05)
    statuses = feed(Monitor(signals=("reference-drop",)), np.arange(13.0), np.arange(13.0), reference=ref, se=se)
    stop = next(i for i, s in enumerate(statuses) if s.state == "stop")
    assert 7 <= stop <= 9 and statuses[stop].best_step == 6


def test_disagreement_rising_with_the_proxy_warns_then_stops():
    n = 10
    kl = np.linspace(0.1, 5, n)
    spread = np.array([.3, .28, .26, .25, .25, .3, .4, .45, .6, .8])  # low 0.25, then +20%, +60%, +80%, +140%, +220%
    members = [np.array([-s, 0, s]) * np.sqrt(1.5) for s in spread]  # population std = s
    statuses = feed(Monitor(disagreement_rise=0.5), kl, np.log1p(kl), members=members)
    states = [s.state for s in statuses]
    assert states[:6] == ["ok"] * 6 and states[6:8] == ["warn", "warn"] and states[8:] == ["stop", "stop"]
    assert "disagreement up 60%" in statuses[6].reasons[0]


def test_bad_values_and_settings():
    with pytest.raises(ValueError, match="step 3: step and proxy must be finite"):
        Monitor().update(3, 0.1, float("nan"))
    with pytest.raises(ValueError, match="min_points >= 3"):
        Monitor(min_points=2)
    with pytest.raises(ValueError, match="alpha must be between"):
        Monitor(alpha=0.5)
    with pytest.raises(ValueError, match="subset of reference-drop"):
        Monitor(signals=("gold",))
    assert Monitor().update(0, None, 0.0).best_step is None
    assert steps_text([10, 20, 30, 50, 70, 80]) == "10-30, 50, 70-80"


def write_log(path, ref, kl=True):
    with open(path, "w") as f:
        for i, r in enumerate(ref):
            row = {"step": 10 * (i + 1), "reward": 0.2 + 0.01 * i, "gold": round(float(r), 4)}
            if kl:
                row["objective/kl"] = 0.1 * i
            f.write(json.dumps(row) + "\n")


def test_monitor_command_stops_on_a_fall_and_says_where_to_roll_back(tmp_path, capsys):
    from overopt.cli import main

    f = tmp_path / "train.jsonl"
    write_log(f, rise_and_fall())
    assert main(["monitor", str(f), "--reference-col", "gold"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("step 10  KL 0  ok")
    stop = next(line for line in out if "  stop: " in line)
    assert "reference fell" in stop and "best checkpoint by the reference: step" in stop
    assert out[-1].startswith("verdict: ") and "last status stop; best checkpoint by the reference: step" in out[-1]
    assert "not distinguishable from it: steps" in out[-1]
    write_log(f, rise_and_fall(), kl=False)  # no KL column: judged on steps, said
    assert main(["monitor", str(f), "--reference-col", "gold"]) == 0
    cap = capsys.readouterr()
    assert "stop" in cap.out and "no KL logged: judged on steps" in cap.out
    assert main(["monitor", str(f), "--reference-col", "nope"]) == 2
    assert "no column 'nope'" in capsys.readouterr().err


def test_monitor_command_follows_a_growing_log(tmp_path, capsys):
    import threading
    import time

    from overopt.cli import main

    f = tmp_path / "train.jsonl"
    ref = rise_and_fall(n=45)

    def writer():
        for i, r in enumerate(ref):
            with open(f, "a") as fh:
                line = json.dumps({"step": i, "objective/kl": 0.5 * i, "objective/scores": 0.01 * i, "eval/gold": r})
                fh.write(line[:10])      # a half-written line first: the monitor must wait for its end
                fh.flush()
                time.sleep(0.005)
                fh.write(line[10:] + "\n")
            time.sleep(0.005)

    t = threading.Thread(target=writer)
    t.start()
    code = main(["monitor", str(f), "--follow", "--interval", "0.01", "--max-wait", "2", "--reference-col",
                 "eval/gold"])
    t.join()
    out = capsys.readouterr().out.splitlines()
    assert code == 0 and out[0].startswith("step 0  KL 0  ok")
    assert "  stop: reference fell" in out[-2] and out[-1].startswith("verdict: ")


def test_monitor_waits_for_a_log_that_is_not_there_yet(tmp_path, capsys):
    from overopt.cli import main

    f = tmp_path / "later.jsonl"
    assert main(["monitor", str(f), "--follow", "--interval", "0.01", "--max-wait", "0.05"]) == 0
    assert "no new line for 0.05 s; last status ok" in capsys.readouterr().out
    f.write_text('{"step": 0, "kl": 0')  # half a line
    assert main(["monitor", str(f), "--follow", "--interval", "0.01", "--max-wait", "0.05"]) == 0
    assert main(["monitor", str(f)]) == 2  # read once, as it is: not valid JSON
    assert "not valid JSON" in capsys.readouterr().err

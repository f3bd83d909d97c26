"""The online monitor: each signal on curves with a known answer, and the Trainer callback."""
import numpy as np
import pytest

from overopt.laws import peak, predict
from overopt.online.monitor import Monitor, OveroptCallback


def feed(mon, kl, proxy, reference=None, members=None):
    out = []
    for i, k in enumerate(kl):
        out.append(mon.update(i, k, proxy[i], None if reference is None else reference[i],
                              None if members is None else members[i]))
    return out


def test_quiet_while_the_reference_rises():
    kl = np.linspace(0.1, 5, 12)
    statuses = feed(Monitor(), kl, np.sqrt(kl), reference=0.5 * np.sqrt(kl))
    assert [s.state for s in statuses] == ["ok"] * 12


def test_stops_after_the_reference_falls_for_patience_updates():
    # reference gain peaks at point 6 (0.6) and falls by 0.1 per point
    ref = np.array([0, .1, .2, .3, .4, .5, .6, .55, .5, .4, .3])
    kl = np.arange(len(ref), dtype=float)
    statuses = feed(Monitor(drop=0.1, patience=2, n_boot=20), kl, kl, reference=ref)
    states = [s.state for s in statuses]
    # gains over the baseline 0.1 (the first three's mean): best 0.5; 0.45 is within 10% of it; 0.4 is the first
    # point below: warn; 0.3 the second: stop (noise-free: no allowance)
    assert states[:8] == ["ok"] * 8 and states[8] == "warn" and states[9] == "stop"
    assert "below its best 0.5 (at KL 6; noise allowance 0)" in statuses[9].reasons[0]
    assert any("proxy rising while the reference falls" in r for r in statuses[9].reasons)


def test_stops_past_the_fitted_peak_and_not_before():
    alpha, beta = 0.8, 0.35
    kl_peak = peak("rl", alpha, beta)[0]  # 13.1
    kl = np.linspace(0, 30, 31)  # the first point is the policy at the start, KL 0
    ref = 0.3 + predict("rl", alpha, beta, kl) + np.random.default_rng(0).normal(0, 0.005, len(kl))
    statuses = feed(Monitor(drop=0.5, n_boot=50), kl, np.log1p(kl), reference=ref)
    first_stop = next(i for i, s in enumerate(statuses) if s.state == "stop")
    assert kl[first_stop] > kl_peak and kl[first_stop] < 1.5 * kl_peak
    assert "past the fitted peak" in statuses[first_stop].reasons[0]


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
    with pytest.raises(ValueError, match="step 3: step, kl and proxy must be finite"):
        Monitor().update(3, float("nan"), 1.0)
    with pytest.raises(ValueError, match="min_points >= 3"):
        Monitor(min_points=2)


def test_trainer_callback_stops_training():
    from transformers import TrainerControl, TrainerState

    cb = OveroptCallback(Monitor(drop=0.1, patience=1, n_boot=10), reference_key="eval/gold")
    state, control = TrainerState(), TrainerControl()
    ref = [0, .2, .4, .5, .6, .5, .3]
    for i, r in enumerate(ref):
        state.global_step = i + 1
        # TRL's GRPO/RLOO names: a per-token kl beside the mean completion length
        control = cb.on_log(None, state, control, logs={"kl": 0.01 * (i + 1), "completions/mean_length": 20.0,
                                                        "reward": 0.1 * i, "eval/gold": r})
        if i < 5:
            assert not control.should_training_stop
    assert control.should_training_stop
    assert cb.monitor.kl == pytest.approx([0.2 * (i + 1) for i in range(7)])
    assert cb.on_log(None, state, TrainerControl(), logs={"loss": 1.0}).should_training_stop is False  # not a KL line


def test_monitor_command_follows_a_growing_log(tmp_path, capsys):
    import json
    import threading
    import time

    from overopt.cli import main

    f = tmp_path / "train.jsonl"
    ref = [0, .2, .4, .5, .6, .5, .3, .2, .1]

    def writer():
        for i, r in enumerate(ref):
            with open(f, "a") as fh:
                line = json.dumps({"step": i, "objective/kl": 0.5 * i, "objective/scores": 0.3 * i, "eval/gold": r})
                fh.write(line[:10])      # a half-written line first: the monitor must wait for its end
                fh.flush()
                time.sleep(0.02)
                fh.write(line[10:] + "\n")
            time.sleep(0.03)

    t = threading.Thread(target=writer)
    t.start()
    code = main(["monitor", str(f), "--follow", "--interval", "0.02", "--max-wait", "2", "--reference-col",
                 "eval/gold", "--patience", "2"])
    t.join()
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0].startswith("step 0  KL 0  ok")
    # the reference's own wiggle sets a noise allowance of 0.11: 0.5 after 0.6 is within it, 0.3 and 0.2 are not
    assert out[-2].startswith("step 7  KL 3.5  stop") and "below its best" in out[-2]
    assert out[-2].endswith("(best checkpoint by the reference: step 4)")
    assert out[-1] == "verdict: 8 updates to step 7 (KL 3.5); last status stop; best checkpoint by the reference: step 4"
    assert any(" warn:" in line for line in out[:-2])
    # without --follow: one pass over what is there, the final status printed
    assert main(["monitor", str(f), "--reference-col", "eval/gold"]) == 0
    assert "stop" in capsys.readouterr().out
    assert main(["monitor", str(f), "--reference-col", "nope"]) == 2
    assert "no column 'nope'" in capsys.readouterr().err


def test_monitor_waits_for_a_log_that_is_not_there_yet(tmp_path, capsys):
    from overopt.cli import main

    f = tmp_path / "later.jsonl"
    assert main(["monitor", str(f), "--follow", "--interval", "0.01", "--max-wait", "0.05"]) == 0
    assert "no new line for 0.05 s; last status ok" in capsys.readouterr().out
    f.write_text('{"step": 0, "kl": 0')  # half a line
    assert main(["monitor", str(f), "--follow", "--interval", "0.01", "--max-wait", "0.05"]) == 0
    assert main(["monitor", str(f)]) == 2  # read once, as it is: not valid JSON
    assert "not valid JSON" in capsys.readouterr().err


def test_signals_select_what_can_stop_and_scalar_disagreement():
    ref = np.array([0, .1, .2, .3, .4, .5, .6, .55, .5, .4, .3])
    kl = np.arange(len(ref), dtype=float)
    only_fit = feed(Monitor(signals=("fitted-peak",), n_boot=20), kl, kl, reference=ref)
    assert all("reference-drop" not in s.signals and "divergence" not in s.signals for s in only_fit)
    drop = feed(Monitor(signals=("reference-drop",), n_boot=20), kl, kl, reference=ref)
    assert [s.state for s in drop][8:10] == ["warn", "stop"] and drop[9].signals == ["reference-drop"]
    # a spread the trainer measured itself is used as given: low 0.2, then +100% (warn), +300% (stop)
    mon = Monitor(signals=("disagreement",), disagreement_rise=0.5)
    states = [mon.update(i, i, i, disagreement=d).state for i, d in enumerate([.3, .25, .2, .2, .2, .4, .8])]
    assert states == ["ok"] * 5 + ["warn", "stop"]
    with pytest.raises(ValueError, match="subset of reference-drop"):
        Monitor(signals=("gold",))


def test_best_step_is_the_references_best_so_far():
    ref = np.array([0, .1, .2, .3, .4, .5, .6, .55, .5, .4, .3])
    steps = np.arange(len(ref)) * 10.0
    mon = Monitor(drop=0.1, patience=2, n_boot=20)
    statuses = [mon.update(s, s / 10, s / 10, reference=r) for s, r in zip(steps, ref)]
    assert statuses[3].best_step == 30 and statuses[9].state == "stop" and statuses[9].best_step == 60
    assert Monitor().update(0, 0, 0).best_step is None

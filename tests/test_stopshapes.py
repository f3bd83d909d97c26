"""The runs practitioners bring, each built with a known truth in the shape of a real log the issue found a defect on:
a documented turn, noisy references, a fall of 3 noise sd, no KL, and the quieter defects of reading a log."""
import json
import math

import numpy as np
import pandas as pd
import pytest

from overopt.cli import main
from overopt.laws import predict
from overopt.online.monitor import Monitor
from overopt.online.power import trainer_log
from overopt.online.verdict import fit_log

SEEDS = 200
FAST = ("reference-drop", "divergence")  # the stop signals (the fitted peak only warns, and refits cost time)


def run_monitor(rows, reference="gold", proxy="reward", kl=None, signals=FAST):
    """The first stop's status over a log's rows (the last status if none)."""
    mon = Monitor(n_boot=0, signals=signals)
    for r in rows:
        st = mon.update(r["step"], r[kl] if kl else None, r[proxy], reference=r[reference])
        if st.state == "stop":
            return st
    return st


def turn_log(seed, fall_to=0.49, sd=0.063):
    """The public GRPO run's shape: 500 steps logged every 10; the proxy rises steadily; an exact-match accuracy
    (batch noise sd 0.063, a mean of ~64 answers) rises from 0.45 to 0.59 by step 180 and falls to ``fall_to`` by
    step 240, then stays."""
    rng = np.random.default_rng(seed)
    step = np.arange(10, 501, 10)
    mu = np.where(step <= 180, 0.45 + 0.14 * np.clip((step - 60) / 120, 0, 1),
                  0.59 - (0.59 - fall_to) * np.clip((step - 180) / 60, 0, 1))
    gold = mu + sd * rng.standard_normal(len(step))
    proxy = 0.2 + 0.6 * step / 500 + 0.03 * rng.standard_normal(len(step))
    return [{"step": int(s), "reward": float(p), "rewards/accuracy/mean": float(g), "completions/mean_length": 120.0,
             "loss": 0.01} for s, p, g in zip(step, proxy, gold)]


def write_state(path, rows):
    path.write_text(json.dumps({"global_step": rows[-1]["step"], "log_history": rows}))


def test_a_documented_turn_is_never_stopped_before_its_peak_and_a_clear_one_is_caught():
    """The run's own fall (0.1, 1.6 noise sd per point) is caught on some seeds, never before the peak; the same
    run falling by 3 noise sd (to 0.40) is caught on most, after the peak, rolled back to its neighbourhood."""
    documented = [run_monitor(turn_log(s), "rewards/accuracy/mean") for s in range(SEEDS)]
    assert all(st.step > 180 for st in documented if st.state == "stop")
    clear = [run_monitor(turn_log(s, 0.40), "rewards/accuracy/mean") for s in range(SEEDS)]
    stops = [st for st in clear if st.state == "stop"]
    assert len(stops) >= 0.8 * SEEDS and all(st.step > 180 for st in stops)
    assert np.median([st.best_step for st in stops]) == pytest.approx(190, abs=20)


def test_the_documented_turn_through_the_command(tmp_path, capsys):
    f = tmp_path / "trainer_state.json"
    write_state(f, turn_log(3, 0.40))
    assert main(["monitor", str(f), "--reference-col", "rewards/accuracy/mean"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert "columns: proxy 'reward', reference 'rewards/accuracy/mean'" in err and "no KL column" in err
    assert len(lines) <= 4 and "stop: reference fell" in lines[-2]  # ok, perhaps a warn, the stop, the verdict
    stop = int(lines[-2].split()[1])
    assert stop > 180 and "best checkpoint by the reference: step" in lines[-1]  # after the peak
    # cut at step 100, while it still rises: the best so far comes with the steps it cannot be told from
    write_state(f, turn_log(3, 0.40)[:10])
    assert main(["monitor", str(f), "--reference-col", "rewards/accuracy/mean"]) == 0
    # (the old monitor named step 100 alone): ten points cannot tell any step from the best
    assert "last status ok; best checkpoint by the reference: step 100 (not distinguishable from it: steps 10-100)" \
        in capsys.readouterr().out


@pytest.mark.parametrize("shape", ["flat", "rising"])
def test_noisy_references_that_do_not_fall_stop_at_most_alpha(shape):
    """The issue's synthetic TRL logs (50 points, gold sd 0.05, a proxy that keeps rising): the old monitor stopped
    on 17% (flat) and 22% (rising), once at the fifth point."""
    stops = []
    for seed in range(SEEDS):
        st = run_monitor(trainer_log(shape, points=50, seed=seed).to_dict("records"), kl="kl")
        if st.state == "stop":
            stops.append(st.step)
    assert len(stops) <= 0.05 * SEEDS and all(s >= 200 for s in stops)  # no look before 20 points (step 200)


def test_a_fall_of_3_noise_sd_is_caught_soon_after_the_peak_and_names_its_neighbourhood():
    """Rise for 20 points, fall by 3 noise sd over 5, stay: stopped after the peak and within 10 points of the
    fall's end on >= 80% of seeds, the checkpoint kept within 5 points of the peak."""
    caught = near = 0
    for seed in range(SEEDS):
        df = trainer_log("fall", points=50, seed=seed, fall=3.0, peak=0.4)  # peak at point 20 (step 210)
        st = run_monitor(df.to_dict("records"), kl="kl")
        if st.state == "stop" and 210 < st.step <= 210 + 50 + 100:
            caught += 1
            near += abs(st.best_step - 210) <= 50
    assert caught >= 0.8 * SEEDS and near >= 0.8 * caught


def test_a_run_without_kl_gets_a_verdict_on_steps_and_reward_hacking_a_divergence_stop(tmp_path, capsys):
    """The public run: the proxy (the code compiles) rises from 0.20 to 0.68, gold (the tests pass) stays near 0;
    TRL GRPO at beta 0 logs no KL."""
    rng = np.random.default_rng(5)
    f = tmp_path / "grpo.jsonl"
    f.write_text("\n".join(json.dumps({"step": 10 * i, "reward": 0.2 + 0.48 * i / 49 + 0.02 * rng.standard_normal(),
                                       "rewards/tests_pass/mean": 0.01 + 0.01 * rng.standard_normal()})
                           for i in range(50)) + "\n")
    assert main(["monitor", str(f), "--reference-col", "rewards/tests_pass/mean"]) == 0
    out, err = capsys.readouterr()
    assert "no KL column" in err and "judged on the steps" in err
    stop = next(line for line in out.splitlines() if "  stop: " in line)
    assert "divergence: from steps" in stop and "the proxy rose" in stop
    assert "(no KL logged: judged on steps)" in out.splitlines()[-1]
    assert main(["fit", str(f), "--reward-col", "rewards/tests_pass/mean", "--forecast", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["verdict"].startswith("inconclusive (no KL logged, so no peak forecast") and row["kl_now"] is None
    assert main(["fit", str(f)]) == 0
    assert "no KL logged: no law to fit" in capsys.readouterr().out


def test_a_train_column_is_preferred_and_the_reference_is_never_the_reward(tmp_path, capsys):
    rng = np.random.default_rng(0)
    rows = [{"step": i, "kl": 0.1 * i, "train_reward": 0.02 * i + 0.01 * rng.standard_normal()} for i in range(50)]
    rows += [{"step": i, "eval_reward": 0.5 + 0.01 * i} for i in range(0, 50, 10)]  # five evaluation lines
    f = tmp_path / "log.jsonl"
    f.write_text("\n".join(map(json.dumps, rows)) + "\n")
    assert main(["fit", str(f), "--json", "--n-boot", "20"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)[0]["points"] == 50
    assert "reward 'train_reward' (over 'eval_reward' (5 values): an unprefixed or train column is preferred" in err
    assert main(["monitor", str(f), "--reference-col", "eval_reward"]) == 0
    assert "proxy 'train_reward', reference 'eval_reward'" in capsys.readouterr().err
    assert main(["monitor", str(f), "--reward-col", "eval_reward", "--reference-col", "eval_reward"]) == 2
    assert "is also the reference column" in capsys.readouterr().err


def test_intervals_on_short_logs_cover_the_truth():
    """12 points (one per bin): the 90% intervals of alpha and beta hold the truth on >= 80% of seeds (measured
    0.90 over 400), where resampling within bins of one point gave intervals of +-2%."""
    a, b = 0.8, 0.35
    hit = []
    for seed in range(100):
        kl = np.linspace(0.1, 25, 12)
        reward = 0.3 + predict("rl", a, b, kl) + np.random.default_rng(seed).normal(0, 0.1, 12)
        f = fit_log(np.arange(12), kl, reward, "rl", n_boot=200, seed=seed).fit
        hit.append(f.alpha_lo <= a <= f.alpha_hi and f.beta_lo <= b <= f.beta_hi)
    assert np.mean(hit) >= 0.8


def test_a_tensorboard_folder_of_several_runs_is_one_curve_per_run(tmp_path, capsys):
    from torch.utils.tensorboard import SummaryWriter

    for run, gain in (("lr-1e-6", 0.5), ("lr-3e-6", 0.8), ("lr-1e-5", 1.1)):
        w = SummaryWriter(str(tmp_path / "runs" / run))
        for s in range(1, 31):  # each from step 1
            w.add_scalar("train/kl", 0.2 * s, s)
            w.add_scalar("train/reward", gain * math.sqrt(0.2 * s), s)
        w.close()
    assert main(["fit", str(tmp_path / "runs"), "--json", "--n-boot", "20"]) == 0
    out, err = capsys.readouterr()
    assert sorted(r["curve"] for r in json.loads(out)) == ["lr-1e-5", "lr-1e-6", "lr-3e-6"]
    assert "3 runs, one curve each: lr-1e-5, lr-1e-6, lr-3e-6" in err and "KL does not grow" not in err
    assert main(["monitor", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "holds 3 runs (lr-1e-5, lr-1e-6, lr-3e-6): the monitor follows one" in err


def test_forecast_json_and_gamma_with_forecast(tmp_path, capsys):
    kl = np.linspace(0.1, 20, 60)
    rng = np.random.default_rng(1)
    pd.DataFrame({"step": np.arange(60), "kl": kl, "gold": predict("rl", 0.6, 0.3, kl) + 0.01 * rng.normal(size=60),
                  "proxy": predict("rl", 0.9, 0.2, kl)}).to_csv(tmp_path / "log.csv", index=False)
    f = str(tmp_path / "log.csv")
    assert main(["fit", f, "--forecast", "--json", "--proxy-col", "proxy", "--n-boot", "50"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["verdict"].startswith("past the peak: stop") and row["gamma"] > 0
    assert main(["fit", f, "--forecast", "--proxy-col", "proxy", "--n-boot", "50"]) == 0
    head, line = capsys.readouterr().out.splitlines()
    assert "gamma" in head and f"{row['gamma']:.3g}" in line


def test_the_numbers_in_notes_and_table_agree(tmp_path, capsys):
    rng = np.random.default_rng(2)
    kl = np.abs(2 + 0.3 * rng.standard_normal(40))  # a KL that does not grow
    pd.DataFrame({"step": np.arange(40), "kl": kl, "reward": rng.normal(size=40)}).to_csv(tmp_path / "l.csv")
    assert main(["fit", str(tmp_path / "l.csv"), "--forecast", "--n-boot", "20"]) == 0
    out, err = capsys.readouterr()
    kl_now = out.splitlines()[1].split()[2]
    assert f"to {kl_now})" in err  # "KL does not grow with the steps (from a to <KL now>)"
    one = tmp_path / "one.csv"
    one.write_text("step,kl,reward,gold\n1,0.1,0.2,0.3\n")
    assert main(["monitor", str(one), "--reference-col", "gold"]) == 0
    assert "verdict: 1 update to step 1" in capsys.readouterr().out


def test_a_non_finite_value_drops_its_row_with_a_note(tmp_path, capsys):
    kl = np.linspace(0.1, 10, 30)
    df = pd.DataFrame({"step": np.arange(30), "kl": kl, "reward": predict("rl", 0.6, 0.3, kl)})
    df.loc[4, "kl"], df.loc[7, "reward"] = np.inf, np.nan  # a spike's infinite KL, a NaN reward
    f = tmp_path / "log.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in df.to_dict("records")) + "\n")  # Infinity, NaN: as Python writes
    assert main(["fit", str(f), "--json", "--n-boot", "20"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)[0]["points"] == 28
    assert "dropped 2 line(s) whose 'kl' or 'reward' is missing or not a finite number" in err and "4, 7" in err
    f.write_text('{"step": 1, "kl": 1, "reward": 1}\n{"step": 2, "kl": Infinity, "reward": 2}\n')
    assert main(["fit", str(f)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_a_long_log_is_fitted_in_bounded_memory(tmp_path):
    """100,000 JSONL lines: reading and fitting stay far below what 100,000 dicts, a 4-byte-a-character copy of the
    text and [200, 100,000] bootstrap arrays took (the issue: 2.1 GB at 400,000 lines; `bench/logmem.py`)."""
    import tracemalloc

    from overopt.online.fitlog import fit_log_file

    rng = np.random.default_rng(0)
    f = tmp_path / "long.jsonl"
    n = 100_000
    kl = np.linspace(0, 40, n)
    reward = 0.3 * np.sqrt(kl) + rng.normal(0, 0.3, n)
    with open(f, "w") as h:
        for i in range(n):
            h.write(f'{{"step": {i}, "loss": 0.1, "learning_rate": 1e-06, "kl": {kl[i]:.6f}, "reward": {reward[i]:.5f}}}\n')
    tracemalloc.start()
    report = fit_log_file(str(f), "rl", n_boot=200)
    peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
    tracemalloc.stop()
    assert report.rows[0]["points"] == n and peak < 120, peak  # MB traced by Python and numpy (measured: 32)

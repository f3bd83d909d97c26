"""End to end through the command line on the smoke preset; bad input gives one line and exit 2."""
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from overopt.cli import main
from overopt.studies.bon import TILT_COLUMNS, bon_columns
from overopt.studies.fits import FIT_COLUMNS, FIT_TABLE_COLUMNS
from overopt.pipeline.core import RM_COLUMNS
from overopt.laws.claims import CLAIM_COLUMNS, verdict
from overopt.laws.curves import SUMMARY_COLUMNS
from overopt.studies.daa import daa_columns
from overopt.pipeline.proxies import CALIBRATION_COLUMNS, RELIABILITY_COLUMNS
from overopt.studies.ensembles import ENSEMBLE_COLUMNS, ensemble_rl_columns
from overopt.studies.learned import LEARNED_COLUMNS
from overopt.studies.length import LENGTH_BON_COLUMNS, LENGTH_COLUMNS
from overopt.config import GOLD_DIMS, active_dims, load_config
from overopt.studies.rl import rl_table_columns


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    root = tmp_path_factory.mktemp("smoke")
    out, cache = root / "out", root / "cache"
    assert main(["run", "--preset", "smoke", "--out", str(out), "--quiet", "--set", f"run.cache_dir={cache}"]) == 0
    return out, cache


def test_smoke_run_writes_every_file_with_the_contract_columns(smoke):
    out, _ = smoke
    for f in ("config.yaml", "manifest.json", "report.html", "plots/fig1_bon.png", "plots/coef_bon.png", "rl.csv"):
        assert (out / f).exists(), f
    assert list(pd.read_csv(out / "rm.csv").columns) == RM_COLUMNS
    assert list(pd.read_csv(out / "bon.csv").columns) == bon_columns(GOLD_DIMS)
    assert list(pd.read_csv(out / "fits.csv").columns) == FIT_TABLE_COLUMNS
    fits = pd.read_csv(out / "fits.csv")  # each fitted curve's identity in columns, matching its name
    bon_fits, rl_fits = fits[fits["method"] == "bon"], fits[fits["method"] == "rl"]
    assert (bon_fits["curve"] == "bon/" + bon_fits["reward"] + "/" + bon_fits["rm"]).all()
    assert (rl_fits["curve"].str.split("/").str[2] == rl_fits["rm"]).all()
    assert set(rl_fits["variant"]) == {"family", "kl_penalty", "policy_size", "iterated"}
    daa_fits = fits[fits["method"] == "daa"]
    assert (daa_fits["curve"] == "daa/gold/" + daa_fits["loss"] + "/pi0-" + daa_fits["policy"]).all()
    tilt = pd.read_csv(out / "tilt.csv")
    assert list(tilt.columns) == TILT_COLUMNS and set(tilt["rm"]) == {"8x1", "16x1", "32x1"}
    for _, t in tilt.groupby("rm"):  # beta falls, KL rises from ~0 to at most ln N
        assert (t["beta"].diff().dropna() < 0).all() and (t["kl"].diff().dropna() > 0).all()
        assert t["kl"].iloc[0] < 0.05 and t["kl"].iloc[-1] <= np.log(32) + 1e-9
    rl = pd.read_csv(out / "rl.csv")
    assert list(rl.columns) == rl_table_columns(GOLD_DIMS) and set(rl["rm"]) == {"8x1", "16x1", "32x1"}
    learned = pd.read_csv(out / "learned.csv")  # what each proxy learned of gold's dimensions
    assert list(learned.columns) == LEARNED_COLUMNS and set(learned["rm"]) == {"8x1", "16x1", "32x1"}
    for _, g in learned.groupby("rm"):
        assert list(g["dimension"]) == list(active_dims(load_config("smoke").gold)) and np.isclose(g["decides"].sum(), 1.0)
        assert (g["weight_lo"] <= g["weight"] + 1e-9).all() and (g["weight"] <= g["weight_hi"] + 1e-9).all()
    assert "What each proxy learned of gold" in (out / "report.html").read_text()
    # each curve's identity is in columns, matching its name
    for curve, g in rl.groupby("curve"):
        v = g.iloc[0]
        want = ("kl_penalty" if "/kl" in curve else "policy_size" if "/pi0-" in curve else
                "iterated" if "/iter" in curve else "family")
        assert (g["variant"] == want).all(), curve
        assert (v["policy"] == curve.split("/pi0-")[1]) if want == "policy_size" else v["policy"] == "32x1"
        assert (float(curve.split("/kl")[1]) == v["penalty"]) if want == "kl_penalty" else np.isnan(v["penalty"])
        assert v["rounds"] == (int(curve.split("/iter")[1]) if want == "iterated" else 1)
    assert (rl.groupby("curve")["step"].max() == 12).all() and (rl.groupby("curve")["kl"].last() > 0).all()
    assert set(rl["curve"]) == {"8x1", "16x1", "32x1", "8x1/kl0.1", "8x1/pi0-16x1", "8x1/iter2"}
    one, two = rl[rl["curve"] == "8x1"], rl[rl["curve"] == "8x1/iter2"]
    assert one["gold"].iloc[:3].tolist() == two["gold"].iloc[:3].tolist()   # the same run until round 2 (step 6)
    assert one["gold"].iloc[-1] != two["gold"].iloc[-1]                     # then a retrained proxy
    assert (rl[rl["curve"] == "8x1/kl0.1"]["kl_coef"] == 0.1).all()
    for name in ("kl_sweep", "policy_size", "iterated"):
        assert (out / "plots" / f"{name}.png").exists(), name
    assert json.loads((out / "manifest.json").read_text())["stages"]["pi0-16x1"]["params"] < \
        json.loads((out / "manifest.json").read_text())["stages"]["pi0"]["params"]
    daa = pd.read_csv(out / "daa.csv")
    assert list(daa.columns) == daa_columns(GOLD_DIMS) and daa["curve"].nunique() == 16
    assert set(daa["policy"].astype(str)) == {"32x1", "16x1"} and (daa.groupby("curve")["epoch_frac"].max() == 1).all()
    assert list(pd.read_csv(out / "daa_summary.csv").columns) == SUMMARY_COLUMNS
    claims = pd.read_csv(out / "claims.csv")
    assert list(claims.columns) == CLAIM_COLUMNS
    assert {"rl gold peaks and falls", "a KL penalty leaves the gold-KL frontier unchanged",
            "daa gold starts to fall within the first epoch"} <= set(claims["claim"])
    for name in ("daa_gold", "daa_winrate", "daa_length"):
        assert (out / "plots" / f"{name}.png").exists(), name
    assert "Direct alignment" in (out / "report.html").read_text()
    assert (out / "plots" / "rl.png").exists()
    m = json.loads((out / "manifest.json").read_text())
    assert m["status"] == "complete" and m["seed"] == 0
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 3 and "best-of-32" in html


def test_smoke_tables_hold_consistent_numbers(smoke):
    out, _ = smoke
    rm, bon = pd.read_csv(out / "rm.csv"), pd.read_csv(out / "bon.csv")
    assert len(rm) == 3 and rm["params"].is_monotonic_increasing
    assert rm["val_acc"].between(0, 1).all()
    for name, g in bon.groupby("rm"):
        assert g["n"].tolist() == [1, 2, 4, 8, 16, 32]
        assert g["gold"].iloc[0] == 0 and g["proxy"].iloc[0] == 0      # n = 1 is pi0
        assert g["proxy"].is_monotonic_increasing                       # best-of-n raises its own proxy
        assert (g["kl_est"] <= g["kl_bound"] + 1e-9).all()
        assert (g["gold_lo"] <= g["gold"] + 1e-9).all() and (g["gold"] <= g["gold_hi"] + 1e-9).all()
    # the best-of-n trends are read again on each prompt resample; validation accuracy has none
    scaling = pd.read_csv(out / "scaling.csv").set_index(["coef", "axis"])
    share = scaling.loc[("beta_bon", "params"), "support"] * 50  # of the smoke preset's 50 resamples
    assert 0 <= share <= 50 and share == pytest.approx(round(share))
    assert np.isnan(scaling.loc[("val_acc", "params"), "support"])
    claims = pd.read_csv(out / "claims.csv")
    assert [verdict(h, s) for h, s in zip(claims["holds"], claims["support"])] == claims["verdict"].tolist()
    assert claims.set_index("claim").loc["beta_bon varies log-linearly with log parameters", "support"] == \
        scaling.loc[("beta_bon", "params"), "support"]


def test_smoke_ensembles_and_calibration(smoke):
    out, _ = smoke
    ens, bon = pd.read_csv(out / "ensembles.csv"), pd.read_csv(out / "bon.csv")
    assert list(ens.columns) == ENSEMBLE_COLUMNS
    assert set(ens["ensemble"]) == {"8x1/noise0", "8x1/noise0.25"}
    assert (ens.groupby("ensemble")["objective"].unique().map(set) ==
            {"single", "mean", "wco", "uwo", "member0", "member1"}).all()
    assert (ens["disagreement"] >= 0).all()
    # member 0 at the run's own noise is the family's 8x1: alone it picks what bon.csv's 8x1 picks
    e0 = ens[ens["ensemble"] == "8x1/noise0"].set_index(["objective", "n"])["gold"]
    np.testing.assert_allclose(e0["member0"].to_numpy(), bon[bon["rm"] == "8x1"]["gold"].to_numpy(), atol=1e-9)
    np.testing.assert_allclose(e0["single"].to_numpy(), (e0["member0"] + e0["member1"]).to_numpy() / 2, atol=1e-9)
    for _, g in ens.groupby(["ensemble", "objective"]):
        assert g["proxy"].is_monotonic_increasing and g["n"].tolist() == [1, 2, 4, 8, 16, 32]
    cal, rel = pd.read_csv(out / "calibration.csv"), pd.read_csv(out / "reliability.csv")
    assert list(cal.columns) == CALIBRATION_COLUMNS and list(rel.columns) == RELIABILITY_COLUMNS
    # the family, then the members that are not family proxies (8x1/noise0#0 is 8x1 itself)
    assert cal["rm"].tolist() == ["8x1", "16x1", "32x1", "8x1/noise0#1", "8x1/noise0.25#0", "8x1/noise0.25#1"]
    assert (cal["tau"] > 0).all() and cal[["ece", "ece_calibrated"]].stack().between(0, 0.5).all()
    for _, g in rel.groupby(["rm", "calibrated"]):  # every held-out pair of the second half is in one bin
        assert g["count"].sum() == 100 and g["confidence"].between(0.5, 1).all()
    erl = pd.read_csv(out / "ensemble_rl.csv")
    assert list(erl.columns) == ensemble_rl_columns(GOLD_DIMS) and erl["curve"].nunique() == 8
    assert erl["disagreement"].notna().all() and (erl["disagreement"] >= 0).all()
    claims = pd.read_csv(out / "claims.csv")
    assert claims["claim"].str.startswith("ensemble wco reaches a higher best-of-n gold peak").sum() == 2
    ens_rows = claims[claims["claim"].str.startswith("ensemble ") & claims["claim"].str.contains("gold peak than")]
    bon_rows = ens_rows["claim"].str.contains("best-of-n")
    assert ens_rows.loc[bon_rows, "support"].between(0, 1).all() and ens_rows.loc[~bon_rows, "support"].isna().all()
    html = (out / "report.html").read_text()
    assert "Reward-model ensembles" in html and "Calibration" in html
    for name in ("ensembles_bon", "ensembles_rl", "reliability"):
        assert (out / "plots" / f"{name}.png").exists(), name


def test_smoke_length_tables(smoke):
    out, _ = smoke
    length, lbon = pd.read_csv(out / "length.csv"), pd.read_csv(out / "length_bon.csv")
    assert list(length.columns) == LENGTH_COLUMNS and list(lbon.columns) == LENGTH_BON_COLUMNS
    # smoke responses stop at 24 tokens: no 6-sentence text fits, so only pi0's lengths are shown
    assert set(length["source"]) == {"pi0"} and (length["count"] >= 20).all()
    bon = pd.read_csv(out / "bon.csv")
    as_trained = lbon[(lbon["variant"] == "as trained") & (lbon["rm"] == "8x1")]
    np.testing.assert_allclose(as_trained["gold"].to_numpy(), bon[bon["rm"] == "8x1"]["gold"].to_numpy(), atol=1e-9)
    assert (lbon[lbon["variant"] == "length-normalised"]["length_coef"] != 0).all()
    assert "<h2>Length</h2>" in (out / "report.html").read_text()


def test_smoke_multi_objective(smoke):
    from overopt.studies.multi import COLLAPSE_COLUMNS, MULTI_COLUMNS, PARETO_COLUMNS, pareto_front
    from overopt.world.toy import GOLD_DIMS

    out, _ = smoke
    multi, pareto, collapse = (pd.read_csv(out / f"{n}.csv") for n in ("multi", "pareto", "collapse"))
    assert list(multi.columns) == MULTI_COLUMNS and list(pareto.columns) == PARETO_COLUMNS
    assert list(collapse.columns) == COLLAPSE_COLUMNS
    curves = multi.groupby(["method", "objective"], sort=False).size()
    assert list(curves.index) == [("best-of-n", "aggregate"), ("best-of-n", "single proxy 8x1"), ("rl", "aggregate")]
    # the single proxy's best-of-n here is bon.csv's 8x1, dimension by dimension
    bon = pd.read_csv(out / "bon.csv")
    single = multi[multi["objective"] == "single proxy 8x1"]
    for col in ["gold"] + [f"gold_{d}" for d in GOLD_DIMS]:
        np.testing.assert_allclose(single[col].to_numpy(), bon[bon["rm"] == "8x1"][col].to_numpy(), atol=1e-9)
    assert len(collapse) == 3 * len(GOLD_DIMS)
    # weights: each dimension alone first, then the simplex, all summing to the number of dimensions
    dims = active_dims(load_config("smoke").gold)  # the dimensions gold weighs (naturalness: not in smoke)
    k = len(dims)
    w = pareto[[f"w_{d}" for d in dims]].to_numpy()
    np.testing.assert_allclose(w[:k], k * np.eye(k))
    np.testing.assert_allclose(w.sum(1), k)
    assert (pareto[[f"w_{d}" for d in GOLD_DIMS if d not in dims]] == 0).all().all()
    np.testing.assert_array_equal(pareto["on_front"], pareto_front(pareto[[f"gold_{d}" for d in dims]]))
    stages = json.loads((out / "manifest.json").read_text())["stages"]
    assert {f"rm dim/{d}" for d in dims} <= set(stages) and not {f"rm dim/{d}" for d in GOLD_DIMS if d not in dims} & set(stages)
    assert "Multi-objective rewards" in (out / "report.html").read_text()


def test_smoke_ai_labelled_preferences(smoke):
    from overopt.studies.aif import AIF_COLUMNS

    out, _ = smoke
    aif, bon = pd.read_csv(out / "aif.csv"), pd.read_csv(out / "bon.csv")
    assert list(aif.columns) == AIF_COLUMNS
    assert list(dict.fromkeys(aif["labeller"])) == ["gold", "rm:32x1", "length:0.05", "dim:sentiment:3"]
    gold = aif[aif["labeller"] == "gold"]
    np.testing.assert_allclose(gold["gold"].to_numpy(), bon[bon["rm"] == "8x1"]["gold"].to_numpy(), atol=1e-9)
    agree = aif.groupby("labeller", sort=False)["agreement"].first()
    assert agree["gold"] == 1.0 and (agree.drop("gold") < 1).all() and (agree > 0.5).all()
    # a judge paid per word makes its proxy pick longer texts than gold's proxy does at n = N
    at_n = aif[aif["n"] == 32].set_index("labeller")["length"]
    assert at_n["length:0.05"] > at_n["gold"]
    assert "AI-labelled preferences" in (out / "report.html").read_text()


def test_smoke_active_learning(smoke):
    from overopt.studies.active import ACTIVE_COLUMNS

    out, _ = smoke
    act = pd.read_csv(out / "active.csv")
    assert list(act.columns) == ACTIVE_COLUMNS
    for _, g in act.groupby("strategy"):
        assert g["labels"].tolist() == [100, 200, 300] and g["val_acc"].between(0, 1).all()
    r0 = act[act["round"] == 0].set_index("strategy")
    assert r0.loc["random", "val_acc"] == r0.loc["disagreement", "val_acc"]  # one shared random start
    assert act[act["strategy"] == "disagreement"]["disagreement"].iloc[:2].notna().all()
    assert "Active learning" in (out / "report.html").read_text()


def test_smoke_monitor_evaluation(smoke):
    from overopt.studies.monitor import GOLD_EVAL, MONITOR_COLUMNS, REFERENCES, RULES

    out, _ = smoke
    mon, trace = pd.read_csv(out / "monitor.csv"), pd.read_csv(out / "monitor_trace.csv")
    rl, cal = pd.read_csv(out / "rl.csv"), pd.read_csv(out / "calibration.csv").set_index("rm")
    assert list(mon.columns) == MONITOR_COLUMNS
    family = ["8x1", "16x1", "32x1"]
    assert sorted(mon["curve"].unique()) == sorted(family) and (mon.groupby("curve").size() == (len(REFERENCES) + len(GOLD_EVAL)) * (len(RULES) - 1) + 1).all()
    for curve, g in trace.groupby("curve"):
        r = rl[rl["curve"] == curve].sort_values("step")
        assert g["step"].tolist() == r["step"].tolist() and np.allclose(g["gold"], r["gold"])
        # member 0 is the optimized proxy: its gain times its temperature is rl.csv's proxy gain over step 0
        assert np.allclose(g["member0"] * cal.loc[curve, "tau"], r["proxy"] - r["proxy"].iloc[0], atol=1e-4)
        assert np.allclose(g["reference"], g["member1"]) and (g["disagreement"] > 0).all()
        # the second RM is the largest other proxy: 32x1 for the small ones, 16x1 for 32x1 itself
        assert set(g["second_rm"]) == {"16x1" if curve == "32x1" else "32x1"} and g["second_rm_gain"].iloc[0] == 0
        # the gold eval set covers all 12 smoke evaluation prompts here: it is rl.csv's gold gain over step 0
        assert np.allclose(g["gold_eval"], r["gold"] - r["gold"].iloc[0], atol=1e-6)
    assert (mon["regret_pick"] >= -1e-12).all() and (mon["pick_step"] <= mon["stop_step"]).all()
    expect = (mon["gold_peak"] - mon["gold_stop"]) / mon["gold_peak"]
    assert np.allclose(mon["regret"], expect) and (mon["regret"] >= -1e-12).all()
    none = mon[mon["rule"] == "none"]
    assert not none["stopped"].any() and (none["stop_step"] == rl["step"].max()).all()
    assert "Monitor" in (out / "report.html").read_text()


def test_rerun_reuses_the_cache_and_report_rebuilds_from_tables(smoke, tmp_path):
    out, cache = smoke
    out2 = tmp_path / "again"
    assert main(["run", "--preset", "smoke", "--out", str(out2), "--quiet", "--set", f"run.cache_dir={cache}"]) == 0
    stages = json.loads((out2 / "manifest.json").read_text())["stages"]
    built = [k for k, v in stages.items()
             if k not in ("bon table", "learned", "length", "calibration", "ensemble bon", "multi-objective", "budget",
                          "detectors", "tables", "report")
             and not k.startswith(("monitor", "detectors")) and not v["cached"]]  # afresh from cached artifacts
    assert built == []
    pd.testing.assert_frame_equal(pd.read_csv(out / "bon.csv"), pd.read_csv(out2 / "bon.csv"))
    (out2 / "report.html").unlink()
    assert main(["report", str(out2)]) == 0
    assert (out2 / "report.html").stat().st_size > 10000


@pytest.mark.parametrize("table,column", [("daa", "winrate"), ("rl", "kl_coef"), ("claims", "holds")])
def test_report_names_a_missing_column(smoke, tmp_path, capsys, table, column):
    import shutil
    out, _ = smoke
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    df = pd.read_csv(copy / f"{table}.csv")
    df.drop(columns=[column]).to_csv(copy / f"{table}.csv", index=False)
    assert main(["report", str(copy)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"overopt report: error: {copy / (table + '.csv')} lacks column '{column}'"


@pytest.mark.parametrize("damage,msg", [
    ("text", "bon.csv: column 'gold' has a non-numeric value 'abc' (row 4)"),
    ("repeat", "fits.csv: row LAST repeats an earlier row"),
    ("cut mid-row", "bon.csv ends in the middle of a row (truncated?)"),
    ("cut at a row", "bon.csv has 5 rows; the run wrote ROWS (truncated or edited?)"),
])
def test_report_refuses_a_damaged_table_in_one_line(smoke, tmp_path, capsys, damage, msg):
    import shutil
    out, _ = smoke
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    bon, fits = pd.read_csv(copy / "bon.csv"), pd.read_csv(copy / "fits.csv")
    if damage == "text":
        bon["gold"] = bon["gold"].astype(object)
        bon.loc[3, "gold"] = "abc"
        bon.to_csv(copy / "bon.csv", index=False)
    elif damage == "repeat":
        pd.concat([fits, fits.iloc[[0]]]).to_csv(copy / "fits.csv", index=False)
    elif damage == "cut mid-row":
        (copy / "bon.csv").write_text((copy / "bon.csv").read_text()[:-7])
    else:
        bon.head(5).to_csv(copy / "bon.csv", index=False)
    assert main(["report", str(copy)]) == 2
    err = capsys.readouterr().err.strip()
    want = msg.replace("LAST", str(len(fits) + 1)).replace("ROWS", str(len(bon)))
    assert err == f"overopt report: error: {copy}/{want}"


def test_fit_command_json_has_the_fields_of_fits_csv(smoke, capsys):
    out, _ = smoke
    assert main(["fit", str(out / "bon.csv"), "--kl-col", "kl_bound", "--reward-col", "gold",
                 "--group-col", "rm", "--baseline", "first", "--proxy-col", "proxy", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 3 and set(FIT_COLUMNS) <= set(rows[0])
    fits = pd.read_csv(out / "fits.csv").set_index(["curve", "form"])
    for r in rows:  # gains over the exact KL = 0 row: the same fit as the run's, point for point
        row = fits.loc[(f"bon/gold/{r['curve']}", "bon")]
        assert r["alpha"] == pytest.approx(row["alpha"])
        assert r["gamma"] == pytest.approx(row["gamma"], rel=1e-6) and r["gamma"] > 0


def test_fit_gamma_of_a_log_with_gold_and_proxy(tmp_path, capsys):
    """Gold d(1 - d/2) and proxy d up to KL 4: |f - g| = d^2/2 integrates to 4/3 and the proxy to 2: gamma 2/3."""
    import numpy as np
    from overopt.laws import predict
    kl = np.linspace(0, 4, 15)
    f = tmp_path / "log.csv"
    pd.DataFrame({"step": range(15), "kl": kl, "gold": 0.5 + predict("bon", 1.0, 0.5, kl),
                  "reward": 2.0 + np.sqrt(kl)}).to_csv(f, index=False)
    assert main(["fit", str(f), "--form", "bon", "--proxy-col", "reward"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[-1] == "gamma" and float(out[1].split()[-1]) == pytest.approx(2 / 3, rel=1e-3)
    assert main(["fit", str(f), "--form", "bon", "--proxy-col", "nope"]) == 2
    assert capsys.readouterr().err.strip().endswith("has no column 'nope' (--proxy-col)")


def test_fit_reads_jsonl_and_recovers_coefficients(tmp_path, capsys):
    import numpy as np
    from overopt.laws import predict
    kl = np.linspace(0, 10, 12)
    f = tmp_path / "log.jsonl"
    f.write_text("\n".join(json.dumps({"step": i, "kl": float(k), "reward": float(1.0 + predict("rl", 0.6, 0.3, k))})
                           for i, k in enumerate(kl)))
    assert main(["fit", str(f), "--form", "rl", "--json"]) == 0
    (r,) = json.loads(capsys.readouterr().out)
    assert r["alpha"] == pytest.approx(0.6, abs=1e-6) and r["beta"] == pytest.approx(0.3, abs=1e-6)


@pytest.mark.parametrize("content,args,msg", [
    (None, [], "file not found"),
    ("kl,gold\n0,0\n1,1\n4,1\n", ["--reward-col", "nope"], "no column 'nope'"),
    ("kl,gold\n0,0\n1,abc\n4,1\n", [], "non-numeric value 'abc'"),
    ("kl,gold\n0,0\n1,1\n", [], "too few points"),
    ("", [], "is empty"),
    ('{"kl": 1}\n{bad\n', [], "line 2 is not valid JSON"),
    ("a,b\n1,2\n", [], "no reward column found"),
])
def test_fit_bad_input_is_one_line_and_exit_2(tmp_path, capsys, content, args, msg):
    f = tmp_path / ("x.jsonl" if content and content.startswith("{") else "x.csv")
    if content is not None:
        f.write_text(content)
    assert main(["fit", str(f), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert msg in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("args,msg", [
    (["run", "--preset", "nope"], "unknown preset 'nope'"),
    (["run", "--preset", "smoke", "--set", "rm.sizez=1"], "unknown config key 'rm.sizez'"),
    (["run", "--config", "/no/such.yaml"], "config file not found"),
    (["report", "/no/such/dir"], "is not a directory"),
    (["run", "--preset", "smoke", "--set", "rm.n_train=.nan"], "config key 'rm.n_train' must be an integer, got nan"),
    (["run", "--preset", "smoke", "--set", "rm.n_train=.inf"], "config key 'rm.n_train' must be an integer, got inf"),
    (["run", "--preset", "smoke", "--set", "run.seed=-1"], "config key 'run.seed' must be in [0, 2^32)"),
    (["run", "--preset", "smoke", "--set", "rm.n_train=1000000000000"], "config key 'rm.n_train' needs about"),
    (["run", "--preset", "smoke", "--set", "world.n_corpus=1000000000000"], "config key 'world.n_corpus' needs"),
    (["run", "--preset", "smoke", "--set", "bon.pool_size=1000000000000"], "config key 'bon.pool_size' needs"),
    (["run", "--config", "BINARY"], "is not a text file (not UTF-8)"),
    (["run", "--preset", "smoke", "--set", "gold.w_length=1e300"], "config key 'gold.w_length' must be within +-1e6"),
    (["monitor", "LOG", "--patience", "0"], "Monitor needs --patience >= 1, got 0"),
    (["monitor", "LOG", "--drop", "2"], "Monitor needs 0 <= --drop < 1, got 2"),
    (["monitor", "LOG", "--alpha", "0.5"], "--alpha must be between 0.01 and 0.2"),
    (["run", "--preset", "smoke", "--set", "rl.k=1"], "config key 'rl.k' must be >= 2"),
    (["run", "--preset", "smoke", "--set", "grpo.epsilon=0"], "config key 'grpo.epsilon' must be > 0"),
    (["run", "--preset", "smoke", "--set", "grpo.loss_type=mean"], "config key 'grpo.loss_type' must be one of grpo, "),
    (["run", "--preset", "smoke", "--set", "grpo.scale_rewards=rank"], "config key 'grpo.scale_rewards' must be one of"),
    (["run", "--preset", "smoke", "--set", "grpo.beta=-0.1"], "config key 'grpo.beta' must be >= 0"),
    (["run", "--preset", "smoke", "--set", "grpo.variants=[beta=-1]"], "'grpo.variants' entry 'beta=-1': beta must be >= 0"),
    (["run", "--preset", "smoke", "--set", "grpo.variants=[clip=0.3]"], "'grpo.variants' entry 'clip=0.3' must be base or"),
    (["run", "--preset", "smoke", "--set", "grpo.sizes=[7x1]"], "config key 'grpo.sizes' entry '7x1' must be one of"),
])
def test_run_and_report_bad_input(tmp_path, capsys, args, msg):
    (tmp_path / "bin.yaml").write_bytes(bytes([0x80, 0x81, 0xFF, 0xFE]))
    (tmp_path / "log.csv").write_text("kl,reward\n0,0\n1,1\n")
    args = [str(tmp_path / "bin.yaml") if a == "BINARY" else str(tmp_path / "log.csv") if a == "LOG" else a
            for a in args]
    assert main([*args, *(["--out", str(tmp_path / "o")] if args[0] == "run" else [])]) == 2
    err = capsys.readouterr().err.strip()
    assert msg in err and len(err.splitlines()) == 1


def test_console_script_help():
    for sub in ("run", "fit", "report"):
        r = subprocess.run([sys.executable, "-m", "overopt.cli", sub, "--help"], capture_output=True, text=True)
        assert r.returncode == 0 and "usage: overopt" in r.stdout


def test_interrupted_run_resumes_from_the_cache(tmp_path, monkeypatch, capsys):
    import overopt.pipeline.core as ex
    out, cache = tmp_path / "out", tmp_path / "cache"
    args = ["run", "--preset", "smoke", "--out", str(out), "--quiet", "--set", f"run.cache_dir={cache}"]

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(ex, "build_pool", interrupted)
        assert main(args) == 130
    assert "run the same command again to resume" in capsys.readouterr().err
    assert json.loads((out / "manifest.json").read_text())["status"] == "running"
    assert (out / "rm.csv").exists() and not (out / "bon.csv").exists()
    assert main(args) == 0
    stages = json.loads((out / "manifest.json").read_text())["stages"]
    before = [k for k in stages if k in ("world", "pi0", "pairs") or (k.startswith("rm ") and not set("/@#") & set(k))]
    assert len(before) == 6 and all(stages[k]["cached"] for k in before)
    # the pool and the ensemble members past the family's (trained after the pool) are built on the rerun
    assert not stages["pool"]["cached"] and not stages["rm 8x1/noise0.25#1"]["cached"]


def test_data_size_sweep_adds_proxies_and_a_report_section(smoke, tmp_path):
    _, cache = smoke
    out = tmp_path / "sweep"
    assert main(["run", "--preset", "smoke", "--out", str(out), "--quiet", "--set", f"run.cache_dir={cache}",
                 "--set", "rm.data_sizes=[4,100,300]", "--set", "rm.data_sweep_rm=32x1"]) == 0
    rm = pd.read_csv(out / "rm.csv")
    sweep = rm[rm["rm"].str.startswith("32x1")].sort_values("n_train")
    assert sweep["n_train"].tolist() == [4, 100, 300, 600]
    assert sweep["val_acc"].iloc[0] < sweep["val_acc"].iloc[-1]   # too little data learns less
    assert set(rm["rm"]) == set(pd.read_csv(out / "bon.csv")["rm"])
    html = (out / "report.html").read_text()
    assert "Preference data size" in html and "Coefficients against preference data" in html
    # scaling.csv and the claims say whether the coefficients move smoothly with log data as with log parameters
    scaling = pd.read_csv(out / "scaling.csv").set_index(["coef", "axis"])
    acc = scaling.loc[("val_acc", "data")]
    assert acc["n"] == 4 and acc["slope"] > 0 and acc["slope_lo"] <= acc["slope"] <= acc["slope_hi"]
    claims = pd.read_csv(out / "claims.csv")
    data_rows = claims[claims["claim"].str.endswith("with log training pairs")]
    assert len(data_rows) == 4 and (data_rows["curve"] == "data sweep").all()
    assert np.allclose(data_rows.set_index("claim").loc["beta_bon varies log-linearly with log training pairs",
                                                        "value"], scaling.loc[("beta_bon", "data"), "r2"])


def test_training_draws_refit_the_family_and_feed_the_claims(smoke, tmp_path):
    """rm.draws = 2: every family size trained once more; draw 0's fit is bon.csv's, the report has the section,
    and the claims judge the mean trend over the draws."""
    _, cache = smoke
    out = tmp_path / "draws"
    assert main(["run", "--preset", "smoke", "--out", str(out), "--quiet", "--set", f"run.cache_dir={cache}",
                 "--set", "rm.draws=2"]) == 0
    rm, draws = pd.read_csv(out / "rm.csv"), pd.read_csv(out / "draws.csv")
    assert len(draws) == 2 * len(rm) and set(draws["draw"]) == {0, 1}
    fits = pd.read_csv(out / "fits.csv").set_index(["curve", "form"])
    first = draws[draws["draw"] == 0].set_index("rm")
    for name in rm["rm"]:
        assert first.loc[name, "beta"] == pytest.approx(fits.loc[(f"bon/gold/{name}", "bon"), "beta"], rel=1e-9)
        assert first.loc[name, "val_acc"] == pytest.approx(rm.set_index("rm").loc[name, "val_acc"])
    second = draws[draws["draw"] == 1].set_index("rm")
    assert (second["beta"] != first["beta"]).all()  # another initialisation learns another proxy
    claims = pd.read_csv(out / "claims.csv")
    rows = claims[claims["curve"] == "proxy family, 2 draws"]
    assert len(rows) == 4 and rows["support"].isin([0.0, 0.5, 1.0]).all()
    assert "Training draws of the family" in (out / "report.html").read_text()


def test_direct_alignment_labelled_by_an_ensemble(smoke, tmp_path):
    _, cache = smoke
    out = tmp_path / "ens_labels"
    args = ["run", "--preset", "smoke", "--out", str(out), "--quiet", "--set", f"run.cache_dir={cache}",
            "--set", "daa.losses=[dpo]", "--set", "daa.betas=[0.1]", "--set", "daa.policy_sizes=[]"]
    assert main(args + ["--set", "daa.labels=8x1/noise0.25/wco"]) == 0
    by_ens = pd.read_csv(out / "daa.csv")
    assert main(args + ["--set", "daa.labels=gold", "--out", str(tmp_path / "gold")]) == 0
    by_gold = pd.read_csv(tmp_path / "gold" / "daa.csv")
    # the same run from the same start, on other labels: it moves differently after step 0
    assert by_ens["gold"].iloc[0] == by_gold["gold"].iloc[0] and by_ens["kl"].iloc[-1] != by_gold["kl"].iloc[-1]


def test_length_normalised_proxies_end_to_end(smoke, tmp_path):
    out0, cache = smoke
    out = tmp_path / "lnorm"
    assert main(["run", "--preset", "smoke", "--out", str(out), "--quiet", "--set", f"run.cache_dir={cache}",
                 "--set", "rm.length_norm=true", "--set", "rl.enabled=false", "--set", "daa.enabled=false",
                 "--set", "ensemble.enabled=false"]) == 0
    stages = json.loads((out / "manifest.json").read_text())["stages"]
    assert stages["rm 8x1"]["cached"] and stages["rm 8x1"]["length_coef"] != 0   # same weights, new reading
    lbon, lbon0 = pd.read_csv(out / "length_bon.csv"), pd.read_csv(out0 / "length_bon.csv")
    # best-of-n against the normalised proxies is the length-normalised variant of the run without the option
    # (up to the slope, fitted there on the pool and here on the pairs' pi0 samples)
    mine = lbon[lbon["variant"] == "as trained"].set_index(["rm", "n"])["gold"]
    theirs = lbon0[lbon0["variant"] == "length-normalised"].set_index(["rm", "n"])["gold"]
    np.testing.assert_allclose(mine.to_numpy(), theirs.loc[mine.index].to_numpy(), atol=0.05)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_cuda_asked_on_a_machine_without_it_is_one_line(tmp_path, capsys):
    assert main(["run", "--preset", "smoke", "--set", "run.device=cuda", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("overopt run: error: config key 'run.device' is cuda, but torch ") and \
        err.endswith("sees no CUDA device here")
    assert not (tmp_path / "o").exists()  # refused before anything was written


def test_budget_tables_in_the_smoke_run(smoke):
    """Labels within each budget, none = no labels and training to the end, the regrets recomputed from rl.csv."""
    from overopt.studies.budget import BON_CHOICE_COLUMNS, BUDGET_COLUMNS, SUMMARY_COLUMNS
    out, _ = smoke
    b = pd.read_csv(out / "budget.csv")
    assert list(b.columns) == BUDGET_COLUMNS and set(b["curve"]) == {"8x1", "16x1", "32x1"}
    assert set(b["strategy"]) == {"none", "fixed set", "fixed", "triggered", "sequential"}
    assert set(b["judge"]) == {"pointwise", "pairwise"}
    assert (b["labels"] <= b["budget"]).all()
    none = b[b["strategy"] == "none"]
    assert (none["labels"] == 0).all() and (none["stop_step"] == 12).all() and (none["pick_step"] == 12).all()
    assert (b[b["strategy"] == "fixed set"]["labels"] <= 8 * 5).all()
    rl = pd.read_csv(out / "rl.csv")
    for _, r in b.sample(10, random_state=0).iterrows():
        g = rl[rl["curve"] == r["curve"]].set_index("step")["gold"]
        assert r["gold_peak"] == pytest.approx(g.max()) and r["gold_pick"] == pytest.approx(g[r["pick_step"]])
        assert r["regret_pick"] == pytest.approx((g.max() - g[r["pick_step"]]) / g.max())
        assert r["early"] == (g.index.get_loc(r["stop_step"]) < g.values.argmax() and g[r["stop_step"]] < g.max() / 2)
    s = pd.read_csv(out / "budget_summary.csv")
    assert list(s.columns) == SUMMARY_COLUMNS and (s["runs"] == s["strategy"].map(
        lambda x: 3 if x == "none" else 6)).all()
    c = pd.read_csv(out / "bon_choice.csv")
    assert list(c.columns) == BON_CHOICE_COLUMNS and (c["labels"] == 4 * (2 + 2)).all()
    assert (c["n_lo"] <= c["n_hi"]).all() and set(c["rm"]) == {"8x1", "16x1", "32x1"}
    assert "A judge on a label budget" in (out / "report.html").read_text()
    d = pd.read_csv(out / "detectors.csv")  # every evaluation of every family curve, labelled by gold afterwards
    assert set(d["curve"]) == {"8x1", "16x1", "32x1"} and len(d) == 3 * 5
    for _, g in d.groupby("curve"):
        assert g["past_peak"].tolist() == [j > g["gold"].values.argmax() for j in range(len(g))]
        assert g["kl_rate"].isna().tolist() == [True] + [False] * 4
    ds = pd.read_csv(out / "detector_summary.csv")
    assert {"kl", "proxy_slope", "mahalanobis", "size_spread", "disagreement"} <= set(ds["signal"])
    assert ((ds["auc"] >= 0) & (ds["auc"] <= 1)).all() and "Gold-free signals" in (out / "report.html").read_text()


def test_smoke_grpo_tables_and_their_curves_as_trl_logs(smoke, tmp_path, capsys):
    """grpo.csv: every variant on its proxies beside RLOO's rl.csv curves (copied as they are); grpo_summary.csv
    recomputes from the curves; a GRPO curve written as TRL's trainer_state.json reads back to the same KL, proxy
    and gold, through `overopt fit` and `overopt monitor`."""
    from overopt.online.columns import recognise
    from overopt.online.logs import read_log, tidy, trainer_state
    from overopt.studies.grpo import grpo_table_columns

    out, _ = smoke
    g, s, rl = pd.read_csv(out / "grpo.csv"), pd.read_csv(out / "grpo_summary.csv"), pd.read_csv(out / "rl.csv")
    assert list(g.columns) == grpo_table_columns(GOLD_DIMS)
    want = {f"{rm}/grpo:base" for rm in ("8x1", "16x1", "32x1")} | {"8x1/grpo:beta=0.04", "8x1/grpo:loss_type=grpo"}
    assert set(g.loc[g["algo"] == "grpo", "curve"]) == want
    for rm in ("8x1", "16x1", "32x1"):  # RLOO's family curve, as rl.csv has it
        mine, theirs = g[g["curve"] == f"{rm}/rloo"], rl[(rl["curve"] == rm) & (rl["variant"] == "family")]
        assert np.allclose(mine["gold"], theirs["gold"]) and np.allclose(mine["kl"], theirs["kl"])
    assert g.loc[g["variant"] == "beta=0.04", "beta"].eq(0.04).all() and g.loc[g["variant"] == "base", "beta"].eq(0).all()
    assert set(s["curve"]) == set(g["curve"])
    for _, r in s.iterrows():
        c = g[g["curve"] == r["curve"]]
        i = int(c["gold"].to_numpy().argmax())
        assert r["gold_peak"] == pytest.approx(c["gold"].max()) and r["kl_peak"] == pytest.approx(c["kl"].iloc[i])
        assert r["fall"] == pytest.approx(c["gold"].max() - c["gold"].iloc[-1])
        assert r["gold_peak_lo"] <= r["gold_peak_hi"] and 0 <= r["rl_best_share"] <= 1
    assert s.loc[s["variant"] == "rloo", "gap_vs_rloo"].isna().all() and s.loc[s["algo"] == "grpo", "gap_vs_rloo"].notna().all()
    claims = pd.read_csv(out / "claims.csv")
    assert (claims["claim"] == "GRPO reaches RLOO's gold at equal KL (one frontier)").sum() == 5
    assert "GRPO and its variants" in (out / "report.html").read_text()

    curve = g[g["curve"] == "8x1/grpo:base"]
    path = tmp_path / "trainer_state.json"
    path.write_text(json.dumps(trainer_state(curve)))
    df = read_log(str(path))
    cols = recognise(df, str(path), reward="rewards/gold/mean")
    back = tidy(df, cols)
    assert np.allclose(back["kl"], curve["kl"], rtol=1e-9) and np.allclose(back["reward"], curve["gold"])
    assert main(["fit", str(path), "--reward-col", "rewards/gold/mean", "--proxy-col", "rewards/proxy/mean",
                 "--json"]) == 0
    fit = json.loads(capsys.readouterr().out)
    assert fit[0]["n_points"] == len(curve)
    assert main(["monitor", str(path), "--reference-col", "rewards/gold/mean"]) == 0
    said = capsys.readouterr()
    assert "'kl' x 'completions/mean_length'" in said.err and "rewards/gold/mean" in said.err
    assert f"to step {int(curve['step'].max())} (KL {curve['kl'].iloc[-1]:.3g})" in said.out

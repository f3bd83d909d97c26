import numpy as np
import pandas as pd
import pytest

from overopt.laws.claims import (ClaimInputs, bon_claims, claim_table, daa_claims, draw_claims, ensemble_claims,
                                 frontier_gap, monitor_claims, rl_claims, scaling_claims)
from overopt.laws.curves import CurveId
from overopt.laws.curves import peak_of as _peak

# every claim function, in the registry's order (tests/test_registry.py checks the registry declares them)
CHECKS = [bon_claims, draw_claims, rl_claims, ensemble_claims, monitor_claims, daa_claims, scaling_claims]
NO_BON = pd.DataFrame(columns=["rm", "n_train", "n", "kl_bound", "gold", "gold_lo"])
NO_FITS = pd.DataFrame(columns=["curve", "form", "r2"])


def claims_of(bon, rl, fits, replicates=None, **more) -> pd.DataFrame:
    """claims.csv of a run with these tables (``more``: ensembles, draws, ...)."""
    return claim_table(CHECKS, ClaimInputs({"bon": bon, "rl": rl, "fits": fits, **more}, replicates or {}))


def test_peak_needs_a_fall_beyond_the_interval():
    kl = np.array([0.0, 1.0, 2.0, 3.0])
    p = _peak(kl, np.array([0.0, 0.5, 0.4, 0.3]), np.array([0.0, 0.45, 0.35, 0.25]))
    assert p == {"kl": 1.0, "gold": 0.5, "interior": True, "falls": True}
    # the end lies inside the peak's interval: a plateau, not a fall
    assert not _peak(kl, np.array([0.0, 0.5, 0.48, 0.46]), np.array([0.0, 0.4, 0.4, 0.4]))["falls"]
    assert not _peak(kl, np.array([0.0, 0.1, 0.2, 0.3]), np.zeros(4))["interior"]


def test_frontier_gap_by_hand():
    # curve 0: gold = d on d in [0, 2]; curve 1 sits 0.3 above it at d = 1 and on it at d = 0.5
    kl0, g0, h0 = np.array([0.0, 1.0, 4.0]), np.array([0.0, 1.0, 2.0]), np.array([0.0, 0.1, 0.1])
    kl1, g1, h1 = np.array([0.0, 0.25, 1.0, 9.0]), np.array([0.0, 0.5, 1.3, 5.0]), np.array([0.0, 0.1, 0.2, 0.1])
    gap, ratio = frontier_gap(kl0, g0, h0, kl1, g1, h1)
    # at d = 0.5 curve 0 interpolates to 0.5 (half-width 0.05): gap 0; at d = 1: gap 0.3 over sqrt(0.1^2 + 0.2^2)
    assert np.isclose(gap, 0.3) and np.isclose(ratio, 0.3 / np.sqrt(0.05))  # d = 3 lies outside curve 0


def test_claim_table_reads_the_tables():
    n = np.array([1, 2, 4, 8, 16])
    kl = np.log(n) - (n - 1) / n
    gold = np.sqrt(kl) * (1.0 - 0.5 * np.sqrt(kl))
    bon = pd.DataFrame({"rm": "8x1", "n_train": 100, "n": n, "kl_bound": kl, "gold": gold, "gold_lo": gold - 0.01})
    rl_kl = np.array([0.0, 0.5, 1.0, 2.0, 4.0, 8.0])
    rl_gold = np.array([0.0, 0.2, 0.35, 0.45, 0.40, 0.2])
    rl = pd.DataFrame({"curve": "8x1", "rm": "8x1", "kl": rl_kl, "gold": rl_gold, "gold_lo": rl_gold - 0.02,
                       "gold_hi": rl_gold + 0.02})
    pen = pd.DataFrame({"curve": "8x1/kl0.1", "rm": "8x1", "kl_coef": 0.1, "kl": [0.0, 0.5, 1.0], "gold": [0.0, 0.21, 0.6],
                        "gold_lo": [0.0, 0.19, 0.58], "gold_hi": [0.0, 0.23, 0.62]})
    fits = pd.DataFrame({"curve": ["bon/gold/8x1", "bon/gold/8x1", "rl/gold/8x1", "rl/gold/8x1"],
                         "form": ["bon", "quad_kl", "rl", "quad_kl"], "r2": [0.99, 0.5, 0.95, 0.97]})
    t = claims_of(bon, pd.concat([rl, pen]), fits).set_index(["claim", "curve"])
    assert t.loc[("bon gold peaks and falls", "bon/8x1"), "value"] == kl[3]  # d = 1.10, nearest the peak d = 1
    assert not t.loc[("rl form fits (R^2 >= 0.9) and beats a quadratic in KL", "rl/8x1"), "holds"]  # 0.95 < 0.97
    row = t.loc[("rl gold peaks at a larger KL than bon", "8x1")]
    assert row["value"] == 2.0 and row["reference"] == kl[3] and row["holds"] and np.isnan(row["support"])
    # on resampled prompts RL's peak moves to KL 0.5 ... 4 and best-of-n's to kl[3] = 1.20 or kl[4] = 1.84: RL's is
    # the larger on 2 of 4 paired draws (2 > 1.20, 1 < 1.20, 0.5 < 1.84, 4 > 1.84), so the claim is inconclusive
    reps = {CurveId("rl", "8x1"): {"kl_at_peak": np.array([2.0, 1.0, 0.5, 4.0])},
            CurveId("bon", "8x1"): {"kl_at_peak": kl[[3, 3, 4, 4]]}}
    row = claims_of(bon, pd.concat([rl, pen]), fits, replicates=reps).set_index(["claim", "curve"]).loc[
        ("rl gold peaks at a larger KL than bon", "8x1")]
    assert row["holds"] and row["support"] == 0.5 and row["verdict"] == "inconclusive"
    row = t.loc[("a KL penalty leaves the gold-KL frontier unchanged", "8x1/kl0.1")]
    assert np.isclose(row["value"], 0.25) and not row["holds"]  # 0.6 against 0.35 at KL 1


def test_daa_claims_from_a_summary():
    rows = []
    for policy, params, scale in (("16x1", 1000, 1.0), ("64x2", 9000, 2.0)):
        for loss, growth0 in (("dpo", 6.0), ("rdpo", 1.0)):
            for beta, falls, frac in ((0.01, policy == "16x1", 0.5), (1.0, False, 2.0)):
                rows.append({"curve": f"{loss}/b{beta:g}/pi0-{policy}", "loss": loss, "beta": beta, "policy": policy,
                             "policy_params": params, "peak_gold": scale * (1 + beta), "peak_kl": 2.0,
                             "peak_epoch_frac": frac, "falls": falls,
                             "length_growth": growth0 if beta == 0.01 else 0.5})
    t = pd.DataFrame(daa_claims(ClaimInputs({"daa_summary": pd.DataFrame(rows)}))).set_index(["claim", "curve"])
    assert t.loc[("daa gold humps at the lowest beta (smallest policy)", "dpo/b0.01/pi0-16x1"), "holds"]
    early = t.loc[("daa gold starts to fall within the first epoch", "all runs")]
    assert early["value"] == 2 and early["reference"] == 8 and early["holds"]
    smaller = t.loc[("the smaller policy overoptimizes more", "dpo: pi0-16x1 vs pi0-64x2")]
    assert smaller["value"] == 1.0 and smaller["holds"]  # lower peaks at both betas
    low = t.loc[("low beta lengthens outputs more than high beta", "dpo/pi0-16x1")]
    assert low["value"] == 6.0 and low["reference"] == 0.5 and low["holds"]
    rd = t.loc[("R-DPO reduces length growth", "pi0-64x2")]
    assert rd["value"] == 0.75 and rd["reference"] == 3.25 and rd["holds"]


def test_size_order_claims_count_inversions():
    n = np.array([1, 4, 16])
    kl = np.log(n) - (n - 1) / n
    rows = []
    for rm, params, g_end, beta in (("a", 10, 0.5, 0.6), ("b", 30, 0.4, 0.5), ("c", 90, 0.9, 0.55), ("d", 270, 1.0, 0.3)):
        g = np.array([0.0, 0.3, g_end])
        rows.append(pd.DataFrame({"rm": rm, "rm_params": params, "n_train": 100, "n": n, "kl_bound": kl,
                                  "gold": g, "gold_lo": g - 0.01}))
    bon = pd.concat(rows)
    fits = pd.DataFrame({"curve": [f"bon/gold/{rm}" for rm in "abcd"], "form": "bon", "r2": 0.99,
                         "beta": [0.6, 0.5, 0.55, 0.3]})
    t = claims_of(bon, None, fits).set_index("claim")
    gold = t.loc["gold at n = N grows with proxy size"]
    assert gold["value"] == 1 and gold["holds"] and np.isclose(gold["reference"], 0.8)  # 0.5 > 0.4 only
    beta = t.loc["beta_bon falls with proxy size"]
    assert beta["value"] == 1 and beta["holds"] and np.isclose(beta["reference"], -0.8)  # 0.5 < 0.55 only
    fits.loc[0, "beta"] = 0.4  # now 0.4 < 0.5 and 0.5 < 0.55: two inversions
    assert not claims_of(bon, None, fits).set_index("claim").loc["beta_bon falls with proxy size", "holds"]


@pytest.mark.parametrize("holds,support,expected", [
    (True, float("nan"), "holds"), (False, float("nan"), "does not hold"),   # nothing resampled: the point says
    (True, 0.9, "holds"), (True, 0.89, "inconclusive"), (False, 0.1, "does not hold"), (False, 0.5, "inconclusive"),
    (True, 0.05, "inconclusive")])  # the point estimate and its resamples disagree: neither is a verdict
def test_a_verdict_stands_only_where_the_prompt_resamples_agree(holds, support, expected):
    from overopt.laws.claims import verdict
    assert verdict(holds, support) == expected


def test_verdict_counts_read_tables_written_before_the_verdict_column():
    from overopt.laws.claims import verdict_counts
    new = pd.DataFrame({"claim": ["x", "x", "y"], "holds": [True, True, False],
                        "verdict": ["holds", "inconclusive", "does not hold"]})
    old = pd.DataFrame({"claim": ["x", "y"], "holds": ["True", "False"]})  # as read back from an older claims.csv
    t = verdict_counts(pd.concat([new, old], ignore_index=True)).set_index("claim")
    assert t.loc["x"].tolist() == [2, 1, 3] and t.loc["y"].tolist() == [0, 0, 2]  # holds, inconclusive, checked


def test_order_claims_are_inconclusive_when_resamples_invert_the_order():
    """beta falls over four sizes at the point estimate; on 3 of 10 resamples it rises twice (two inversions):
    support 0.7, so the order claim is inconclusive; with every resample falling it holds."""
    n = np.array([1, 4, 16])
    kl = np.log(n) - (n - 1) / n
    bon = pd.concat([pd.DataFrame({"rm": rm, "rm_params": params, "n_train": 100, "n": n, "kl_bound": kl,
                                   "gold": [0.0, 0.3, 0.5 + i / 10], "gold_lo": 0.0})
                     for i, (rm, params) in enumerate((("a", 10), ("b", 30), ("c", 90), ("d", 270)))])
    fits = pd.DataFrame({"curve": [f"bon/gold/{rm}" for rm in "abcd"], "form": "bon", "r2": 0.99,
                         "beta": [0.6, 0.5, 0.4, 0.3]})
    falling, rising_twice = np.array([0.6, 0.5, 0.4, 0.3]), np.array([0.6, 0.4, 0.5, 0.55])
    beta = np.vstack([np.tile(falling, (7, 1)), np.tile(rising_twice, (3, 1))])
    reps = {CurveId("bon", rm): {"beta_bon": beta[:, j], "gold_at_N": np.full(10, 0.5 + j / 10)}
            for j, rm in enumerate("abcd")}
    t = claims_of(bon, None, fits, replicates=reps).set_index("claim")
    row = t.loc["beta_bon falls with proxy size"]
    assert row["holds"] and row["support"] == pytest.approx(0.7) and row["verdict"] == "inconclusive"
    gold = t.loc["gold at n = N grows with proxy size"]
    assert gold["support"] == 1.0 and gold["verdict"] == "holds"
    reps = {rm: {**r, "beta_bon": np.full(10, falling[j])} for j, (rm, r) in enumerate(reps.items())}
    assert claims_of(bon, None, fits, replicates=reps).set_index("claim").loc[
        "beta_bon falls with proxy size", "verdict"] == "holds"
    # without resamples (a table from elsewhere) the point estimate is the verdict
    assert np.isnan(claims_of(bon, None, fits).set_index("claim").loc["beta_bon falls with proxy size", "support"])


def test_curve_replicates_refit_every_curve_on_every_resample():
    """studies.fits reads each curve's coefficients off its gold curve's replicates: on exact curves
    d(alpha - beta d) the refits give back each replicate's alpha and beta, its peak, the value at n = N and R^2 1
    (the quadratic in KL less); a family RL curve gets its form's and the quadratic's R^2."""
    from overopt.laws import peak, predict
    from overopt.studies.base import Output
    from overopt.studies.bon import bon_replicates
    from overopt.studies.rl import rl_replicates

    n = np.array([1, 2, 4, 8, 16, 32])
    kl = np.log(n) - (n - 1) / n
    truth = {"a": [(1.0, 0.4), (0.9, 0.5)], "b": [(1.1, 0.3), (1.0, 0.25)]}
    bon = pd.concat([pd.DataFrame({"rm": rm, "n": n, "kl_bound": kl, "gold": 0.0}) for rm in truth])
    boots = {CurveId("bon", rm): np.stack([predict("bon", a, b, kl) for a, b in ab]) for rm, ab in truth.items()}
    kl_rl = np.linspace(0, 9, 8)
    rl = pd.DataFrame({"curve": "a", "variant": "family", "kl": kl_rl, "gold": 0.0})
    rl_boots = {CurveId("rl", "a"): np.stack([predict("rl", 1.0, 0.4, kl_rl), predict("rl", 0.5, 0.4, kl_rl)])}
    reps = {**bon_replicates(None, Output({"bon": bon}, boots={**boots, CurveId("bon", "no such"): boots[CurveId("bon", "a")]})),
            **rl_replicates(None, Output({"rl": rl}, boots=rl_boots))}
    assert set(reps) == {CurveId("bon", "a"), CurveId("bon", "b"), CurveId("rl", "a")}
    for rm, ab in truth.items():
        r, b = reps[CurveId("bon", rm)], boots[CurveId("bon", rm)]
        assert r["alpha_bon"] == pytest.approx([a for a, _ in ab]) and r["beta_bon"] == pytest.approx([b for _, b in ab])
        assert r["kl_peak_bon"] == pytest.approx([peak("bon", a, b)[0] for a, b in ab])
        assert (r["gold_peak"] == b.max(1)).all() and (r["gold_at_N"] == b[:, -1]).all()
        assert r["r2/bon"] == pytest.approx([1.0, 1.0]) and (r["r2/quad_kl"] < 1).all()
        assert (r["kl_at_peak"] == kl[b.argmax(1)]).all()
    ra = reps[CurveId("rl", "a")]
    assert ra["r2/rl"] == pytest.approx([1.0, 1.0]) and (ra["r2/quad_kl"] < 1).all()
    # d(1 - 0.4 ln d) peaks at d = e^1.5 (KL 20), beyond the curve's last KL 9; d(0.5 - 0.4 ln d) at d = e^0.25
    # (KL 1.65), between the curve's points at KL 9/7 and 18/7, nearer the first
    assert ra["kl_at_peak"] == pytest.approx([9.0, 9 / 7])


def test_form_claims_take_their_support_from_the_resampled_r2():
    """A curve whose form fits at R^2 0.95: on 19 of 20 resamples it does (R^2 0.93, the quadratic 0.5), on one
    it falls to 0.85: support 0.95, the claim holds; where the resamples straddle 0.9 it is inconclusive."""
    n = np.array([1, 4, 16])
    kl = np.log(n) - (n - 1) / n
    bon = pd.DataFrame({"rm": "a", "rm_params": 10, "n_train": 100, "n": n, "kl_bound": kl, "gold": [0.0, 0.3, 0.2],
                        "gold_lo": [0.0, 0.25, 0.15]})
    fits = pd.DataFrame({"curve": "bon/gold/a", "form": ["bon", "quad_kl"], "r2": [0.95, 0.5], "beta": 0.3})
    reps = {CurveId("bon", "a"): {"r2/bon": np.r_[np.full(19, 0.93), 0.85], "r2/quad_kl": np.full(20, 0.5)}}
    claim = "bon form fits (R^2 >= 0.9) and beats a quadratic in KL"
    row = claims_of(bon, None, fits, replicates=reps).set_index("claim").loc[claim]
    assert row["holds"] and row["support"] == pytest.approx(0.95) and row["verdict"] == "holds"
    reps[CurveId("bon", "a")]["r2/bon"] = np.r_[np.full(10, 0.93), np.full(10, 0.85)]
    row = claims_of(bon, None, fits, replicates=reps).set_index("claim").loc[claim]
    assert row["support"] == pytest.approx(0.5) and row["verdict"] == "inconclusive"


def test_ensemble_peak_claims_take_their_support_from_paired_resamples():
    """The mean objective peaks at 0.6 against the single member's 0.5; on the resamples its peak is above the
    single member's on 3 of 4: support 0.75, inconclusive; a claim without resamples keeps its point verdict."""
    n = np.array([1, 2, 4])
    rows = [pd.DataFrame({"ensemble": "8x1/noise0", "objective": obj, "n": n, "kl_bound": np.log(n) - (n - 1) / n,
                          "gold": [0.0, peak, peak - 0.1], "gold_lo": [0.0, peak - 0.05, peak - 0.15],
                          "disagreement": [0.1, 0.2, 0.3]}) for obj, peak in (("single", 0.5), ("mean", 0.6))]
    ens = pd.concat(rows)
    reps = {CurveId("ensembles", "8x1/noise0/single"): {"gold_peak": np.array([0.5, 0.5, 0.5, 0.5])},
            CurveId("ensembles", "8x1/noise0/mean"): {"gold_peak": np.array([0.6, 0.55, 0.45, 0.7])}}
    row = pd.DataFrame(ensemble_claims(ClaimInputs({"ensembles": ens}, reps))).set_index("claim").loc[
        "ensemble mean reaches a higher best-of-n gold peak than one member"]
    assert row["holds"] and row["support"] == 0.75
    t = claims_of(NO_BON, None, NO_FITS, replicates=reps, ensembles=ens).set_index("claim")
    assert t.loc["ensemble mean reaches a higher best-of-n gold peak than one member", "verdict"] == "inconclusive"
    assert pd.DataFrame(ensemble_claims(ClaimInputs({"ensembles": ens})))["support"].isna().all()


def test_draw_claims_judge_the_mean_trend_and_count_the_draws():
    """Three training draws of a four-size family: beta falls on the mean and on draws 0 and 1, and draw 2 swaps the
    two smallest and the two largest (Spearman -0.6): holds on the mean, support 2/3, inconclusive. With draw 2 like
    the others it holds; alpha flat on every draw does not hold at all."""
    params = [1e3, 1e4, 1e5, 1e6]
    falling = np.array([0.4, 0.35, 0.3, 0.25])
    betas = [falling, falling + 0.01, np.array([0.37, 0.38, 0.27, 0.28])]
    draws = pd.DataFrame([{"rm": f"s{i}", "rm_params": params[i], "draw": d, "alpha": 1.0 + 0.01 * ((i + d) % 2),
                           "beta": b[i], "kl_peak": 2.0 + i, "gold_peak": 1.0 + 0.1 * i}
                          for d, b in enumerate(betas) for i in range(4)])
    t = pd.DataFrame(draw_claims(ClaimInputs({"draws": draws}))).set_index("claim")
    beta = t.loc["beta_bon varies log-linearly with log parameters"]
    assert beta["curve"] == "proxy family, 3 draws" and beta["holds"] and beta["reference"] == pytest.approx(-1.0)
    assert beta["support"] == pytest.approx(2 / 3) and "-1.00 -1.00 -0.60" in beta["detail"]
    assert claims_of(NO_BON, None, NO_FITS, draws=draws).set_index("claim").loc[
        "beta_bon varies log-linearly with log parameters", "verdict"] == "inconclusive"
    alpha = t.loc["alpha_bon varies log-linearly with log parameters"]
    assert not alpha["holds"] and alpha["support"] == 0.0
    draws.loc[draws["draw"] == 2, "beta"] = falling - 0.01
    assert pd.DataFrame(draw_claims(ClaimInputs({"draws": draws}))).set_index("claim").loc[
        "beta_bon varies log-linearly with log parameters", "support"] == 1.0


def test_smoothness_claims_hold_on_a_log_linear_family_and_not_on_two_clusters():
    """Gao et al.'s headline as a claim row per coefficient and axis: a log-linear trend holds, a family that
    falls into two flat clusters (today's world above 32x2) does not, though it is monotone."""
    from overopt import laws

    params = np.geomspace(1e3, 1e5, 6)
    smooth = 0.6 - 0.1 * np.log10(params) + np.array([0.01, -0.01, 0.0, 0.01, -0.01, 0.0])
    clusters = np.array([0.45, 0.45, 0.45, 0.31, 0.31, 0.30])
    pairs = np.array([100, 300, 1000, 3000, 10000])
    table = pd.DataFrame([vars(laws.fit_scaling(params, smooth, "beta_bon")),
                          vars(laws.fit_scaling(params, clusters, "kl_peak_bon")),
                          vars(laws.fit_scaling(pairs, np.log10(pairs) * 0.2, "gold_peak", "data")),
                          vars(laws.fit_scaling(params, smooth, "val_acc"))])  # not a smoothness claim
    t = pd.DataFrame(scaling_claims(ClaimInputs({"scaling": table}))).set_index("claim")
    assert len(t) == 3
    beta = t.loc["beta_bon varies log-linearly with log parameters"]
    assert beta["holds"] and beta["value"] > 0.95 and beta["reference"] == pytest.approx(-1.0)
    assert beta["curve"] == "proxy family"
    kl = t.loc["kl_peak_bon varies log-linearly with log parameters"]
    assert not kl["holds"] and kl["reference"] < -0.8 and kl["value"] < 0.8
    data = t.loc["gold_peak varies log-linearly with log training pairs"]
    assert data["holds"] and data["curve"] == "data sweep"

"""What one measured curve is and says, read from its table rows alone: its typed identity (`CurveId`), its
observed peak and whether it falls after it, and (for direct alignment) each run's summary (`daa_summary.csv`)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# what each fitted curve of fits.csv is, in columns (``curve`` names it too, for compatibility): the optimizer, the
# reward fitted, the proxy, the RL variant (family, kl_penalty, policy_size, iterated) or best-of-n's (family,
# data_size), and for direct alignment its loss and pi0
FIT_ID_COLUMNS = ["method", "reward", "rm", "variant", "loss", "policy"]
SUMMARY_COLUMNS = ["curve", "loss", "beta", "policy", "policy_params", "peak_gold", "peak_kl", "peak_epoch_frac",
                   "falls", "final_gold", "length_start", "length_end", "length_growth", "length_growth_final",
                   "length_growth_max", "implicit_len_r2", "implicit_acc"]


@dataclass(frozen=True)
class CurveId:
    """One measured curve of a run: its optimizer (bon, rl, daa, ensembles) and its name among that optimizer's
    curves (bon.csv's rm, rl.csv's and daa.csv's curve, ensembles.csv's "<ensemble>/<objective>"). A study's
    bootstrap replicates, evaluation samples and labellers are keyed by it."""
    method: str
    name: str

    def fit_name(self, reward: str = "gold") -> str:
        """The curve's id in fits.csv: "<method>/<reward>/<name>"."""
        return f"{self.method}/{reward}/{self.name}"


def peak_of(kl: np.ndarray, gold: np.ndarray, lo: np.ndarray) -> dict:
    """The observed gold peak, and whether the curve falls after it: the last point lies below the
    peak's lower interval bound (a fall the bootstrap over prompts cannot explain)."""
    i = int(np.argmax(gold))
    return {"kl": float(kl[i]), "gold": float(gold[i]), "interior": 0 < i < len(gold) - 1,
            "falls": bool(i < len(gold) - 1 and gold[-1] < lo[i])}



def summarise_daa(rows: list[dict]) -> dict:
    """Peak, whether gold falls after it (below the peak's lower bound), and length growth: the mean over
    checkpoints of the change from the start (robust to one erratic checkpoint of a collapsing run), the
    change at the end, and the largest change reached."""
    df = pd.DataFrame(rows)
    i = int(df["gold"].idxmax())
    last = df.iloc[-1]
    return {**{k: df[k].iloc[0] for k in ("curve", "loss", "beta", "policy", "policy_params")},
            "peak_gold": df["gold"][i], "peak_kl": df["kl"][i], "peak_epoch_frac": df["epoch_frac"][i],
            "falls": bool(i < len(df) - 1 and last["gold"] < df["gold_lo"][i]), "final_gold": last["gold"],
            "length_start": df["length"].iloc[0], "length_end": last["length"],
            "length_growth": df["length"].mean() - df["length"].iloc[0],
            "length_growth_final": last["length"] - df["length"].iloc[0],
            "length_growth_max": df["length"].max() - df["length"].iloc[0], "implicit_len_r2": last["implicit_len_r2"],
            "implicit_acc": last["implicit_acc"]}


def daa_summary_table(daa_df: pd.DataFrame) -> pd.DataFrame:
    """`summarise_daa` for every run of a daa.csv table (the report rebuilds it from the table alone)."""
    return pd.DataFrame([summarise_daa(g.to_dict("records")) for _, g in daa_df.groupby("curve", sort=False)]) \
        .reindex(columns=SUMMARY_COLUMNS)


def monitor_summary(mon: pd.DataFrame) -> pd.DataFrame:
    """Per reference and rule: curves, median and mean regret, the share stopped early and the share stopped."""
    mon = mon.assign(reference=mon["reference"].fillna(""))  # "none" has no reference (empty, NaN from a CSV)
    return mon.groupby(["reference", "rule"], sort=False).agg(
        curves=("curve", "size"), median_regret=("regret", "median"), mean_regret=("regret", "mean"),
        early=("early", "mean"), stopped=("stopped", "mean"),
        median_regret_rollback=("regret_pick", "median")).reset_index()


def with_variants(rl: pd.DataFrame) -> pd.DataFrame:
    """rl.csv with its identity columns; a table from before they existed gets them from its curve names
    (rm/kl<coef>, rm/pi0-<size>, rm/iter<rounds>)."""
    if "variant" in rl:
        return rl
    c = rl["curve"].astype(str)
    variant = np.select([c.str.contains("/kl"), c.str.contains("/pi0-"), c.str.contains("/iter")],
                        ["kl_penalty", "policy_size", "iterated"], "family")
    rounds = c.str.extract(r"/iter(\d+)")[0].astype(float).fillna(1)
    policy = c.str.extract(r"/pi0-(.+)$")[0]
    return rl.assign(variant=variant, penalty=np.where(variant == "kl_penalty", rl["kl_coef"], np.nan),
                     policy=policy, rounds=rounds)


def fits_with_identity(fits: pd.DataFrame) -> pd.DataFrame:
    """fits.csv with its method and reward columns; a table from before they existed gets them from its curve
    names (method/reward/...)."""
    if "method" in fits:
        return fits
    parts = fits["curve"].astype(str).str.split("/")
    return fits.assign(method=parts.str[0], reward=parts.str[1])


def shown(fits: pd.DataFrame) -> pd.DataFrame:
    """Fit rows as a reader sees them: the identity columns left out (the curve names them)."""
    return fits.drop(columns=[c for c in FIT_ID_COLUMNS if c in fits])


def data_sweep(rm: pd.DataFrame) -> pd.DataFrame | None:
    """rm.csv's rows of the data-size sweep (one proxy size at several n_train, the family's own included; fewest
    pairs first), or None when the run has no sweep."""
    size = rm["rm"].str.split("@").str[0]
    swept = rm.groupby(size)["n_train"].nunique()
    return rm[size == swept[swept > 1].index[0]].sort_values("n_train") if (swept > 1).any() else None

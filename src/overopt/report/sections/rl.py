"""RL against each proxy (Gao et al. 2022 Fig. 1 and Fig. 8), read against each proxy's KL-regularised optimum, and
the variants on one proxy: the KL-penalty sweep (Fig. 9), pi0 sizes and iterated RLHF (sec. 4.3). Curves are told
apart by rl.csv's ``variant`` column (tables written before it existed: by their names)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ... import laws
from ...laws.curves import shown, with_variants
from ..kit import colors, html_table, plt
from ..page_context import Page

RL_COLS = ("curve", "rm", "kl", "proxy", "gold", "gold_lo", "gold_hi", "kl_coef")


def plot_rl(rl: pd.DataFrame, fits: pd.DataFrame, bon: pd.DataFrame, family: list[str],
            tilt: pd.DataFrame | None = None):
    """Gao Fig. 1 (RL) beside Fig. 8: gold against proxy for RL and best-of-n; with ``tilt``, a third
    panel sets each RL curve against the KL-regularised optimum of its proxy (tilt.csv)."""
    fig, axes = plt.subplots(1, 3 if tilt is not None else 2, figsize=(18 if tilt is not None else 12, 4.6))
    for rm, col in zip(family, colors(len(family))):
        g = rl[rl["curve"] == rm]
        if not len(g):
            continue
        d = np.sqrt(g["kl"].to_numpy())
        axes[0].plot(d, g["gold"], "-o", color=col, ms=3, label=rm)
        axes[0].fill_between(d, g["gold_lo"], g["gold_hi"], color=col, alpha=0.15)
        axes[0].plot(d, g["proxy"], "--", color=col)
        f = fits[(fits["curve"] == f"rl/gold/{rm}") & (fits["form"] == "rl")]
        if len(f):
            dd = np.linspace(1e-3, d.max() * 1.02, 100)
            axes[0].plot(dd, laws.predict("rl", f["alpha"].iloc[0], f["beta"].iloc[0], dd ** 2), ":", color=col)
        axes[1].plot(g["proxy"], g["gold"], "-o", color=col, ms=3, label=f"RL {rm}")
        b = bon[bon["rm"] == rm]
        axes[1].plot(b["proxy"], b["gold"], "--s", color=col, ms=3, alpha=0.7, label=f"BoN {rm}")
        if tilt is not None:
            t = tilt[tilt["rm"] == rm]
            axes[2].plot(d, g["gold"], "-o", color=col, ms=3, label=f"RL {rm}")
            axes[2].plot(np.sqrt(t["kl"]), t["gold"], "-.", color=col, alpha=0.8)
    axes[0].set_title("RL: gold (solid, 90% CI), proxy (dashed), fit d(alpha - beta ln d) (dotted)")
    axes[0].set_xlabel("d = sqrt(KL(pi || pi0)), full-vocabulary estimate")
    axes[0].set_ylabel("gain over pi0")
    axes[1].set_title("gold against proxy: RL (solid) and best-of-n (dashed)")
    axes[1].set_xlabel("proxy gain")
    axes[1].set_ylabel("gold gain")
    if tilt is not None:
        axes[2].set_title("RL (solid) against the KL-regularised optimum (dash-dot)")
        axes[2].set_xlabel("d = sqrt(KL(pi || pi0))")
        axes[2].set_ylabel("gold gain")
    for ax in axes:
        ax.axhline(0, color="grey", lw=0.5)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_variants(rl: pd.DataFrame, bon: pd.DataFrame, variant: str, title: str, label, extra=None):
    """One proxy's family RL curve beside its curves of one ``variant`` (rl.csv's column): gold against KL.
    ``label(g)`` names a curve from its rows."""
    variants = rl[rl["variant"] == variant]
    rm = variants["rm"].iloc[0]
    curves = [rm] + list(dict.fromkeys(variants["curve"]))
    fig, ax = plt.subplots(figsize=(7, 4.6))
    for curve, col in zip(curves, plt.cm.plasma(np.linspace(0, 0.85, len(curves)))):
        g = rl[rl["curve"] == curve]
        d = np.sqrt(g["kl"].to_numpy())
        ax.plot(d, g["gold"], "-o", ms=3, color=col, label=label(g))
        ax.fill_between(d, g["gold_lo"], g["gold_hi"], color=col, alpha=0.12)
    b = bon[bon["rm"] == rm]
    ax.plot(np.sqrt(b["kl_bound"]), b["gold"], "--", color="grey", label="best-of-n (pi0)")
    if extra is not None:
        extra(ax, rm)
    ax.set_title(title.format(rm=rm))
    ax.set_xlabel("d = sqrt(KL(pi || its pi0))")
    ax.set_ylabel("gold gain over its pi0")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def section(page: Page) -> list[str]:
    rl = page.table("rl", RL_COLS)
    tilt = page.table("tilt", ("rm", "beta", "kl", "gold"))
    if rl is None:
        return []
    rl, fits = with_variants(rl), page.fits
    rl_fits = fits[fits["method"] == "rl"]
    comp = rl_fits[rl_fits["form"] != "rl_shared_alpha"].pivot(index="curve", columns="form", values="r2")
    parts = ["<h2>RL against each proxy (Gao et al. Fig. 1 and Fig. 8)</h2>",
             "<p class='note'>KL is the full-vocabulary per-token KL summed along sampled responses; the same pi0 "
             "baseline as best-of-n. Fit: R = d(alpha - beta ln d). Right: the KL-regularised optimum pi0 exp(r/beta)/Z "
             "of each proxy, estimated on the best-of-n pool (tilt.csv): the most gold an optimizer of that proxy "
             "reaches at a given KL within pi0's support, and where a KL-penalised run with coefficient beta "
             "converges. An RL curve below it spends KL on what the proxy rewards off that path.</p>",
             page.img("rl", plot_rl(rl, fits, page.bon, page.family, tilt)),
             html_table(shown(rl_fits[rl_fits["form"] == "rl"]).drop(columns=["form"])),
             "<h3>RL form against the alternatives (R^2)</h3>",
             html_table(comp.loc[rl_fits["curve"].unique()].reset_index())]
    shared = rl_fits[rl_fits["form"] == "rl_shared_alpha"]
    if len(shared):
        parts += ["<h3>One alpha shared by every proxy (as Gao et al.)</h3>",
                  html_table(shared[["curve", "alpha", "beta", "r2", "kl_peak", "gain_peak"]])]
    return parts + kl_sweep(page, rl, tilt) + policy_size(page, rl) + iterated(page, rl)


def kl_sweep(page: Page, rl: pd.DataFrame, tilt: pd.DataFrame | None) -> list[str]:
    penalised = rl[rl["variant"] == "kl_penalty"]
    if not len(penalised):
        return []

    def optimum(ax, rm):  # where each penalised run would converge: pi0 exp(r / kl_coef) / Z
        t = tilt[tilt["rm"] == rm].sort_values("beta")  # beta rising, KL falling
        ax.plot(np.sqrt(t["kl"]), t["gold"], "-.", color="black", label="KL-regularised optimum")
        lb = np.log(t["beta"].to_numpy())
        for coef in sorted(penalised["kl_coef"].unique()):
            if lb[0] <= np.log(coef) <= lb[-1]:
                ax.plot(np.sqrt(np.interp(np.log(coef), lb, t["kl"])), np.interp(np.log(coef), lb, t["gold"]),
                        "k*", ms=9)
    fig = plot_variants(rl, page.bon, "kl_penalty", "KL penalty sweep, proxy {rm}: gold against KL",
                        lambda g: f"kl_coef {g['kl_coef'].iloc[0]:g}" +
                        ("" if g["variant"].iloc[0] == "kl_penalty" else " (family run)"),
                        optimum if tilt is not None else None)
    return ["<h2>KL penalty (Gao et al. Fig. 9)</h2>", "<p class='note'>A penalty in the reward stops the policy "
            "earlier; Gao et al. found it leaves the gold-against-KL frontier unchanged. Dash-dot: the KL-regularised "
            "optimum of the proxy; a star marks where a run with that coefficient converges.</p>",
            page.img("kl_sweep", fig)]


def policy_size(page: Page, rl: pd.DataFrame) -> list[str]:
    if not (rl["variant"] == "policy_size").any():
        return []
    fig = plot_variants(rl, page.bon, "policy_size", "policy size, proxy {rm}: gold against KL",
                        lambda g: f"pi0 {g['policy'].iloc[0]}" if g["variant"].iloc[0] == "policy_size"
                        else "pi0 (default size)")
    return ["<h2>Policy size</h2>", "<p class='note'>The same proxy optimized from pi0s of other sizes (each trained "
            "like pi0); KL and gains are against each policy's own pi0. Gao et al. found a larger policy gains less "
            "but peaks at about the same KL.</p>", page.img("policy_size", fig)]


def iterated(page: Page, rl: pd.DataFrame) -> list[str]:
    it = rl[rl["variant"] == "iterated"]
    if not len(it):
        return []
    fits, k = page.fits, int(it["rounds"].iloc[0])

    def predicted(ax, rm):
        f = fits[(fits["curve"] == f"rl/gold/{rm}") & (fits["form"] == "rl")]
        if len(f):
            dd = np.linspace(1e-3, np.sqrt(it["kl"].max()) * 1.02, 100)
            ax.plot(dd, laws.iterated_prediction(f["alpha"].iloc[0], f["beta"].iloc[0], dd ** 2, k), ":",
                    color="black", label=f"predicted, k = {k}")
    fig = plot_variants(rl, page.bon, "iterated", "iterated RLHF, proxy {rm}: gold against KL",
                        lambda g: f"{int(g['rounds'].iloc[0])} rounds" if g["variant"].iloc[0] == "iterated"
                        else "one round", predicted)
    return ["<h2>Iterated RLHF (Gao et al. sec. 4.3)</h2>", "<p class='note'>Each round relabels samples of the "
            "current policy with gold and retrains the proxy on all labels so far. Dotted: the prediction "
            "d(alpha - beta ln d + beta ln k) from the one-round fit.</p>", page.img("iterated", fig)]


def forecast(page: Page) -> list[str]:
    fc = page.table("forecast", ("curve", "seen", "abs_log_error", "covered", "regret"))
    if fc is None:
        return []
    bins = pd.cut(fc["seen"], [0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, np.inf], right=False)
    summary = fc.groupby(bins, observed=True).agg(
        prefixes=("curve", "size"), median_abs_log_error=("abs_log_error", "median"),
        covered=("covered", lambda x: float(np.mean(x.astype(str).str.lower() == "true"))),
        median_regret=("regret", "median")).reset_index().rename(columns={"seen": "KL seen / peak KL"})
    summary["KL seen / peak KL"] = summary["KL seen / peak KL"].astype(str)
    return ["<h2>Forecasting the peak from a partial curve</h2>", "<p class='note'>Each RL curve of the family cut "
            "after every evaluation (at least 4 points), R = d(alpha - beta ln d) fitted to the cut, and its peak KL "
            "compared with the fit to the whole curve: |ln(forecast / peak)|, whether the bootstrap interval holds it, "
            "and the gold lost by stopping at the forecast (regret, share of the best gain). Grouped by how far the "
            "cut curve had come (its last KL over the peak KL).</p>", html_table(summary)]

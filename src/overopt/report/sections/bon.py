"""Best-of-n (Gao et al. 2022): the proxies, gold and proxy against KL (Fig. 1), the fits and the forms
they beat, coefficients against proxy size (Fig. 3), extrapolation, gold dimensions and data size."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..kit import colors, error_bars, html_table, plt
from ..page_context import Page

from ... import laws
from ...laws.curves import data_sweep, shown
from ...laws.fits import SMOOTH_R2, SMOOTH_SPEARMAN


def plot_bon(bon: pd.DataFrame, fits: pd.DataFrame, family: list[str]):
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    cols = colors(len(family))
    for rm, col in zip(family, cols):
        g = bon[bon["rm"] == rm]
        d = np.sqrt(g["kl_bound"].to_numpy())
        label = f"{rm} ({int(g['rm_params'].iloc[0]):,} params)"
        axes[0].plot(d, g["gold"], "-o", color=col, ms=3, label=label)
        axes[0].fill_between(d, g["gold_lo"], g["gold_hi"], color=col, alpha=0.15)
        axes[0].plot(d, g["proxy"], "--", color=col)
        axes[1].plot(d, g["gold"], "o", color=col, ms=4, label=label)
        f = fits[(fits["curve"] == f"bon/gold/{rm}") & (fits["form"] == "bon")]
        if len(f):
            dd = np.linspace(0, d.max() * 1.02, 100)
            axes[1].plot(dd, laws.predict("bon", f["alpha"].iloc[0], f["beta"].iloc[0], dd ** 2), "-", color=col,
                         lw=1.2)
    axes[0].set_title("best-of-n: gold (solid, 90% CI) and proxy (dashed)")
    axes[1].set_title("gold and the fitted form d(alpha - beta d)")
    for ax in axes:
        ax.set_xlabel("d = sqrt(KL(best-of-n || pi0)), nats^0.5")
        ax.set_ylabel("reward gain over pi0 (gold in pi0 std units)")
        ax.axhline(0, color="grey", lw=0.5)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    return fig


COEF_PANELS = (("alpha", "alpha_bon", "alpha_bon"), ("beta", "beta_bon", "beta_bon"),
               ("kl_peak", "kl_peak_bon", "KL at the fitted gold peak (nats)"),
               ("gold_peak", "gold_peak", "best-of-n gold peak (pi0 std)"))


def plot_coefs(fits: pd.DataFrame, bon: pd.DataFrame, names: list[str], x: np.ndarray, scaling: pd.DataFrame | None,
               xlabel: str):
    """The coefficients of ``names`` against ``x`` (parameters or training pairs) with their bootstrap intervals,
    and each log-linear fit of scaling.csv with its slope interval and R^2."""
    chosen = fits[fits["form"] == "bon"].set_index("curve")
    fig, axes = plt.subplots(1, len(COEF_PANELS), figsize=(4.2 * len(COEF_PANELS), 3.8))
    for ax, (coef, name, title) in zip(axes, COEF_PANELS):
        if coef == "gold_peak":  # the observed peak, with the bootstrap interval of gold there
            at = [bon[bon["rm"] == r].loc[lambda g: g["gold"].idxmax()] for r in names]
            y, lo, hi = (np.array([float(p[k]) for p in at]) for k in ("gold", "gold_lo", "gold_hi"))
        else:
            rows = chosen.reindex([f"bon/gold/{r}" for r in names])
            y, lo, hi = (rows[k].to_numpy(dtype=float) for k in (coef, f"{coef}_lo", f"{coef}_hi"))
        ok = np.isfinite(y)
        ax.errorbar(x[ok], y[ok], yerr=error_bars(y, lo, hi)[:, ok], fmt="o", capsize=3, color="C0")
        s = scaling.set_index("coef").loc[name] if scaling is not None and name in set(scaling["coef"]) else None
        if s is not None and np.isfinite(s["slope"]):
            xx = np.geomspace(x.min(), x.max(), 50)
            ax.plot(xx, s["intercept"] + s["slope"] * np.log10(xx), "--", color="grey",
                    label=f"{s['slope']:+.3f} [{s['slope_lo']:+.3f}, {s['slope_hi']:+.3f}] per decade\n"
                          f"R^2 = {s['r2']:.2f}, Spearman {s['spearman']:+.2f}")
            ax.legend(fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_title(title)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_dims(bon: pd.DataFrame, rms: list[str]):
    dims = [c for c in bon.columns if c.startswith("gold_") and c not in ("gold_lo", "gold_hi")]
    fig, axes = plt.subplots(1, len(rms), figsize=(6 * len(rms), 3.8), squeeze=False)
    for ax, rm in zip(axes[0], rms):
        g = bon[bon["rm"] == rm]
        d = np.sqrt(g["kl_bound"])
        for dim in dims:
            ax.plot(d, g[dim], "-o", ms=3, label=dim[5:])
        ax.set_title(f"gold dimensions under best-of-n, proxy {rm} (raw units)")
        ax.set_xlabel("d = sqrt(KL)")
        ax.axhline(0, color="grey", lw=0.5)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _of_axis(scaling: pd.DataFrame | None, axis: str) -> pd.DataFrame | None:
    """Rows of scaling.csv on one axis (a table from before the axis column is all on parameters)."""
    if scaling is None or "axis" not in scaling:
        return scaling if axis == "params" else None
    return scaling[scaling["axis"] == axis]


def plot_data_sweep(bon: pd.DataFrame, rm: pd.DataFrame):
    sweep = data_sweep(rm)
    size = sweep["rm"].iloc[0].split("@")[0]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for (name, n), col in zip(sweep[["rm", "n_train"]].itertuples(index=False), colors(len(sweep))):
        g = bon[bon["rm"] == name]
        axes[0].plot(np.sqrt(g["kl_bound"]), g["gold"], "-o", ms=3, color=col, label=f"{n} pairs")
    axes[0].set_xlabel("d = sqrt(KL)")
    axes[0].set_ylabel("gold gain")
    axes[0].set_title(f"data size, proxy {size}")
    axes[0].legend(fontsize=8)
    axes[1].semilogx(sweep["n_train"], sweep["val_acc"], "o-")
    axes[1].axhline(0.5, color="grey", lw=0.5)
    axes[1].set_xlabel("training pairs")
    axes[1].set_ylabel("validation accuracy against gold")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def headline(page: Page) -> list[str]:
    """The figure a reader wants first: best-of-n gold and proxy against KL for every proxy of the family."""
    return ["<h2>Gold and proxy against KL (Gao et al. Fig. 1, best-of-n)</h2>",
            page.img("fig1_bon", plot_bon(page.bon, page.fits, page.family))]


def section(page: Page) -> list[str]:
    rm, fits = page.rm, page.fits
    scaling, extrap = page.table("scaling"), page.table("extrapolation")
    gold_fits = fits[(fits["method"] == "bon") & (fits["reward"] == "gold")]
    comp = gold_fits.pivot(index="curve", columns="form", values="r2")
    comp = comp.loc[gold_fits["curve"].unique()].reset_index()
    comp["chosen form best"] = comp.apply(lambda r: all(r["bon"] >= r[c] for c in comp.columns
                                                        if c not in ("curve", "bon", "chosen form best")), axis=1)
    parts = ["<h2>Proxy reward models</h2>", "<p class='note'>Validation against gold labels on prompts no training "
             "pair used.</p>", html_table(rm),
             "<h2>Fits</h2>", "<p class='note'>R = d(alpha - beta d), d = sqrt(KL); intervals are the bootstrap over "
             "prompts. kl_peak and gain_peak follow from alpha and beta.</p>",
             html_table(shown(gold_fits[gold_fits["form"] == "bon"]).drop(columns=["form"])),
             "<h3>Chosen form against the rejected alternatives (R^2)</h3>",
             "<p class='note'>log1p: d(alpha - beta ln(1+d)); quad_kl: alpha KL - beta KL^2.</p>", html_table(comp),
             "<h2>Coefficients against proxy size (Gao et al. Fig. 3)</h2>",
             page.img("coef_bon", plot_coefs(fits, page.bon, page.family,
                                             rm.set_index("rm").loc[page.family, "params"].to_numpy(dtype=float),
                                             _of_axis(scaling, "params"), "proxy RM parameters"))]
    sweep = data_sweep(rm)
    if sweep is not None:
        parts += ["<h2>Coefficients against preference data (Gao et al. Fig. 4)</h2>",
                  page.img("coef_bon_data", plot_coefs(fits, page.bon, sweep["rm"].tolist(),
                                                       sweep["n_train"].to_numpy(dtype=float),
                                                       _of_axis(scaling, "data"), "training pairs"))]
    if scaling is not None:
        parts += ["<p class='note'>coef = intercept + slope log10(axis): axis params is the proxy's parameter count, "
                  "data its training pairs (one proxy size); the slope's interval is Student's t on the residuals; "
                  "spearman is the rank correlation with the axis; support is the share of the paired resamples of "
                  "the evaluation prompts (every proxy's coefficients refitted on the same resample) on which the "
                  f"trend is smooth too (R^2 >= {SMOOTH_R2} and |Spearman| >= {SMOOTH_SPEARMAN}).</p>",
                  html_table(scaling)]
    if extrap is not None:
        parts += ["<h2>Extrapolation</h2>", "<p class='note'>Fit on small n only, predict the gold gain at n = N.</p>",
                  html_table(extrap)]
    return parts


def dimensions(page: Page) -> list[str]:
    """Each gold dimension under best-of-n (smallest and largest proxy), and the data-size sweep when there is one."""
    family, rm = page.family, page.rm
    shown = [family[0], family[-1]] if len(family) > 1 else family
    parts = []
    if any(c.startswith("gold_") and c not in ("gold_lo", "gold_hi") for c in page.bon.columns):  # a world with dims
        parts += ["<h2>Gold dimensions</h2>", "<p class='note'>Gain of each gold dimension over pi0 under best-of-n: "
                  "which one the proxy sacrifices.</p>", page.img("gold_dims", plot_dims(page.bon, shown))]
    if data_sweep(rm) is not None:
        parts += ["<h2>Preference data size</h2>", page.img("data_sweep", plot_data_sweep(page.bon, rm))]
    return parts


def samples(page: Page) -> list[str]:
    samples = page.table("samples")
    if samples is None:
        return []
    return ["<h2>Samples</h2>", "<p class='note'>pi0's first pool sample beside the best-of-N choice of the smallest "
            "and largest proxy.</p>", f"<div class='samples'>{html_table(samples)}</div>"]

"""Plots and a self-contained HTML report, built from a run directory's tables alone."""
from __future__ import annotations

import html
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .. import laws  # noqa: E402
from ..laws.curves import daa_summary_table, monitor_summary  # noqa: E402
from ..errors import ReportError  # noqa: E402
from .kit import CSS, colors, html_table, need, png, read_table  # noqa: E402


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


def plot_coefs(fits: pd.DataFrame, rm: pd.DataFrame, scaling: pd.DataFrame | None, family: list[str]):
    chosen = fits[fits["form"] == "bon"].set_index("curve")
    params = rm.set_index("rm").loc[family, "params"].to_numpy()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, coef, title in zip(axes, ("alpha", "beta", "kl_peak"),
                               ("alpha_bon", "beta_bon", "KL at the gold peak (nats)")):
        rows = chosen.loc[[f"bon/gold/{r}" for r in family]]
        y = rows[coef].to_numpy(dtype=float)
        lo, hi = rows[f"{coef}_lo"].to_numpy(dtype=float), rows[f"{coef}_hi"].to_numpy(dtype=float)
        ok = np.isfinite(y)
        err = np.vstack([np.clip(y - lo, 0, None), np.clip(hi - y, 0, None)])
        err = np.where(np.isfinite(err), err, 0)
        ax.errorbar(params[ok], y[ok], yerr=err[:, ok], fmt="o", capsize=3, color="C0")
        name = {"alpha": "alpha_bon", "beta": "beta_bon", "kl_peak": "kl_peak_bon"}[coef]
        if scaling is not None and name in set(scaling["coef"]):
            s = scaling.set_index("coef").loc[name]
            if np.isfinite(s["slope"]):
                xx = np.geomspace(params.min(), params.max(), 50)
                ax.plot(xx, s["intercept"] + s["slope"] * np.log10(xx), "--", color="grey",
                        label=f"{s['slope']:+.3f} per decade, R^2={s['r2']:.2f}")
                ax.legend(fontsize=8)
        ax.set_xscale("log")
        ax.set_xlabel("proxy RM parameters")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


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


def plot_variants(rl: pd.DataFrame, bon: pd.DataFrame, tag: str, title: str, label, extra=None):
    """One proxy's family RL curve beside its variants (curves named rm/<tag>...): gold against KL."""
    variants = rl[rl["curve"].str.contains(f"/{tag}", regex=False)]
    rm = variants["rm"].iloc[0]
    curves = [rm] + list(dict.fromkeys(variants["curve"]))
    fig, ax = plt.subplots(figsize=(7, 4.6))
    for curve, col in zip(curves, plt.cm.plasma(np.linspace(0, 0.85, len(curves)))):
        g = rl[rl["curve"] == curve]
        d = np.sqrt(g["kl"].to_numpy())
        ax.plot(d, g["gold"], "-o", ms=3, color=col, label=label(curve, g))
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


def plot_daa(daa: pd.DataFrame, fits: pd.DataFrame, y: str = "gold"):
    """Rafailov et al. 2024 Fig. 1: per loss (columns) and policy size (rows), ``y`` against sqrt(KL) over
    checkpoints, one line per beta, with the loss's pooled fit R = d(alpha - beta ln d) for gold."""
    losses, policies = list(dict.fromkeys(daa["loss"])), list(dict.fromkeys(daa["policy"]))
    betas = sorted(daa["beta"].unique())
    fig, axes = plt.subplots(len(policies), len(losses), figsize=(3.4 * len(losses), 3.0 * len(policies)),
                             squeeze=False, sharey=True)
    for i, pol in enumerate(policies):
        for j, loss in enumerate(losses):
            ax = axes[i][j]
            for beta, col in zip(betas, colors(len(betas))):
                g = daa[(daa["policy"] == pol) & (daa["loss"] == loss) & (daa["beta"] == beta)]
                d = np.sqrt(g["kl"].to_numpy())
                ax.plot(d, g[y], "-o", ms=2.5, color=col, label=f"beta {beta:g}")
                if y == "gold":
                    ax.fill_between(d, g["gold_lo"], g["gold_hi"], color=col, alpha=0.1)
            f = fits[(fits["curve"] == f"daa/gold/{loss}/pi0-{pol}") & (fits["form"] == "rl")]
            if y == "gold" and len(f):
                dd = np.linspace(1e-3, np.sqrt(daa[(daa["policy"] == pol) & (daa["loss"] == loss)]["kl"].max()), 100)
                ax.plot(dd, laws.predict("rl", f["alpha"].iloc[0], f["beta"].iloc[0], dd ** 2), ":", color="black",
                        label=f"fit, R^2 {f['r2'].iloc[0]:.2f}")
            ax.set_title(f"{loss}, pi0 {pol}", fontsize=9)
            ax.grid(alpha=0.3)
            if i == len(policies) - 1:
                ax.set_xlabel("d = sqrt(KL(pi || pi_ref))")
            if j == 0:
                ax.set_ylabel({"gold": "gold gain over pi_ref", "winrate": "gold win rate vs pi_ref",
                               "length": "mean length (words)"}[y])
            ax.legend(fontsize=6)
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


def plot_data_sweep(bon: pd.DataFrame, rm: pd.DataFrame):
    sizes = rm.groupby(rm["rm"].str.split("@").str[0])["n_train"].nunique()
    size = sizes[sizes > 1].index[0]
    sweep = rm[rm["rm"].str.split("@").str[0] == size].sort_values("n_train")
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


def plot_reliability(rel: pd.DataFrame, cal: pd.DataFrame):
    """Reliability diagrams (Guo et al. 2017): accuracy against confidence per bin, before and after the
    temperature, one line per proxy of the family and per noisy ensemble's first member (every member is in
    calibration.csv)."""
    first = cal[cal["member"] == 0]  # the family, and member 0 of each noisy ensemble
    rms = [r for r, nz in zip(first["rm"], first["noise"]) if "/" not in str(r) or nz > 0] or list(cal["rm"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), sharey=True)
    for ax, calibrated in zip(axes, (False, True)):
        for rm, col in zip(rms, colors(len(rms))):
            g = rel[(rel["rm"] == rm) & (rel["calibrated"].astype(str).str.lower() == str(calibrated).lower())]
            ece = cal.set_index("rm").loc[rm, "ece_calibrated" if calibrated else "ece"]
            ax.plot(g["confidence"], g["accuracy"], "-o", ms=3, color=col, label=f"{rm} (ECE {ece:.3f})")
        ax.plot([0.5, 1], [0.5, 1], ":", color="grey")
        ax.set_title("after temperature scaling" if calibrated else "raw scores, P = sigmoid(r1 - r2)")
        ax.set_xlabel("confidence")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("accuracy against gold")
    fig.tight_layout()
    return fig


def plot_ensembles(ens: pd.DataFrame, kl: str, title: str):
    """Per ensemble (columns): gold (top) and member disagreement (bottom) against sqrt(KL), one line per
    objective, the single member dashed."""
    names = list(dict.fromkeys(ens["ensemble"]))
    fig, axes = plt.subplots(2, len(names), figsize=(5.2 * len(names), 7), squeeze=False)
    for j, name in enumerate(names):
        g = ens[(ens["ensemble"] == name) & ~ens["objective"].str.startswith("member")]
        objs = list(dict.fromkeys(g["objective"]))
        for obj, col in zip(objs, plt.cm.tab10(np.arange(len(objs)))):
            c = g[g["objective"] == obj].sort_values(kl if kl == "kl_bound" else "step")
            d = np.sqrt(c[kl].to_numpy())
            style = "--o" if obj == "single" else "-o"
            axes[0, j].plot(d, c["gold"], style, ms=3, color=col, label=obj)
            axes[0, j].fill_between(d, c["gold_lo"], c["gold_hi"], color=col, alpha=0.12)
            axes[1, j].plot(d, c["disagreement"], style, ms=3, color=col, label=obj)
        axes[0, j].set_title(f"{title}: {name}")
        axes[0, j].set_ylabel("gold gain over pi0")
        axes[1, j].set_ylabel("member standard deviation")
        axes[1, j].set_xlabel("d = sqrt(KL)")
        for ax in axes[:, j]:
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_length(length: pd.DataFrame, lbon: pd.DataFrame, family: list[str]):
    """Left: each proxy's mean score against response length, on pi0's samples (solid) and on grammar texts
    longer than any the world writes (dashed); gold beside it. Right: best-of-n gold against sqrt(KL) for
    each proxy as trained (solid) and length-normalised (dotted)."""
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    for rm, col in zip(family, colors(len(family))):
        for source, style in (("pi0", "-"), ("beyond (6-9 sentences)", "--")):
            g = length[(length["rm"] == rm) & (length["source"] == source)]
            axes[0].plot(g["words"], g["proxy"], style, color=col, label=rm if source == "pi0" else None)
        for variant, style in (("as trained", "-o"), ("length-normalised", ":o")):
            g = lbon[(lbon["rm"] == rm) & (lbon["variant"] == variant)]
            axes[2].plot(np.sqrt(g["kl_bound"]), g["gold"], style, ms=3, color=col,
                         label=f"{rm}, {variant}" if variant == "as trained" or rm == family[0] else None)
    first = length[length["rm"] == family[0]]
    for source, style in (("pi0", "-"), ("beyond (6-9 sentences)", "--")):
        g = first[first["source"] == source]
        axes[1].plot(g["words"], g["gold"], style, color="black", label=f"gold, {source}")
    axes[0].set_title("proxy score against length (dashed: beyond pi0's lengths)")
    axes[1].set_title("gold against length")
    axes[2].set_title("best-of-n: as trained (solid), length-normalised (dotted)")
    for ax, xl, yl in zip(axes, ("words", "words", "d = sqrt(KL)"), ("mean proxy score", "mean gold", "gold gain")):
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_multi(multi: pd.DataFrame, pareto: pd.DataFrame):
    """Left: each gold dimension's gain along each multi-objective curve, as a share of its largest gain there
    (where each peaks and which falls first). Right: the Pareto front of best-of-n over weights, in the two
    dimensions whose gains are least correlated across weight vectors."""
    dims = [c[len("gold_"):] for c in multi.columns if c.startswith("gold_") and c not in ("gold_lo", "gold_hi")]
    curves = list(multi.groupby(["method", "objective"], sort=False))
    fig, axes = plt.subplots(1, len(curves) + 1, figsize=(5 * (len(curves) + 1), 4.4), squeeze=False)
    axes = axes[0]
    for ax, ((method, obj), g) in zip(axes, curves):
        g = g.sort_values("kl")
        d = np.sqrt(g["kl"].to_numpy())
        for dim, col in zip(dims, plt.cm.tab10(np.arange(len(dims)))):
            y = g[f"gold_{dim}"].to_numpy()
            ax.plot(d, y / (np.abs(y).max() or 1.0), "-o", ms=3, color=col, label=dim)
        ax.plot(d, g["gold"] / (np.abs(g["gold"]).max() or 1.0), "k--", label="gold")
        ax.set_title(f"{method}, {obj}")
        ax.set_xlabel("d = sqrt(KL)")
        ax.set_ylabel("gain / its largest |gain|")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    gains = pareto[[f"gold_{d}" for d in dims]].to_numpy()
    corr = np.corrcoef(gains.T) if len(gains) > 2 else np.zeros((len(dims), len(dims)))
    i, j = np.unravel_index(np.nanargmin(np.where(np.eye(len(dims), dtype=bool), np.inf, np.nan_to_num(corr))),
                            corr.shape)
    ax = axes[-1]
    front = pareto["on_front"].astype(str).str.lower() == "true"
    ax.scatter(gains[~front, i], gains[~front, j], s=14, color="grey", label="dominated")
    ax.scatter(gains[front, i], gains[front, j], s=22, c=pareto.loc[front, "gold"], cmap="viridis",
               label="on the 5-dimension front (colour: gold)")
    ax.set_xlabel(f"{dims[i]} gain")
    ax.set_ylabel(f"{dims[j]} gain")
    ax.set_title("best-of-n over weights")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_aif(aif: pd.DataFrame):
    """Best-of-n gold against sqrt(KL) per proxy size (panels), one line per labeller (gold's solid black)."""
    sizes = list(dict.fromkeys(aif["rm"]))
    fig, axes = plt.subplots(1, len(sizes), figsize=(6 * len(sizes), 4.4), squeeze=False)
    for ax, size in zip(axes[0], sizes):
        g = aif[aif["rm"] == size]
        labellers = list(dict.fromkeys(g["labeller"]))
        for lab, col in zip(labellers, plt.cm.tab10(np.arange(len(labellers)))):
            c = g[g["labeller"] == lab]
            d = np.sqrt(c["kl_bound"].to_numpy())
            col = "black" if lab == "gold" else col
            ax.plot(d, c["gold"], "-o", ms=3, color=col, label=f"{lab} (agrees with gold {c['agreement'].iloc[0]:.2f})")
            ax.fill_between(d, c["gold_lo"], c["gold_hi"], color=col, alpha=0.12)
        ax.set_title(f"proxy {size} trained on each labeller's labels")
        ax.set_xlabel("d = sqrt(KL)")
        ax.set_ylabel("gold gain over pi0")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_active(active: pd.DataFrame):
    """Validation accuracy and best-of-n gold peak against the number of labels, per strategy."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for strategy, col in zip(list(dict.fromkeys(active["strategy"])), ("grey", "tab:red", "tab:blue")):
        g = active[active["strategy"] == strategy]
        axes[0].plot(g["labels"], g["val_acc"], "-o", color=col, label=strategy)
        axes[1].plot(g["labels"], g["gold_peak"], "-o", color=col, label=strategy)
        axes[1].fill_between(g["labels"], g["gold_peak_lo"], g["gold_peak_hi"], color=col, alpha=0.15)
    for ax, yl in zip(axes, ("validation accuracy against gold", "best-of-n gold peak")):
        ax.set_xlabel("labelled pairs")
        ax.set_ylabel(yl)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_monitor(trace: pd.DataFrame, mon: pd.DataFrame):
    """Per family curve: gold, the proxy and the reference against sqrt(KL), the monitor's stop marked."""
    curves = list(dict.fromkeys(trace["curve"]))
    fig, axes = plt.subplots(1, len(curves), figsize=(3.2 * len(curves) + 1, 3.4), squeeze=False)
    stops = mon[(mon["rule"] == "monitor") & (mon["reference"] == "ensemble")].set_index("curve")
    for ax, curve in zip(axes[0], curves):
        g = trace[trace["curve"] == curve]
        d = np.sqrt(g["kl"].clip(lower=0))
        ax.plot(d, g["gold"], "-o", color="k", ms=3, label="gold")
        ax.plot(d, g["proxy"] - g["proxy"].iloc[0], "--", color="tab:blue", label="proxy")
        ax.plot(d, g["reference"], "-", color="tab:orange", label="other members")
        if "second_rm_gain" in g and g["second_rm_gain"].notna().all():
            ax.plot(d, g["second_rm_gain"], "-", color="tab:green", label="second RM")
        if curve in stops.index:
            s = stops.loc[curve]
            ax.axvline(np.sqrt(max(float(s["stop_kl"]), 0)), color="tab:red" if s["stopped"] else "grey", ls=":",
                       label="stop (ensemble)" if s["stopped"] else "end (no stop)")
        ax.set_title(curve, fontsize=9)
        ax.set_xlabel("sqrt(KL)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("gain over pi0")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def write_report(out: str | Path) -> Path:
    """Rebuild ``report.html`` and ``plots/*.png`` in ``out`` from its tables."""
    out = Path(out)
    if not out.is_dir():
        raise ReportError(f"{out} is not a directory")
    rm, bon, fits = read_table(out, "rm"), read_table(out, "bon"), read_table(out, "fits")
    scaling, extrap, samples = read_table(out, "scaling", False), read_table(out, "extrapolation", False), \
        read_table(out, "samples", False)
    need(bon, out, "bon", ("rm", "kl_bound", "gold", "proxy", "n", "rm_params"))
    manifest = {}
    if (out / "manifest.json").exists():
        try:
            manifest = json.loads((out / "manifest.json").read_text())
        except json.JSONDecodeError:
            manifest = {}
    n_train = rm["n_train"].max()
    family = [r for r in rm.sort_values("params")["rm"] if rm.set_index("rm").loc[r, "n_train"] == n_train
              and r in set(bon["rm"])]
    plots = out / "plots"
    plots.mkdir(exist_ok=True)
    imgs = {"fig1_bon": png(plot_bon(bon, fits, family), plots / "fig1_bon.png"),
            "coef_bon": png(plot_coefs(fits, rm, scaling, family), plots / "coef_bon.png"),
            "gold_dims": png(plot_dims(bon, [family[0], family[-1]] if len(family) > 1 else family),
                              plots / "gold_dims.png")}
    rl = read_table(out, "rl", False)
    need(rl, out, "rl", ("curve", "rm", "kl", "proxy", "gold", "gold_lo", "gold_hi", "kl_coef"))
    tilt = read_table(out, "tilt", False)
    need(tilt, out, "tilt", ("rm", "beta", "kl", "gold"))
    if rl is not None and len(rl):
        imgs["rl"] = png(plot_rl(rl, fits, bon, family, tilt), plots / "rl.png")
        if rl["curve"].str.contains("/kl").any():
            def optimum(ax, rm):  # where each penalised run would converge: pi0 exp(r / kl_coef) / Z
                t = tilt[tilt["rm"] == rm].sort_values("beta")  # beta rising, KL falling
                ax.plot(np.sqrt(t["kl"]), t["gold"], "-.", color="black", label="KL-regularised optimum")
                lb = np.log(t["beta"].to_numpy())
                for coef in sorted(rl.loc[rl["curve"].str.contains("/kl"), "kl_coef"].unique()):
                    if lb[0] <= np.log(coef) <= lb[-1]:
                        ax.plot(np.sqrt(np.interp(np.log(coef), lb, t["kl"])), np.interp(np.log(coef), lb, t["gold"]),
                                "k*", ms=9)
            imgs["kl_sweep"] = png(plot_variants(
                rl, bon, "kl", "KL penalty sweep, proxy {rm}: gold against KL",
                lambda c, g: f"kl_coef {g['kl_coef'].iloc[0]:g}" + ("" if "/" in c else " (family run)"),
                optimum if tilt is not None else None), plots / "kl_sweep.png")
        if rl["curve"].str.contains("/iter").any():
            def predicted(ax, rm):
                f = fits[(fits["curve"] == f"rl/gold/{rm}") & (fits["form"] == "rl")]
                it = rl[rl["curve"].str.contains("/iter")]
                k = int(it["curve"].iloc[0].split("/iter")[1])
                if len(f):
                    dd = np.linspace(1e-3, np.sqrt(it["kl"].max()) * 1.02, 100)
                    ax.plot(dd, laws.iterated_prediction(f["alpha"].iloc[0], f["beta"].iloc[0], dd ** 2, k), ":",
                            color="black", label=f"predicted, k = {k}")
            imgs["iterated"] = png(plot_variants(
                rl, bon, "iter", "iterated RLHF, proxy {rm}: gold against KL",
                lambda c, g: f"{c.split('/iter')[1]} rounds" if "/" in c else "one round", predicted),
                plots / "iterated.png")
        if rl["curve"].str.contains("/pi0-").any():
            imgs["policy_size"] = png(plot_variants(
                rl, bon, "pi0-", "policy size, proxy {rm}: gold against KL",
                lambda c, g: f"pi0 {c.split('/pi0-')[1]}" if "/" in c else "pi0 (default size)"),
                plots / "policy_size.png")
    daa = read_table(out, "daa", False)
    need(daa, out, "daa", ("curve", "loss", "beta", "policy", "policy_params", "kl", "gold", "gold_lo", "gold_hi",
                            "winrate", "length", "epoch_frac", "implicit_len_r2", "implicit_acc"))
    if daa is not None and len(daa):
        imgs["daa_gold"] = png(plot_daa(daa, fits, "gold"), plots / "daa_gold.png")
        imgs["daa_winrate"] = png(plot_daa(daa, fits, "winrate"), plots / "daa_winrate.png")
        imgs["daa_length"] = png(plot_daa(daa, fits, "length"), plots / "daa_length.png")
    length, lbon = read_table(out, "length", False), read_table(out, "length_bon", False)
    need(length, out, "length", ("rm", "source", "words", "proxy", "gold"))
    need(lbon, out, "length_bon", ("rm", "variant", "n", "kl_bound", "gold", "length"))
    if length is not None and lbon is not None and len(length) and len(lbon):
        imgs["length"] = png(plot_length(length, lbon, family), plots / "length.png")
    multi, pareto, collapse = read_table(out, "multi", False), read_table(out, "pareto", False), read_table(out, "collapse", False)
    need(multi, out, "multi", ("method", "objective", "kl", "gold"))
    need(pareto, out, "pareto", ("on_front", "gold"))
    need(collapse, out, "collapse", ("method", "objective", "dimension", "kl_peak", "falls"))
    if multi is not None and pareto is not None and len(multi) and len(pareto):
        imgs["multi"] = png(plot_multi(multi, pareto), plots / "multi.png")
    aif = read_table(out, "aif", False)
    need(aif, out, "aif", ("labeller", "rm", "agreement", "val_acc", "n", "kl_bound", "gold", "gold_lo", "gold_hi",
                            "length"))
    if aif is not None and len(aif):
        imgs["aif"] = png(plot_aif(aif), plots / "aif.png")
    active = read_table(out, "active", False)
    need(active, out, "active", ("strategy", "labels", "val_acc", "gold_peak", "gold_peak_lo", "gold_peak_hi"))
    if active is not None and len(active):
        imgs["active"] = png(plot_active(active), plots / "active.png")
    cal, rel = read_table(out, "calibration", False), read_table(out, "reliability", False)
    need(cal, out, "calibration", ("rm", "member", "tau", "ece", "ece_calibrated"))
    need(rel, out, "reliability", ("rm", "calibrated", "confidence", "accuracy"))
    if cal is not None and rel is not None and len(cal) and len(rel):
        imgs["reliability"] = png(plot_reliability(rel, cal), plots / "reliability.png")
    ens_bon, ens_rl = read_table(out, "ensembles", False), read_table(out, "ensemble_rl", False)
    need(ens_bon, out, "ensembles", ("ensemble", "objective", "kl_bound", "gold", "gold_lo", "gold_hi", "disagreement"))
    need(ens_rl, out, "ensemble_rl", ("ensemble", "objective", "step", "kl", "gold", "gold_lo", "gold_hi",
                                       "disagreement"))
    if ens_bon is not None and len(ens_bon):
        imgs["ens_bon"] = png(plot_ensembles(ens_bon, "kl_bound", "best-of-n"), plots / "ensembles_bon.png")
    if ens_rl is not None and len(ens_rl):
        imgs["ens_rl"] = png(plot_ensembles(ens_rl, "kl", "RL"), plots / "ensembles_rl.png")
    if (rm.groupby(rm["rm"].str.split("@").str[0])["n_train"].nunique() > 1).any():
        imgs["data_sweep"] = png(plot_data_sweep(bon, rm), plots / "data_sweep.png")
    img = lambda k: f'<img src="data:image/png;base64,{imgs[k]}">'  # noqa: E731

    parts = [f"<html><head><meta charset='utf-8'><title>overopt report</title><style>{CSS}</style></head><body>",
             "<h1>Reward-model overoptimization: best-of-n</h1>",
             "<p class='note'>Synthetic gold-reward setup (Gao et al. 2022): proxies of several sizes learn from "
             "gold-labelled pairs of pi0 samples; best-of-n against each proxy is scored by gold. Gains are over "
             "pi0; gold is in units of its standard deviation under pi0. KL is the analytic best-of-n bound "
             "ln n - (n-1)/n.</p>"]
    if manifest:
        st = manifest.get("stages", {})
        stages = pd.DataFrame([{"stage": k, "seconds": v.get("seconds"), "cached": v.get("cached")}
                               for k, v in st.items()])
        parts += ["<h2>Run</h2>", f"<p>status <b>{html.escape(str(manifest.get('status')))}</b>, wall "
                  f"{manifest.get('wall_s')} s, device {html.escape(str(manifest.get('device')))}, "
                  f"config {manifest.get('config_hash')}, seed {manifest.get('seed')}, "
                  f"peak RSS {manifest.get('peak_rss_mb', '?')} MB, overopt {manifest.get('overopt')}, "
                  f"torch {manifest.get('torch')}</p>"]
        if len(stages):
            parts.append(html_table(stages))
    parts += ["<h2>Proxy reward models</h2>", "<p class='note'>Validation against gold labels on prompts "
              "no training pair used.</p>", html_table(rm)]
    parts += ["<h2>Gold and proxy against KL (Gao et al. Fig. 1, best-of-n)</h2>", img("fig1_bon")]
    chosen = fits[fits["form"] == "bon"]
    parts += ["<h2>Fits</h2>", "<p class='note'>R = d(alpha - beta d), d = sqrt(KL); intervals are the "
              "bootstrap over prompts. kl_peak and gain_peak follow from alpha and beta.</p>",
              html_table(chosen[chosen["curve"].str.startswith("bon/gold/")].drop(columns=["form"]))]
    gold_fits = fits[fits["curve"].str.startswith("bon/gold/")]
    comp = gold_fits.pivot(index="curve", columns="form", values="r2")
    comp = comp.loc[gold_fits["curve"].unique()].reset_index()
    comp["chosen form best"] = comp.apply(lambda r: all(r["bon"] >= r[c] for c in comp.columns
                                                        if c not in ("curve", "bon", "chosen form best")), axis=1)
    parts += ["<h3>Chosen form against the rejected alternatives (R^2)</h3>",
              "<p class='note'>log1p: d(alpha - beta ln(1+d)); quad_kl: alpha KL - beta KL^2.</p>", html_table(comp)]
    parts += ["<h2>Coefficients against proxy size (Gao et al. Fig. 3)</h2>", img("coef_bon")]
    if scaling is not None:
        parts += ["<p class='note'>coef = intercept + slope log10(params); spearman is the rank correlation "
                  "with parameter count.</p>", html_table(scaling)]
    if extrap is not None and len(extrap):
        parts += ["<h2>Extrapolation</h2>", "<p class='note'>Fit on small n only, predict the gold gain "
                  "at n = N.</p>", html_table(extrap)]
    if "rl" in imgs:
        rl_fits = fits[fits["curve"].str.startswith("rl/gold/")]
        parts += ["<h2>RL against each proxy (Gao et al. Fig. 1 and Fig. 8)</h2>",
                  "<p class='note'>KL is the full-vocabulary per-token KL summed along sampled responses; the same "
                  "pi0 baseline as best-of-n. Fit: R = d(alpha - beta ln d). Right: the KL-regularised optimum "
                  "pi0 exp(r/beta)/Z of each proxy, estimated on the best-of-n pool (tilt.csv): the most gold an "
                  "optimizer of that proxy reaches at a given KL within pi0's support, and where a KL-penalised run "
                  "with coefficient beta converges. An RL curve below it spends KL on what the proxy rewards "
                  "off that path.</p>", img("rl"),
                  html_table(rl_fits[rl_fits["form"] == "rl"].drop(columns=["form"]))]
        comp = rl_fits[rl_fits["form"] != "rl_shared_alpha"].pivot(index="curve", columns="form", values="r2")
        parts += ["<h3>RL form against the alternatives (R^2)</h3>",
                  html_table(comp.loc[rl_fits["curve"].unique()].reset_index())]
        shared = rl_fits[rl_fits["form"] == "rl_shared_alpha"]
        if len(shared):
            parts += ["<h3>One alpha shared by every proxy (as Gao et al.)</h3>",
                      html_table(shared[["curve", "alpha", "beta", "r2", "kl_peak", "gain_peak"]])]
    if "kl_sweep" in imgs:
        parts += ["<h2>KL penalty (Gao et al. Fig. 9)</h2>", "<p class='note'>A penalty in the reward stops the "
                  "policy earlier; Gao et al. found it leaves the gold-against-KL frontier unchanged. Dash-dot: the "
                  "KL-regularised optimum of the proxy; a star marks where a run with that coefficient converges.</p>",
                  img("kl_sweep")]
    if "policy_size" in imgs:
        parts += ["<h2>Policy size</h2>", "<p class='note'>The same proxy optimized from pi0s of other sizes "
                  "(each trained like pi0); KL and gains are against each policy's own pi0. Gao et al. found a "
                  "larger policy gains less but peaks at about the same KL.</p>", img("policy_size")]
    if "iterated" in imgs:
        parts += ["<h2>Iterated RLHF (Gao et al. sec. 4.3)</h2>", "<p class='note'>Each round relabels samples of "
                  "the current policy with gold and retrains the proxy on all labels so far. Dotted: the prediction "
                  "d(alpha - beta ln d + beta ln k) from the one-round fit.</p>", img("iterated")]
    parts += ["<h2>Gold dimensions</h2>", "<p class='note'>Gain of each gold dimension over pi0 under "
              "best-of-n: which one the proxy sacrifices.</p>", img("gold_dims")]
    if "data_sweep" in imgs:
        parts += ["<h2>Preference data size</h2>", img("data_sweep")]
    if "daa_gold" in imgs:
        parts += ["<h2>Direct alignment (Rafailov et al. 2024)</h2>",
                  "<p class='note'>DPO, IPO, SLiC and R-DPO on the same gold-labelled pi0 pairs, from each pi0 size "
                  "as reference; one line per beta through its checkpoints. Gold, its win rate against pi_ref "
                  "samples, and length against d = sqrt(KL) with KL measured as for RL. The dotted line is "
                  "R = d(alpha - beta ln d) fitted to every beta and checkpoint of the panel.</p>",
                  img("daa_gold"), img("daa_winrate"), img("daa_length")]
        dfits = fits[fits["curve"].str.startswith("daa/gold/")]
        if len(dfits):
            comp = dfits.pivot(index="curve", columns="form", values="r2").reset_index()
            parts += ["<p class='note'>Fit quality (R^2) of the RL form and of a quadratic in KL.</p>", html_table(comp)]
        parts += ["<p class='note'>Each run: its gold peak, where in training it came (epoch fraction), whether "
                  "gold then fell below the peak's interval, length growth, and the R^2 of the implicit reward "
                  "beta log(pi/pi_ref) against response length on held-out pairs.</p>",
                  html_table(daa_summary_table(daa))]
    if "length" in imgs:
        peaks = lbon.loc[lbon.groupby(["rm", "variant"], sort=False)["gold"].idxmax(),
                         ["rm", "variant", "length_coef", "n", "kl_bound", "gold", "gold_lo", "gold_hi"]]
        at_n = lbon[lbon["n"] == lbon["n"].max()].set_index(["rm", "variant"])[["gold", "length"]]
        peaks = peaks.merge(at_n.reset_index(), on=["rm", "variant"], suffixes=("", "_at_N"))
        parts += ["<h2>Length</h2>", "<p class='note'>How each proxy scores length where pi0 writes and beyond "
                  "(grammar texts of 6-9 sentences; the world writes at most 5), against gold; and best-of-n "
                  "against each proxy as trained and length-normalised (its least-squares slope on length under pi0 "
                  "removed, length_coef per token). A linear correction follows the average slope: where the "
                  "score-length relation is not linear it can add length instead of removing it.</p>",
                  img("length"), html_table(peaks.reset_index(drop=True))]
    if "multi" in imgs:
        peaks = multi.loc[multi.groupby(["method", "objective"], sort=False)["gold"].idxmax(),
                          ["method", "objective", "n", "step", "kl", "gold", "gold_lo", "gold_hi"]]
        falls = collapse[collapse["falls"].astype(str).str.lower() == "true"].sort_values(["method", "objective",
                                                                                          "kl_peak"])
        parts += ["<h2>Multi-objective rewards</h2>", "<p class='note'>One proxy per gold dimension, trained on the "
                  "pairs that dimension alone orders, mapped onto its share of gold on pi0's samples and summed "
                  "(the aggregate); beside it the single proxy of the same size trained on gold itself. Gold peak "
                  "per curve:</p>", html_table(peaks.reset_index(drop=True)), img("multi"),
                  "<p class='note'>Dimensions that fall after their peak, in the order they peak (the first "
                  "collapses first):</p>", html_table(falls.reset_index(drop=True)),
                  "<p class='note'>The Pareto front over weights (best-of-n, weights multiply the gold's own):</p>",
                  html_table(pareto[pareto["on_front"].astype(str).str.lower() == "true"].sort_values(
                      "gold", ascending=False).head(12).reset_index(drop=True))]
    if "aif" in imgs:
        peak = aif.loc[aif.groupby(["rm", "labeller"], sort=False)["gold"].idxmax(),
                       ["rm", "labeller", "agreement", "val_acc", "n", "kl_bound", "gold", "gold_lo", "gold_hi"]]
        at_n = aif[aif["n"] == aif["n"].max()].set_index(["rm", "labeller"])[["gold", "length"]]
        parts += ["<h2>AI-labelled preferences (RLAIF)</h2>", "<p class='note'>Proxies trained on the same pi0 pairs "
                  "and as many of them, labelled by an AI labeller instead of gold: a reward model of the family "
                  "(rm:SIZE), gold biased toward length (length:B, B per word) or toward one dimension (dim:NAME:F). "
                  "agreement: the labeller's agreement with gold on the training pairs; val_acc: the proxy's "
                  "accuracy against gold. Best-of-n peak, and gold and length at n = N:</p>", img("aif"),
                  html_table(peak.merge(at_n.reset_index(), on=["rm", "labeller"], suffixes=("", "_at_N")))]
    if "active" in imgs:
        parts += ["<h2>Active learning</h2>", "<p class='note'>From the same random start, labels added each round "
                  "either at random or where k proxies trained on the labels so far disagree most (standard deviation "
                  "of P(first preferred) over members); the proxy of each round read against gold and under "
                  "best-of-n. disagreement: the members' mean disagreement on the pairs chosen.</p>",
                  img("active"), html_table(active)]
    if "reliability" in imgs:
        parts += ["<h2>Calibration</h2>", "<p class='note'>Each proxy read as a preference model, P(first "
                  "preferred) = sigmoid((r1 - r2) / tau), against gold labels on held-out pairs: tau fitted by "
                  "maximum likelihood on one half, expected calibration error (ECE, 10 bins of confidence) on the "
                  "other, before (tau = 1) and after.</p>", img("reliability"), html_table(cal)]
    if "ens_bon" in imgs:
        shown = ens_bon[~ens_bon["objective"].str.startswith("member")]
        peaks = shown.loc[shown.groupby(["ensemble", "objective"], sort=False)["gold"].idxmax(),
                            ["ensemble", "objective", "n", "kl_bound", "gold", "gold_lo", "gold_hi", "disagreement"]]
        parts += ["<h2>Reward-model ensembles (Coste et al. 2023)</h2>",
                  "<p class='note'>k proxies of one size that differ only by seed, each divided by its temperature, "
                  "combined by mean, WCO (the minimum) or UWO (mean - lambda variance); single: one member alone, "
                  "averaged over the members (each member's own curve is in ensembles.csv as member0, member1, ...). "
                  "Bottom: the members' standard deviation on what each optimizer picks. Best-of-n gold peak per "
                  "objective:</p>", img("ens_bon"), html_table(peaks.reset_index(drop=True))]
    if "ens_rl" in imgs:
        parts += ["<p class='note'>RL against one member and against each objective, KL as for every RL curve.</p>",
                  img("ens_rl")]
    fc = read_table(out, "forecast", False)
    need(fc, out, "forecast", ("curve", "seen", "abs_log_error", "covered", "regret"))
    if fc is not None and len(fc):
        bins = pd.cut(fc["seen"], [0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, np.inf], right=False)
        summary = fc.groupby(bins, observed=True).agg(
            prefixes=("curve", "size"), median_abs_log_error=("abs_log_error", "median"),
            covered=("covered", lambda x: float(np.mean(x.astype(str).str.lower() == "true"))),
            median_regret=("regret", "median")).reset_index().rename(columns={"seen": "KL seen / peak KL"})
        summary["KL seen / peak KL"] = summary["KL seen / peak KL"].astype(str)
        parts += ["<h2>Forecasting the peak from a partial curve</h2>", "<p class='note'>Each RL curve of the family "
                  "cut after every evaluation (at least 4 points), R = d(alpha - beta ln d) fitted to the cut, and its "
                  "peak KL compared with the fit to the whole curve: |ln(forecast / peak)|, whether the bootstrap "
                  "interval holds it, and the gold lost by stopping at the forecast (regret, share of the best "
                  "gain). Grouped by how far the cut curve had come (its last KL over the peak KL).</p>",
                  html_table(summary)]
    mon, trace = read_table(out, "monitor", False), read_table(out, "monitor_trace", False)
    need(mon, out, "monitor", ("curve", "rule", "regret", "early", "stopped", "stop_kl"))
    need(trace, out, "monitor_trace", ("curve", "kl", "proxy", "gold", "reference"))
    if mon is not None and len(mon) and trace is not None and len(trace):
        for col in ("early", "stopped"):
            mon[col] = mon[col].astype(str).str.lower() == "true"
        parts += ["<h2>Monitor: stopping before gold falls</h2>", "<p class='note'>overopt.monitor.Monitor on every "
                  "family RL curve. It sees the KL, the proxy and the reference (the mean of the ensemble members that "
                  "were not optimized, each on one scale), and the members' disagreement; never gold. Gold scores where "
                  "it stopped: regret = (gold peak - gold at the stop) / gold peak; early: stopped before the peak with "
                  "less than half of the peak gain; a monitor that never stops is charged the last point. Each rule is "
                  "the monitor with one signal; none is training to the end. Reference: ensemble (the members not "
                  "optimized), second RM (the largest other proxy of the family) or, for comparison only, a gold eval "
                  "set (a few held-out prompts' responses gold-labelled at each evaluation: the monitor then sees "
                  "gold). rollback: the gold regret of the checkpoint where the reference was best when it "
                  "stopped.</p>",
                  f'<img src="data:image/png;base64,{png(plot_monitor(trace, mon), plots / "monitor.png")}">',
                  html_table(monitor_summary(mon)),
                  html_table(mon[mon["rule"] == "monitor"].drop(columns=["rule"]))]
    claims = read_table(out, "claims", False)
    need(claims, out, "claims", ("holds",))
    if claims is not None and len(claims):
        held = int(claims["holds"].astype(bool).sum())
        parts += ["<h2>Claims of the papers, checked on this run</h2>",
                  f"<p class='note'>{held} of {len(claims)} hold. Each row names what was measured (value) and "
                  "what it is compared with (reference); a row that does not hold is where this world departs "
                  "from the paper.</p>", html_table(claims)]
    if samples is not None and len(samples):
        parts += ["<h2>Samples</h2>", "<p class='note'>pi0's first pool sample beside the best-of-N choice "
                  "of the smallest and largest proxy.</p>", f"<div class='samples'>{html_table(samples)}</div>"]
    parts.append("</body></html>")
    path = out / "report.html"
    path.write_text("\n".join(parts))
    return path

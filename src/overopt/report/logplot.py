"""`overopt fit FILE --plot FILE.png`: each curve of a training log with its steps, its bins, the fitted form, the
peak's interval and the verdict. Torch-free."""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from ..online.verdict import LogFit
from .kit import colors, plt


def plot_log_fits(curves: list[tuple[str, np.ndarray, np.ndarray, np.ndarray, LogFit | None, str]], path: str) -> None:
    """``curves``: (name, step, kl, reward of every step, its LogFit or None without a KL, the verdict's text) for
    each curve; one panel each, against the KL (against the steps where none is logged)."""
    n = len(curves)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.9 * rows), squeeze=False)
    col = colors(3)
    for ax, (name, step, kl, reward, lf, verdict) in zip(axes.flat, curves):
        ax.set_title(f"{name}\n" + "\n".join(textwrap.wrap(verdict, 60)), fontsize=8)
        if lf is None:  # no KL: the reward along the steps, no law to draw
            ax.scatter(step, reward, s=6, color=col[0], label="steps")
            ax.set_xlabel("step (no KL logged)")
            ax.set_ylabel("reward")
            continue
        r = lf.fit
        offset = reward.mean() - (lf.reward.mean() if len(lf.reward) else 0.0)  # "first": gains were fitted
        ax.scatter(kl, reward, s=6, color="0.7", label="steps")
        ax.errorbar(lf.kl, lf.reward + offset, yerr=lf.se, fmt="o", ms=4, color=col[0], label="bins (mean, s.e.)")
        grid = np.linspace(0, max(float(np.max(kl)), 1e-9), 200)
        ax.plot(grid, offset + r.baseline + r.predict(grid), color=col[1], label=f"{r.form} fit, R$^2$ {r.r2:.2f}")
        if np.isfinite(r.kl_peak) and r.kl_peak <= grid[-1] * 2:
            ax.axvline(r.kl_peak, color=col[2], lw=1, ls="--", label="fitted peak")
            if np.isfinite(r.kl_peak_hi):
                ax.axvspan(r.kl_peak_lo, r.kl_peak_hi, color=col[2], alpha=0.12)
        ax.set_xlabel("KL (nats)")
        ax.set_ylabel("reward")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)

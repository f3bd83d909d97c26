"""How often the stop rule (`online.stoprule`) stops on synthetic logs whose truth is known: never on a reference
that does not fall (the false-stop rate), and soon after the peak on one that rises, peaks and falls (the power).

    python -m overopt.online.power          # the table of docs/STOPPING.md (about a minute on 2 cores)

A synthetic log is shaped as a trainer's: ``points`` evaluations every ``interval`` steps, a proxy that rises
(linearly in the steps), a KL that grows with it, and a reference (gold, a held-out score) whose mean follows a shape:
  flat        no trend;
  rising      up by ``gain`` noise sd over the log, linearly;
  concave     up by ``gain``, fast then slowly (sqrt of the step);
  plateau     up by ``gain`` over the first half, then flat;
  fall        up by ``gain`` to the peak (at ``peak`` of the log), down by ``fall`` noise sd over ``fall_points``
              points, then flat at that level to the end;
and per-point noise: Gaussian with sd ``noise``, or ("binomial") the mean of ``labels`` 0/1 labels, as an accuracy
on a small evaluation set is.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .stopcal import statistic
from .stoprule import boundary

SHAPES = ("flat", "rising", "concave", "plateau", "fall")


def reference_mean(shape: str, points: int, gain: float = 3.0, fall: float = 3.0, peak: float = 0.5,
                   fall_points: int = 5) -> np.ndarray:
    """The reference's mean at each point, in noise sd units, 0 at the start."""
    t = np.arange(points, dtype=float)
    last = max(points - 1, 1)
    if shape == "flat":
        return np.zeros(points)
    if shape == "rising":
        return gain * t / last
    if shape == "concave":
        return gain * np.sqrt(t / last)
    if shape == "plateau":
        return gain * np.minimum(t / (last / 2), 1.0)
    if shape == "fall":
        p = int(round(peak * last))
        return np.where(t <= p, gain * t / max(p, 1), gain - fall * np.clip((t - p) / fall_points, 0, 1))
    raise ValueError(f"unknown shape '{shape}' (one of {', '.join(SHAPES)})")


def synthetic_logs(shape: str, logs: int, points: int, rng: np.random.Generator, noise: str = "gaussian",
                   labels: int = 100, level: float = 0.5, **shape_kw) -> np.ndarray:
    """[logs, points] reference values: the shape in noise sd units plus Gaussian noise of sd 1, or binomial
    accuracies of ``labels`` labels around ``level`` (the shape then in units of that accuracy's sd)."""
    mu = reference_mean(shape, points, **shape_kw)
    if noise == "gaussian":
        return mu + rng.standard_normal((logs, points))
    sd = np.sqrt(level * (1 - level) / labels)
    p = np.clip(level + mu * sd, 0.0, 1.0)
    return rng.binomial(labels, np.broadcast_to(p, (logs, points))) / labels


def trainer_log(shape: str, points: int = 50, interval: int = 10, noise: float = 0.05, seed: int = 0,
                **shape_kw) -> pd.DataFrame:
    """One TRL-shaped log (as `trainer_state.json`'s log_history reads): step, per-token ``kl`` with
    ``completions/mean_length``, the proxy ``reward`` (rising by 0.5 over the log) and ``gold`` (the reference)."""
    rng = np.random.default_rng(seed)
    t = np.arange(1, points + 1)
    gold = 0.4 + noise * synthetic_logs(shape, 1, points, rng, **shape_kw)[0]
    return pd.DataFrame({"step": t * interval, "kl": 0.002 * t + 0.0005 * rng.standard_normal(points).clip(-1, 1),
                         "completions/mean_length": 40.0, "reward": 0.2 + 0.5 * t / points + 0.02 *
                         rng.standard_normal(points), "gold": gold})


def first_stops(Y: np.ndarray, alpha: float = 0.05) -> np.ndarray:
    """Index of the point at which the rule first stops on each log (-1: never)."""
    Z = statistic(Y)
    n = np.arange(Z.shape[1])
    hit = Z > np.array([boundary(max(k, 1), alpha) for k in n])  # the ESTIMATED mode: a logged score alone
    return np.where(hit.any(1), hit.argmax(1) - 1, -1)


def rates(shape: str, logs: int = 1000, points: int = 50, seed: int = 0, alpha: float = 0.05, noise: str = "gaussian",
          within: int = 10, **shape_kw) -> dict:
    """For a shape that never falls: the share of logs stopped. For "fall": the share stopped after the peak and
    within ``within`` points of the fall's end, the share stopped before the peak, and the median delay (points
    after the fall's end, among those stopped after the peak)."""
    Y = synthetic_logs(shape, logs, points, np.random.default_rng(seed), noise, **shape_kw)
    s = first_stops(Y, alpha)
    if shape != "fall":
        return {"stopped": float((s >= 0).mean())}
    p = int(round(shape_kw.get("peak", 0.5) * (points - 1)))
    done = p + shape_kw.get("fall_points", 5)
    after = s > p
    return {"detected": float((after & (s <= done + within)).mean()), "early": float(((s >= 0) & ~after).mean()),
            "delay": float(np.median(s[after] - done)) if after.any() else float("nan")}


def table(logs: int = 1000) -> pd.DataFrame:
    """The rows of docs/STOPPING.md: false stops over the shapes that never fall, detection over falls of 2, 3 and 5
    noise sd, at the lengths and noise kinds of real logs."""
    rows = []
    for points in (30, 50, 100, 300):
        for noise in ("gaussian", "binomial"):
            for shape in ("flat", "rising", "concave", "plateau"):
                rows.append({"points": points, "noise": noise, "shape": shape, "fall": 0,
                             **rates(shape, logs, points, noise=noise)})
            for fall in (2, 3, 5):
                rows.append({"points": points, "noise": noise, "shape": "fall", "fall": fall,
                             **rates("fall", logs, points, noise=noise, fall=fall, peak=0.4)})
    return pd.DataFrame(rows)


def markdown(df: pd.DataFrame) -> str:
    """A table as GitHub markdown, numbers to three places."""
    cell = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    return "\n".join(lines + ["| " + " | ".join(map(cell, r)) + " |" for r in df.itertuples(index=False)])


if __name__ == "__main__":
    print(markdown(table()))

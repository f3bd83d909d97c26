"""Experiment tracking: every curve of a run's tables logged to TensorBoard and/or Weights & Biases, named as in
the tables (``run.track: [tensorboard, wandb]``).

    bon/<rm>/{gold,proxy,kl_bound}           step: n of best-of-n
    rl/<curve>/{gold,proxy,kl,winrate,length} step: the RL step
    daa/<curve>/{gold,kl,implicit_acc}       step: the optimizer step
    fits/<curve>/<form>/{alpha,beta,r2,kl_peak}   one value each (step 0)

W&B runs in offline mode unless ``run.wandb_mode`` says otherwise (offline needs no network; ``wandb sync``
uploads later). Tracking reads the finished tables, so a resumed run logs the same curves once.
"""
from __future__ import annotations

import importlib
import math
from pathlib import Path

import pandas as pd

from ..errors import TrackingError

CURVES = {  # table: (the column naming the curve, the step column, the logged columns)
    "bon": ("rm", "n", ("gold", "proxy", "kl_bound")),
    "rl": ("curve", "step", ("gold", "proxy", "kl", "winrate", "length")),
    "daa": ("curve", "step", ("gold", "kl", "implicit_acc")),
}


BACKENDS = {"tensorboard": "torch.utils.tensorboard", "wandb": "wandb"}  # backend: the module it needs


def require(backend: str):
    """The module a backend logs through, or a TrackingError naming the package to install."""
    if backend not in BACKENDS:
        raise TrackingError(f"run.track: unknown backend '{backend}' (tensorboard or wandb)")
    try:
        return importlib.import_module(BACKENDS[backend])
    except ImportError:
        raise TrackingError(f"run.track: {backend} needs the {backend} package: pip install 'overopt[tracking]'")


def scalars(out: Path) -> list[tuple[str, float, int]]:
    """(tag, value, step) of every curve point in the run folder ``out``, as logged."""
    rows = []
    for table, (name_col, step_col, cols) in CURVES.items():
        f = out / f"{table}.csv"
        if not f.exists():
            continue
        df = pd.read_csv(f)
        for _, r in df.iterrows():
            for c in cols:
                if c in df and pd.notna(r[c]) and math.isfinite(float(r[c])):
                    rows.append((f"{table}/{r[name_col]}/{c}", float(r[c]), int(r[step_col])))
    f = out / "fits.csv"
    if f.exists():
        fits = pd.read_csv(f)
        for _, r in fits.iterrows():
            for c in ("alpha", "beta", "r2", "kl_peak"):
                if c in fits and pd.notna(r[c]) and math.isfinite(float(r[c])):
                    rows.append((f"fits/{r['curve']}/{r['form']}/{c}", float(r[c]), 0))
    return rows


def track(out: str | Path, backends, name: str | None = None, config: dict | None = None,
          wandb_mode: str = "offline", wandb_project: str = "overopt") -> dict[str, str]:
    """Log every curve of the run folder ``out`` to each backend; returns {backend: where it wrote}."""
    out = Path(out)
    name = name or out.name
    points = scalars(out)
    where = {}
    for b in backends:
        module = require(b)
        if b == "tensorboard":
            logdir = out / "tracking" / "tensorboard"
            w = module.SummaryWriter(log_dir=str(logdir))
            for tag, v, step in points:
                w.add_scalar(tag, v, step)
            if config:
                w.add_text("config", f"```\n{config}\n```")
            w.close()
            where[b] = str(logdir)
        else:
            wdir = out / "tracking"
            wdir.mkdir(parents=True, exist_ok=True)
            r = module.init(project=wandb_project, name=name, dir=str(wdir), mode=wandb_mode, config=config or {},
                           reinit="create_new")
            # W&B steps only grow: each curve gets its own step axis (<prefix>/step) and its points in order
            for prefix in sorted({t.rsplit("/", 1)[0] for t, _, _ in points}):
                r.define_metric(f"{prefix}/*", step_metric=f"{prefix}/step")
            by = {}
            for tag, v, step in points:
                by.setdefault((tag.rsplit("/", 1)[0], step), {})[tag] = v
            for (prefix, step), vals in sorted(by.items()):
                r.log({**vals, f"{prefix}/step": step})
            r.finish()
            where[b] = str(wdir / "wandb")
    return where

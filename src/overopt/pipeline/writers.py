"""Writing a run's files: tidy tables (CSV, and Parquet where pyarrow is present) and the manifest."""
from __future__ import annotations

import json
import os
import platform
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .. import __version__
from ..errors import ConfigError


def write_table(df: pd.DataFrame, out: Path, name: str) -> None:
    tmp = out / f".{name}.csv.tmp"
    df.to_csv(tmp, index=False)
    os.replace(tmp, out / f"{name}.csv")
    try:
        import pyarrow  # noqa: F401
        df.to_parquet(out / f"{name}.parquet", index=False)
    except ImportError:
        pass


def write_or_drop(df: pd.DataFrame | None, out: Path, name: str) -> None:
    """Write a stage's table, or remove one an earlier run with that stage on left behind (it would
    otherwise be reported as this run's)."""
    if df is not None:
        write_table(df, out, name)
        return
    for stale in (out / f"{name}.csv", out / f"{name}.parquet"):
        stale.unlink(missing_ok=True)


def write_manifest(run, status: str, started: float) -> None:
    """manifest.json: versions, seed, the config's hash, status, wall time, peak memory and every stage's timing."""
    m = {"overopt": __version__, "python": platform.python_version(), "torch": torch.__version__,
         "numpy": np.__version__, "platform": platform.platform(), "device": str(run.device),
         "threads": torch.get_num_threads(), "seed": run.cfg.run.seed, "config_hash": run.cfg.hash,
         "status": status, "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
         "wall_s": round(time.time() - started, 2), "stages": run.timings,
         "tables": {n: len(df) for n, df in sorted(run.written.items()) if df is not None}}  # name -> rows
    if torch.cuda.is_available() and run.device.type == "cuda":
        m["peak_gpu_mem_mb"] = round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)
    try:
        import resource
        m["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the largest worker (`pipeline.parallel`)
        if workers:
            m["peak_rss_workers_mb"] = round(workers / 1024, 1)
    except ImportError:
        pass
    (run.out / "manifest.json").write_text(json.dumps(m, indent=2))


RUN_FILES = ("manifest.json", "config.yaml", "report.html")


def claim_out(out: Path, config_hash: str, overwrite: bool = False) -> None:
    """Make ``out`` this run's folder. Empty or new: taken. Holding this very run (the same config hash): resumed.
    Holding another run: refused unless ``overwrite`` or that run ended before writing any table; either way its
    files (its tables, plots, report, manifest and config; nothing else) are removed first, so the folder never mixes
    two runs. Holding anything that is not a run: refused."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder")
    if not out.exists() or not any(out.iterdir()):
        return
    try:
        old = json.loads((out / "manifest.json").read_text())
    except (OSError, ValueError):
        raise ConfigError(f"--out {out} is not empty and holds no overopt run (no readable manifest.json); choose an "
                          "empty or new folder")
    if old.get("config_hash") == config_hash:
        return
    if not overwrite and any(out.glob("*.csv")):  # a run that ended before any table is nothing to keep
        raise ConfigError(f"--out {out} holds another run (config {old.get('config_hash')}, {old.get('status')}); "
                          "pass --overwrite to replace it, or choose another folder")
    for f in out.iterdir():
        if f.name in RUN_FILES or (f.is_file() and f.suffix in (".csv", ".parquet")):
            f.unlink()
        elif f.name == "plots" and f.is_dir():
            shutil.rmtree(f)

"""Sweeps: a grid of runs, each cell a pure function of its frozen config, on the local machine, a Ray cluster or
SLURM (through submitit).

    # grid.yaml
    preset: smoke                    # the base: a preset, a config file (config: base.yaml), or both
    set: {rl.steps: 20}              # fixed overrides, as --set
    grid:                            # the cells: every combination of these values
      run.seed: [0, 1, 2]
      rm.label_noise: [0.0, 0.25]
    resources: {num_cpus: 1, num_gpus: 0}          # Ray: what each cell asks for
    slurm: {partition: gpu, timeout_min: 120, gpus_per_node: 1, cpus_per_task: 8, mem_gb: 64}

    overopt sweep grid.yaml --launcher local|ray|slurm [--out DIR] [--retry-failed] [--ray-address ADDR]

Each cell writes ``OUT/cells/<hash>/`` (hash of its whole config): ``config.yaml``, the run's files under
``run/``, and ``DONE`` when it finished or ``FAILED`` with its error. A rerun skips DONE cells, resumes unfinished
ones from the artifact cache (a run already resumes mid-stage), and leaves FAILED ones alone unless
``--retry-failed``. Finished cells are aggregated into ``OUT/tables/<table>.csv`` (every cell's rows with the
grid's values as columns), ``OUT/cells.csv`` and ``OUT/report.html``.
"""
from __future__ import annotations

import html
import itertools
import json
import time
import traceback
from pathlib import Path

import pandas as pd
import yaml

from .config import ConfigError, config_data, config_from_dict, merge, read_yaml
from .errors import SweepError

GRID_KEYS = {"preset", "config", "set", "grid", "resources", "slurm", "out"}
CELL_COLUMNS = ["cell", "status", "seconds", "error"]


def _override_dict(key: str, value) -> dict:
    if not isinstance(key, str) or key.count(".") != 1:
        raise SweepError(f"grid key '{key}' must look like section.key")
    s, k = key.split(".")
    return {s: {k: value}}


def read_grid(path: str | Path) -> dict:
    """The grid file, checked: {"base": config dict, "axes": {key: [values]}, "resources", "slurm", "out"}."""
    p = Path(path)
    spec = read_yaml(p, "grid file")  # a missing file, bad YAML or a non-mapping: ConfigError, one line
    unknown = set(spec) - GRID_KEYS
    if unknown:
        raise SweepError(f"{path}: unknown key '{sorted(unknown)[0]}' (known: {', '.join(sorted(GRID_KEYS))})")
    if spec.get("config") is not None and not isinstance(spec["config"], str):
        raise SweepError(f"{path}: config: must be the path of a YAML file, not {spec['config']!r}")
    if not isinstance(spec.get("set") or {}, dict):
        raise SweepError(f"{path}: set: must map section.key to a value")
    cfg_path = Path(spec["config"]) if spec.get("config") else None
    if cfg_path is not None and not cfg_path.is_absolute():
        cfg_path = p.parent / cfg_path  # relative to the grid file
    sets = [_override_dict(k, v) for k, v in (spec.get("set") or {}).items()]
    try:
        base = config_data(spec.get("preset"), cfg_path, sets)
    except ConfigError as e:
        raise SweepError(f"{path}: {e}")
    axes = spec.get("grid") or {}
    if not isinstance(axes, dict) or not axes:
        raise SweepError(f"{path}: grid: must map section.key to a list of values")
    for k, v in axes.items():
        _override_dict(k, None)
        if not isinstance(v, list) or not v:
            raise SweepError(f"{path}: grid key '{k}' must have a non-empty list of values")
    return {"base": base, "axes": axes, "resources": spec.get("resources") or {}, "slurm": spec.get("slurm") or {},
            "out": spec.get("out")}


def expand(grid: dict) -> list[dict]:
    """Every cell: {"id", "params" (grid key -> value), "config" (a dict that builds its Config)}."""
    keys = list(grid["axes"])
    cells = []
    for values in itertools.product(*(grid["axes"][k] for k in keys)):
        data = grid["base"]
        for k, v in zip(keys, values):
            data = merge(data, _override_dict(k, v))
        try:
            cfg = config_from_dict(data)
        except ConfigError as e:
            raise SweepError(f"cell {dict(zip(keys, values))}: {e}")
        cells.append({"id": cfg.hash, "params": dict(zip(keys, values)), "config": cfg.to_dict()})
    ids = [c["id"] for c in cells]
    if len(set(ids)) != len(ids):
        raise SweepError("two cells of the grid have the same config (a repeated value?)")
    return cells


def _failure(e: BaseException, seconds: float, tb: bool = True) -> dict:
    """A cell's failure record: the error in one line (and, where it ran here, the traceback)."""
    first = str(e).splitlines()[0] if str(e) else ""
    info = {"status": "failed", "error": f"{type(e).__name__}: {first}", "seconds": round(seconds, 2)}
    if tb:
        info["traceback"] = traceback.format_exc()
    return info


def _record_failure(d: str | Path, info: dict) -> dict:
    Path(d, "FAILED").write_text(json.dumps({k: v for k, v in info.items() if k != "status"}, indent=1))
    return info


def _log_cell(log, d: str, i: int, n: int, r: dict) -> None:
    log(f"cell {Path(d).name} ({i}/{n}): {r['status']} in {r['seconds']:.1f}s"
        + (f": {r['error']}" if r["status"] == "failed" else ""))


def run_cell(cell_dir: str, config: dict) -> dict:
    """Run one cell into ``cell_dir`` (a pure function of ``config``); never raises: a failure is recorded in
    ``FAILED``. Importable by Ray and submitit workers."""
    from .experiment import run_experiment

    d = Path(cell_dir)
    d.mkdir(parents=True, exist_ok=True)
    if (d / "DONE").exists():
        return {"status": "done", **json.loads((d / "DONE").read_text())}
    t = time.time()
    try:
        cfg = config_from_dict(config)
        (d / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        run_experiment(cfg, d / "run", quiet=True)
    except Exception as e:  # noqa: BLE001 - every failure is the cell's record, not the sweep's end
        return _record_failure(d, _failure(e, time.time() - t))
    info = {"seconds": round(time.time() - t, 2)}
    (d / "FAILED").unlink(missing_ok=True)
    (d / "DONE").write_text(json.dumps(info))
    return {"status": "done", **info}


def cell_status(d: Path) -> tuple[str, dict]:
    if (d / "DONE").exists():
        return "done", json.loads((d / "DONE").read_text())
    if (d / "FAILED").exists():
        return "failed", json.loads((d / "FAILED").read_text())
    return "pending", {}


# ---------------------------------------------------------------- launchers

def launch_local(todo: list[tuple[str, dict]], log) -> None:
    for i, (d, config) in enumerate(todo):
        _log_cell(log, d, i + 1, len(todo), run_cell(d, config))


def launch_ray(todo: list[tuple[str, dict]], log, resources: dict, address: str | None = None,
               num_cpus: int | None = None) -> None:
    try:
        import ray
    except ImportError:
        raise SweepError("--launcher ray needs Ray: pip install 'overopt[ray]'")
    started = not ray.is_initialized()
    if started:
        kw = {"address": address} if address else {"num_cpus": num_cpus, "include_dashboard": False}
        ray.init(log_to_driver=False, **kw)
    try:
        opts = {k: resources[k] for k in ("num_cpus", "num_gpus", "memory") if k in resources}
        remote = ray.remote(**({"num_cpus": 1} | opts))(run_cell)
        pending = {remote.remote(d, config): d for d, config in todo}
        done = 0
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            d = pending.pop(ready[0])
            try:
                r = ray.get(ready[0])
            except Exception as e:  # noqa: BLE001 - a worker lost or killed: record it as the cell's failure
                r = _record_failure(d, _failure(e, 0.0, tb=False))
            done += 1
            _log_cell(log, d, done, len(todo), r)
    finally:
        if started:
            ray.shutdown()


def launch_slurm(todo: list[tuple[str, dict]], log, slurm: dict, folder: Path, cluster: str | None = None) -> None:
    try:
        import submitit
    except ImportError:
        raise SweepError("--launcher slurm needs submitit: pip install 'overopt[slurm]'")
    ex = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    params = {"timeout_min": int(slurm.get("timeout_min", 60)), "name": "overopt"}
    for k in ("gpus_per_node", "cpus_per_task", "mem_gb", "nodes", "tasks_per_node"):
        if k in slurm:
            params[k] = slurm[k]
    for k in ("partition", "account", "qos", "constraint", "array_parallelism"):
        if k in slurm:
            params[f"slurm_{k}"] = slurm[k]
    if ex.cluster != "slurm":  # the local and debug executors take only the generic parameters
        params = {k: v for k, v in params.items() if not k.startswith("slurm_")}
    ex.update_parameters(**params)
    jobs = [(d, ex.submit(run_cell, d, config)) for d, config in todo]
    log(f"submitted {len(jobs)} cell(s) to {ex.cluster} (logs under {folder})")
    for i, (d, job) in enumerate(jobs):
        try:
            r = job.result()
        except Exception as e:  # noqa: BLE001 - a job that died (time limit, node failure) is the cell's failure
            r = _record_failure(d, _failure(e, 0.0, tb=False))
        _log_cell(log, d, i + 1, len(jobs), r)


# ---------------------------------------------------------------- the sweep

def sweep(grid_path: str | Path, launcher: str = "local", out: str | Path | None = None, retry_failed: bool = False,
          ray_address: str | None = None, ray_cpus: int | None = None, slurm_cluster: str | None = None,
          log=print) -> tuple[Path, pd.DataFrame]:
    """Run (or finish) every cell of the grid, then aggregate. Returns the sweep folder and cells.csv's table."""
    grid = read_grid(grid_path)
    cells = expand(grid)
    out = Path(out or grid["out"] or Path("runs") / f"sweep-{Path(grid_path).stem}")
    (out / "cells").mkdir(parents=True, exist_ok=True)
    (out / "grid.yaml").write_text(Path(grid_path).read_text())
    todo, skipped, failed = [], 0, 0
    for c in cells:
        d = out / "cells" / c["id"]
        status, _ = cell_status(d)
        if status == "done":
            skipped += 1
        elif status == "failed" and not retry_failed:
            failed += 1
        else:
            todo.append((str(d), c["config"]))
    log(f"sweep {out}: {len(cells)} cells, {skipped} finished, {failed} failed (--retry-failed to rerun), "
        f"{len(todo)} to run on {launcher}")
    if todo:
        if launcher == "local":
            launch_local(todo, log)
        elif launcher == "ray":
            launch_ray(todo, log, grid["resources"], ray_address, ray_cpus)
        elif launcher == "slurm":
            launch_slurm(todo, log, grid["slurm"], out / "submitit", slurm_cluster)
        else:
            raise SweepError(f"--launcher must be local, ray or slurm, not {launcher!r}")
    table = aggregate(out, cells)
    n_done = int((table["status"] == "done").sum())
    log(f"{n_done}/{len(cells)} cells finished; tables in {out / 'tables'}, report {out / 'report.html'}")
    return out, table


def cell_value(v):
    """A grid value as one table cell: a list or mapping as its compact JSON text (a column can hold it and
    group by it), anything else as it is."""
    return json.dumps(v, separators=(",", ":")) if isinstance(v, (list, dict, tuple)) else v


def aggregate(out: Path, cells: list[dict]) -> pd.DataFrame:
    """cells.csv, tables/<name>.csv (every finished cell's rows, with the grid's values) and report.html."""
    rows, frames = [], {}
    for c in cells:
        d = out / "cells" / c["id"]
        status, info = cell_status(d)
        params = {k: cell_value(v) for k, v in c["params"].items()}
        rows.append({"cell": c["id"], **params, "status": status, "seconds": info.get("seconds"),
                     "error": info.get("error", "")})
        if status != "done":
            continue
        for f in sorted((d / "run").glob("*.csv")):
            df = pd.read_csv(f)
            for k, v in reversed(list(params.items())):
                df.insert(0, k, v)
            df.insert(0, "cell", c["id"])
            frames.setdefault(f.stem, []).append(df)
    table = pd.DataFrame(rows)
    table.to_csv(out / "cells.csv", index=False)
    (out / "tables").mkdir(exist_ok=True)
    for name, parts in frames.items():
        pd.concat(parts, ignore_index=True).to_csv(out / "tables" / f"{name}.csv", index=False)
    write_sweep_report(out, table, cells, frames)
    return table


def write_sweep_report(out: Path, table: pd.DataFrame, cells: list[dict], frames: dict) -> None:
    keys = list(cells[0]["params"]) if cells else []
    from .laws.claims import verdict_counts
    from .report.kit import CSS, html_table as _table

    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>overopt sweep</title><style>{CSS}</style>"
             "</head><body>", f"<h1>Sweep: {html.escape(str(out))}</h1>",
             f"<p>{int((table['status'] == 'done').sum())} of {len(table)} cells finished. Each cell's own report: "
             "cells/&lt;cell&gt;/run/report.html.</p>", _table(table)]
    if "fits" in frames:
        fits = pd.concat(frames["fits"], ignore_index=True)
        cols = [c for c in ("alpha", "beta", "r2", "kl_peak", "gain_peak") if c in fits]
        by = [k for k in keys if k != "run.seed"] + [c for c in ("curve", "form") if c in fits]
        summary = fits.groupby(by, sort=False)[cols].agg(["mean", "std"]).reset_index() if by else fits
        summary.columns = [" ".join(str(x) for x in c if x) if isinstance(c, tuple) else c for c in summary.columns]
        parts += ["<h2>Fits across cells</h2>", "<p class='note'>Mean and standard deviation over the cells that "
                  "share every grid value but the seed.</p>", _table(summary)]
    if "claims" in frames:
        claims = pd.concat(frames["claims"], ignore_index=True)
        held = verdict_counts(claims).rename(columns={"holds": "cells where it holds", "checked": "rows"})
        parts += ["<h2>Claims across cells</h2>", _table(held)]
    if keys == ["run.seed"]:  # seeds of one config: the label-budget and detector tables pooled over them
        parts += _across_seeds(frames, out / "tables")
    parts.append("</body></html>")
    (out / "report.html").write_text("\n".join(parts))


def _across_seeds(frames: dict, tables: Path) -> list[str]:
    """The budget study's summary over every seed's runs, and each gold-free signal's stop rule with thresholds
    chosen on the other seeds (`studies.detectors.summary_table` grouped by run.seed); also written as
    tables/budget_summary_seeds.csv and tables/detector_summary_seeds.csv."""
    from .report.kit import html_table as _table
    from .studies import budget, detectors

    parts = []
    if "budget" in frames:
        df = budget.summary_table(pd.concat(frames["budget"], ignore_index=True))
        df.to_csv(tables / "budget_summary_seeds.csv", index=False)
        parts += ["<h2>A judge on a label budget, every seed</h2>", _table(df)]
    if "detectors" in frames:
        df = detectors.summary_table(pd.concat(frames["detectors"], ignore_index=True), "run.seed")
        df.to_csv(tables / "detector_summary_seeds.csv", index=False)
        parts += ["<h2>Gold-free detectors, thresholds from the other seeds</h2>", _table(df)]
    return parts

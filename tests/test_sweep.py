"""Sweeps: the grid, resumption after a kill, failures, and the same tables from the local, Ray and submitit
launchers."""
import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml

from overopt.cli import main
from overopt.sweep import SweepError, expand, read_grid

# the smoke world with only best-of-n and RL: a few seconds a cell
FAST = {"daa.enabled": False, "ensemble.enabled": False, "multi.enabled": False, "aif.enabled": False,
        "active.enabled": False, "monitor.enabled": False, "rl.kl_sweep": [], "rl.policy_sizes": [],
        "rl.iterated_rounds": 0, "budget.enabled": False, "run.threads": 1}


def grid_file(path, cache, axes, **extra):
    spec = {"preset": "smoke", "set": {**FAST, "run.cache_dir": str(cache)}, "grid": axes, **extra}
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_grid_expands_to_one_cell_per_combination(tmp_path):
    g = grid_file(tmp_path / "g.yaml", tmp_path / "c", {"run.seed": [0, 1], "rm.label_noise": [0.0, 0.1, 0.2]})
    cells = expand(read_grid(g))
    assert len(cells) == 6 and len({c["id"] for c in cells}) == 6
    assert cells[1]["params"] == {"run.seed": 0, "rm.label_noise": 0.1}
    assert cells[1]["config"]["rm"]["label_noise"] == 0.1 and cells[1]["config"]["rl"]["kl_sweep"] == []
    # the id is the config's hash: the same cell in another grid file has the same folder
    again = expand(read_grid(grid_file(tmp_path / "h.yaml", tmp_path / "other", {"rm.label_noise": [0.1]})))
    assert again[0]["id"] == cells[1]["id"]


@pytest.mark.parametrize("spec, msg", [
    ({"grid": {"rm.n_train": []}}, "grid key 'rm.n_train' must have a non-empty list"),
    ({"grid": {"n_train": [1]}}, "grid key 'n_train' must look like section.key"),
    ({"grid": {"rm.label_noise": [0.7]}}, "config key 'rm.label_noise' must be in [0, 0.5)"),
    ({"grid": {"rm.n_train": [10]}, "launch": 1}, "unknown key 'launch'"),
    ({"preset": "nope", "grid": {"run.seed": [0]}}, "unknown preset 'nope'"),
    ({"set": ["rm.n_train", 10], "grid": {"run.seed": [0]}}, "set: must map section.key to a value"),
    ({"config": 3, "grid": {"run.seed": [0]}}, "config: must be the path of a YAML file, not 3"),
])
def test_bad_grids_are_one_line_errors(tmp_path, capsys, spec, msg):
    g = tmp_path / "g.yaml"
    g.write_text(yaml.safe_dump(spec))
    assert main(["sweep", str(g), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and msg in err[0]
    with pytest.raises(SweepError):
        expand(read_grid(g))


def test_a_killed_sweep_resumes_without_redoing_finished_cells(tmp_path):
    g = grid_file(tmp_path / "g.yaml", tmp_path / "cache", {"rm.label_noise": [0.0, 0.1, 0.2]})
    out = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "overopt.cli", "sweep", str(g), "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    t0 = time.time()
    while not list(out.glob("cells/*/DONE")) and time.time() - t0 < 300 and proc.poll() is None:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # halfway: the first cell is finished, the second is running
    proc.wait()
    first = list(out.glob("cells/*/DONE"))
    assert 1 <= len(first) < 3
    stamps = {p: (p.stat().st_mtime_ns, (p.parent / "run" / "bon.csv").stat().st_mtime_ns) for p in first}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert f"{len(first)} finished" in r.stderr
    for p, (done, bon) in stamps.items():  # finished cells untouched
        assert p.stat().st_mtime_ns == done and (p.parent / "run" / "bon.csv").stat().st_mtime_ns == bon
    cells = pd.read_csv(out / "cells.csv")
    assert (cells["status"] == "done").all() and len(cells) == 3
    bon = pd.read_csv(out / "tables" / "bon.csv")
    assert sorted(bon["rm.label_noise"].unique()) == [0.0, 0.1, 0.2] and bon["cell"].nunique() == 3
    assert "Fits across cells" in (out / "report.html").read_text()


def test_failures_are_recorded_and_retried_on_request(tmp_path, capsys, monkeypatch):
    import overopt.experiment as E

    g = grid_file(tmp_path / "g.yaml", tmp_path / "cache", {"rm.label_noise": [0.0, 0.1]})
    out = tmp_path / "sweep"
    real = E.run_experiment

    def flaky(cfg, out_dir, quiet=False):
        if cfg.rm.label_noise == 0.1:
            raise RuntimeError("node lost\nsecond line")
        return real(cfg, out_dir, quiet)

    monkeypatch.setattr(E, "run_experiment", flaky)
    assert main(["sweep", str(g), "--out", str(out)]) == 1
    cells = pd.read_csv(out / "cells.csv").set_index("rm.label_noise")
    assert cells.loc[0.0, "status"] == "done" and cells.loc[0.1, "status"] == "failed"
    assert cells.loc[0.1, "error"] == "RuntimeError: node lost"
    failed = next(out.glob("cells/*/FAILED"))
    assert "Traceback" in json.loads(failed.read_text())["traceback"]
    assert main(["sweep", str(g), "--out", str(out)]) == 1  # left alone without --retry-failed
    assert "1 failed (--retry-failed to rerun), 0 to run" in capsys.readouterr().err
    monkeypatch.setattr(E, "run_experiment", real)
    assert main(["sweep", str(g), "--out", str(out), "--retry-failed"]) == 0
    assert (pd.read_csv(out / "cells.csv")["status"] == "done").all() and not failed.exists()


def _tables(out):
    """rm, bon and rl tables of a sweep in a fixed order, less the training wall time (rm.csv's train_s)."""
    return {n: pd.read_csv(out / "tables" / f"{n}.csv").drop(columns=["train_s"], errors="ignore")
            .sort_values(["cell", "rm"] if n == "rm" else ["cell"], kind="stable").reset_index(drop=True)
            for n in ("rm", "bon", "rl")}


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("local")
    g = grid_file(tmp / "g.yaml", tmp / "cache", {"rm.label_noise": [0.0, 0.2]})
    assert main(["sweep", str(g), "--out", str(tmp / "sweep")]) == 0
    return _tables(tmp / "sweep")


def test_ray_launcher_gives_the_local_tables(local_sweep, tmp_path):
    pytest.importorskip("ray")
    g = grid_file(tmp_path / "g.yaml", tmp_path / "cache", {"rm.label_noise": [0.0, 0.2]},
                  resources={"num_cpus": 1})
    assert main(["sweep", str(g), "--out", str(tmp_path / "sweep"), "--launcher", "ray", "--ray-cpus", "2"]) == 0
    for name, df in _tables(tmp_path / "sweep").items():
        pd.testing.assert_frame_equal(df, local_sweep[name], check_exact=False, rtol=1e-5, atol=1e-6)


def test_submitit_launcher_gives_the_local_tables(local_sweep, tmp_path):
    pytest.importorskip("submitit")
    g = grid_file(tmp_path / "g.yaml", tmp_path / "cache", {"rm.label_noise": [0.0, 0.2]},
                  slurm={"timeout_min": 10, "partition": "ignored-locally"})
    assert main(["sweep", str(g), "--out", str(tmp_path / "sweep"), "--launcher", "slurm",
                 "--slurm-cluster", "local"]) == 0
    assert list((tmp_path / "sweep" / "submitit").glob("*_log.out"))
    for name, df in _tables(tmp_path / "sweep").items():
        pd.testing.assert_frame_equal(df, local_sweep[name], check_exact=False, rtol=1e-5, atol=1e-6)


def test_list_valued_axes_aggregate_as_readable_columns(tmp_path):
    from overopt.sweep import aggregate

    g = grid_file(tmp_path / "g.yaml", tmp_path / "c", {"rl.kl_sweep": [[0.1], [0.1, 0.3]], "run.seed": [0, 1]})
    cells = expand(read_grid(g))
    for c in cells:  # finished cells, each with a fits table of two rows
        run = tmp_path / "o" / "cells" / c["id"] / "run"
        run.mkdir(parents=True)
        pd.DataFrame({"curve": ["a", "b"], "form": "rl", "alpha": [1.0, 2.0], "beta": 0.5, "r2": 0.9, "kl_peak": 1.0,
                      "gain_peak": 1.0}).to_csv(run / "fits.csv", index=False)
        (run.parent / "DONE").write_text(json.dumps({"seconds": 1.0}))
    table = aggregate(tmp_path / "o", cells)
    assert table["rl.kl_sweep"].tolist() == ["[0.1]", "[0.1]", "[0.1,0.3]", "[0.1,0.3]"]
    fits = pd.read_csv(tmp_path / "o" / "tables" / "fits.csv")
    assert len(fits) == 8 and set(fits["rl.kl_sweep"]) == {"[0.1]", "[0.1,0.3]"}
    assert "Fits across cells" in (tmp_path / "o" / "report.html").read_text()


def test_a_seed_sweep_pools_the_budget_and_detector_tables(tmp_path):
    """Seeds of one config: the budget summary over every seed's runs, the detectors' thresholds from the other
    seed."""
    g = grid_file(tmp_path / "g.yaml", tmp_path / "c", {"run.seed": [0, 1]})
    spec = yaml.safe_load(g.read_text())
    spec["set"]["budget.enabled"] = True
    g.write_text(yaml.safe_dump(spec, sort_keys=False))
    assert main(["sweep", str(g), "--out", str(tmp_path / "sweep")]) == 0
    t = tmp_path / "sweep" / "tables"
    budget, pooled = pd.read_csv(t / "budget.csv"), pd.read_csv(t / "budget_summary_seeds.csv")
    assert set(budget["run.seed"]) == {0, 1}
    assert pooled["runs"].sum() == len(budget)  # every run of both seeds, once
    det = pd.read_csv(t / "detector_summary_seeds.csv")
    assert {"kl", "mahalanobis"} <= set(det["signal"]) and det["regret"].notna().all()
    html = (tmp_path / "sweep" / "report.html").read_text()
    assert "A judge on a label budget, every seed" in html and "thresholds from the other seeds" in html

"""Tracking: every curve of the tables in TensorBoard (read back from the event files) and W&B offline."""
import pandas as pd
import pytest

from overopt.cli import main
from overopt.pipeline.tracking import scalars, track


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("track")
    out = tmp / "out"
    sets = ["daa.enabled=false", "ensemble.enabled=false", "multi.enabled=false", "aif.enabled=false",
            "active.enabled=false", "monitor.enabled=false", "rl.policy_sizes=", "rl.iterated_rounds=0",
            "run.track=tensorboard", f"run.cache_dir={tmp / 'cache'}"]
    args = ["run", "--preset", "smoke", "--out", str(out), "--quiet"]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 0
    return out


def test_tensorboard_holds_every_rl_and_bon_point(tracked):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tracked / "tracking" / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    rl, bon = pd.read_csv(tracked / "rl.csv"), pd.read_csv(tracked / "bon.csv")
    for curve, g in rl.groupby("curve"):
        ev = acc.Scalars(f"rl/{curve}/gold")
        assert [e.step for e in ev] == g["step"].tolist()
        assert [e.value for e in ev] == pytest.approx(g["gold"].tolist(), rel=1e-6)
    g = bon[bon["rm"] == "8x1"]
    assert [e.value for e in acc.Scalars("bon/8x1/gold")] == pytest.approx(g["gold"].tolist(), rel=1e-6)
    assert "fits/bon/gold/8x1/bon/alpha" in tags  # fits.csv names the curve bon/gold/8x1, the form bon
    assert len(tags) == len({t for t, _, _ in scalars(tracked)})


def test_wandb_offline_writes_a_run_without_network(tracked, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    where = track(tracked, ["wandb"], name="smoke", wandb_mode="offline")
    runs = list((tracked / "tracking" / "wandb").glob("offline-run-*"))
    assert where["wandb"].endswith("wandb") and len(runs) == 1
    assert any(f.suffix == ".wandb" for f in runs[0].iterdir())


def test_unknown_backend_is_a_one_line_error(tmp_path, capsys):
    assert main(["run", "--preset", "smoke", "--out", str(tmp_path), "--quiet", "--set", "run.track=mlflow"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "config key 'run.track' entries must be tensorboard or wandb" in err[0]

"""--out never mixes two runs: another run's folder is refused unless --overwrite, which replaces it whole."""
import json
import shutil

import pandas as pd

from overopt.cli import main


def run(out, cache, *sets, extra=()):
    args = ["run", "--preset", "smoke", "--quiet", "--out", str(out), "--set", f"run.cache_dir={cache}",
            "--set", "rl.enabled=false", *extra]
    for s in sets:
        args += ["--set", s]
    return main(args)


def test_another_runs_folder_is_refused_unless_overwrite_and_the_report_names_foreign_tables(tmp_path, capsys):
    out, cache = tmp_path / "out", tmp_path / "cache"
    assert run(out, cache) == 0
    first = json.loads((out / "manifest.json").read_text())["config_hash"]
    bon = pd.read_csv(out / "bon.csv")
    capsys.readouterr()
    assert run(out, cache, "gold.w_length=0.02") == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"overopt run: error: --out {out} holds another run (config {first}, complete); pass --overwrite "
                   "to replace it, or choose another folder")
    pd.testing.assert_frame_equal(pd.read_csv(out / "bon.csv"), bon)  # untouched
    (out / "notes.txt").write_text("mine")
    assert run(out, cache, "gold.w_length=0.02", extra=["--overwrite"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config_hash"] != first and manifest["status"] == "complete"
    assert sorted(f.stem for f in out.glob("*.csv")) == sorted(manifest["tables"])  # every table is this run's
    assert (out / "notes.txt").read_text() == "mine"  # what overopt did not write is left alone
    assert "Not written by this run" not in (out / "report.html").read_text()
    shutil.copy(out / "bon.csv", out / "extra_bon.csv")  # a table copied in from elsewhere
    assert main(["report", str(out)]) == 0
    assert "Not written by this run" in (out / "report.html").read_text() and "extra_bon.csv" in \
        (out / "report.html").read_text()


def test_a_folder_that_is_not_a_run_is_refused(tmp_path, capsys):
    other = tmp_path / "home"
    other.mkdir()
    (other / "thesis.tex").write_text("x")
    assert run(other, tmp_path / "cache", extra=["--overwrite"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"overopt run: error: --out {other} is not empty and holds no overopt run (no readable " \
                  "manifest.json); choose an empty or new folder"
    assert [f.name for f in other.iterdir()] == ["thesis.tex"]

"""Proxies and independent RL curves in forked workers: the same results as one process, failures left to the caller."""
import json
import os
import shutil
from contextlib import nullcontext
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from overopt.pipeline import parallel
from overopt.pipeline.parallel import in_workers, n_workers

from test_rl import ONLY_RL

linux = pytest.mark.skipif(n_workers(SimpleNamespace(device=torch.device("cpu"), cfg=SimpleNamespace(
    run=SimpleNamespace(workers=2))), 2) < 2, reason="forked workers need Linux")


class _Bar:
    def update(self, n):
        pass


def fake_run(workers: int, device: str = "cpu"):
    return SimpleNamespace(device=torch.device(device), cfg=SimpleNamespace(run=SimpleNamespace(workers=workers)),
                           quiet=False, bar=lambda total, desc: nullcontext(_Bar()))


def test_worker_count_rules(monkeypatch):
    assert n_workers(fake_run(4, "cuda"), 5) == 1        # one GPU: no workers
    assert n_workers(fake_run(1), 5) == 1                # run.workers=1: none
    monkeypatch.setattr(parallel, "sys", SimpleNamespace(platform="darwin"))
    assert n_workers(fake_run(4), 5) == 1                # no fork-safe platform


@linux
def test_jobs_run_in_other_processes_and_the_remainder_is_left_to_the_caller(tmp_path):
    def job(i):
        def f():
            if i == 1:
                raise RuntimeError("this job fails in its worker")
            (tmp_path / f"{i}").write_text(str(os.getpid()))
        return f

    assert n_workers(fake_run(3), 7) == 3
    ran = in_workers(fake_run(3), [job(i) for i in range(7)], "jobs")
    assert ran == 6                                        # 7 - 7 mod 3: the last runs in the caller
    done = sorted(int(p.name) for p in tmp_path.iterdir())
    assert done == [0, 2, 3, 4, 5]                         # job 1 failed (the caller runs it again), job 6 left
    assert all(int((tmp_path / f"{i}").read_text()) != os.getpid() for i in done)


@linux
def test_rl_curves_in_workers_give_the_rows_of_one_process(tmp_path):
    """The smoke preset's five curves (two proxies, a KL penalty, a pi0 size, iterated RLHF), four of them in two
    one-thread workers, against all five run one after the other on one thread."""
    from overopt.cli import main

    base = ["run", "--preset", "smoke", "--quiet", "--set", "rm.sizes=[8x1,16x1]", *ONLY_RL, "--set", "run.threads=1"]
    assert main([*base, "--out", str(tmp_path / "serial"), "--set", f"run.cache_dir={tmp_path / 'a'}",
                 "--set", "run.workers=1"]) == 0
    shutil.copytree(tmp_path / "a", tmp_path / "b", ignore=shutil.ignore_patterns("rl", "rl-ckpt"))  # the same proxies
    assert main([*base, "--out", str(tmp_path / "forked"), "--set", f"run.cache_dir={tmp_path / 'b'}",
                 "--set", "run.workers=2"]) == 0
    a, b = (pd.read_csv(tmp_path / n / "rl.csv") for n in ("serial", "forked"))
    assert set(a["curve"]) == {"8x1", "16x1", "8x1/kl0.1", "8x1/pi0-16x1", "8x1/iter2"}
    pd.testing.assert_frame_equal(a, b)
    stages = json.loads((tmp_path / "forked" / "manifest.json").read_text())["stages"]
    assert stages["rl curves in workers"]["jobs"] == 4
    assert [stages[f"rl {c}"]["cached"] for c in ("8x1", "16x1", "8x1/kl0.1", "8x1/pi0-16x1", "8x1/iter2")] == \
        [True, True, True, True, False]
    assert "rl curves in workers" not in json.loads((tmp_path / "serial" / "manifest.json").read_text())["stages"]


@linux
def test_proxies_in_workers_are_the_proxies_of_one_process(tmp_path):
    """The smoke preset's three proxies, two trained in one-thread workers (the costliest first) and the smallest
    by the caller, against all three trained one after the other on one thread: the same rm.csv and best-of-n."""
    from overopt.cli import main

    base = ["run", "--preset", "smoke", "--quiet", *ONLY_RL, "--set", "rl.enabled=false", "--set", "run.threads=1"]
    for name, workers in (("serial", 1), ("forked", 2)):
        assert main([*base, "--out", str(tmp_path / name), "--set", f"run.cache_dir={tmp_path / f'cache-{name}'}",
                     "--set", f"run.workers={workers}"]) == 0
    for table in ("rm", "bon"):
        a, b = (pd.read_csv(tmp_path / n / f"{table}.csv") for n in ("serial", "forked"))
        pd.testing.assert_frame_equal(a.drop(columns=["train_s"], errors="ignore"),
                                      b.drop(columns=["train_s"], errors="ignore"))
    stages = json.loads((tmp_path / "forked" / "manifest.json").read_text())["stages"]
    assert stages["proxies in workers"]["jobs"] == 2
    assert [stages[f"rm {s}"]["cached"] for s in ("8x1", "16x1", "32x1")] == [False, True, True]
    assert "proxies in workers" not in json.loads((tmp_path / "serial" / "manifest.json").read_text())["stages"]

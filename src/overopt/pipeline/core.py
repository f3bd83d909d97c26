"""The core of every run, built once before any study: the world, pi0, the labelled pairs, the proxy family (each
trained, centred and calibrated; `rm.csv`), the best-of-n pool, its proxy scores and its gold."""
from __future__ import annotations

import pandas as pd

from .artifacts import Artifacts, PoolGold
from .build import build_pairs, build_pi0, build_pool, build_world, labelled_pairs
from .proxies import build_proxies, calibrate, score_pool
from .run import Run

RM_COLUMNS = ["rm", "params", "n_train", "seed", "val_loss", "val_acc", "train_s"]


def build_artifacts(run: Run) -> Artifacts:
    world = build_world(run)
    pi0 = build_pi0(run, world)
    pairs = build_pairs(run, world, pi0)
    labelled = labelled_pairs(run, world, pairs)
    proxies = build_proxies(run, world, labelled)
    run.write("rm", pd.DataFrame([p.row() for p in proxies], columns=RM_COLUMNS))
    with run.stage("calibration"):
        proxies, cal, rel = calibrate(run, world, proxies, labelled.val)
    pool = build_pool(run, world, pi0)
    scores = score_pool(run, world, pool, proxies)
    pool_gold = PoolGold(*world.gold(pool.prompt_idx, pool.tokens, run.cfg.gold, pairs.gold_norm))
    return Artifacts(world, pi0, pairs, labelled, tuple(proxies), (cal, rel), pool, scores, pool_gold)

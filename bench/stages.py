"""Every stage of a whole run, timed at a reference commit and now, side by side in one session.

    python bench/stages.py [--ref 28666db] [--preset default] [--config FILE] [--threads 0] [--keep DIR]

1. Measures this machine's matmul rate (float32, square products of 256 to 1024, median GFLOP/s).
2. Checks the reference commit out into a temporary `git worktree` and runs `overopt run` there on a fresh
   cache; the resolved `config.yaml` that run writes is the workload.
3. Runs the working tree's `overopt run --config` on that file, on another fresh cache.
4. Prints each stage's seconds at both commits, their ratio, the stage's model FLOPs and the fraction of the
   machine's matmul rate the current code reaches on it, then the whole runs' wall time and peak memory.

Model FLOPs count what the model defines, whatever the code skips: a forward pass of a GPT-NeoX of width C,
depth L and output vocabulary V costs 24 C^2 L + 4 C L ctx + 2 C V per token (projections and MLP, attention
scores over ctx earlier positions, the head), a training step three forwards. Token counts come from the
current run's own artifacts (pool response lengths, the RL curves' evaluated lengths). A fraction above what
the machine's matmuls reach on small shapes is normal for nothing; below it shows overhead (small ops, padding).

The last line is `ratio: <reference wall time / current wall time>` (higher is faster), both processes timed
from start to exit. The machine is noisy: run it when nothing else runs, and compare ratios.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from work import check

ROOT = Path(__file__).resolve().parent.parent


def matmul_rate(seconds: float = 1.0) -> float:
    """Median float32 GFLOP/s of square matmuls (256, 512, 1024) with the default thread count."""
    rates = []
    for n in (256, 512, 1024):
        a, b = torch.randn(n, n), torch.randn(n, n)
        for _ in range(3):
            a @ b
        k, t = 0, time.perf_counter()
        while time.perf_counter() - t < seconds:
            a @ b
            k += 1
        rates.append(2 * n ** 3 * k / (time.perf_counter() - t) / 1e9)
    return statistics.median(rates)


def run_overopt(src: Path, args: list[str], out: Path, cache: Path, threads: int) -> float:
    """`overopt run` from the package in ``src`` (first on the path) with a fresh cache; its wall seconds."""
    env = {**os.environ, "PYTHONPATH": str(src), "OVEROPT_CACHE": str(cache)}
    cmd = [sys.executable, "-c", "import sys; from overopt.cli import main; sys.exit(main())", "run", *args,
           "--out", str(out), "--set", f"run.cache_dir={cache}", "--set", f"run.threads={threads}"]
    t = time.perf_counter()
    done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t
    if done.returncode:
        sys.exit(f"stages: overopt run failed in {src}: {done.stderr.strip().splitlines()[-1:]}")
    return wall


def forward_flops(hidden: int, layers: int, vocab_out: int, tokens: float, ctx: float) -> float:
    """Model FLOPs of a GPT-NeoX forward over ``tokens`` tokens attending to ``ctx`` positions on average."""
    return tokens * (24 * hidden ** 2 * layers + 4 * hidden * layers * ctx + 2 * hidden * vocab_out)


def stage_flops(out: Path, cache: Path) -> dict[str, float]:
    """Model FLOPs of each stage of the run in ``out``, from its config and its cached artifacts."""
    os.environ["OVEROPT_CACHE"] = str(cache)
    from overopt.config import load_config, parse_size
    from overopt.pipeline.build import build_pi0, build_pool, build_world
    from overopt.pipeline.run import Run

    cfg = load_config(None, str(out / "config.yaml"), [f"run.cache_dir={cache}"])
    run = Run(cfg, out, quiet=True)
    world = build_world(run)
    pool = build_pool(run, world, build_pi0(run, world))
    P, V = world.prompt_len, len(world.vocab)
    resp = float((pool.tokens != world.pad).sum(1).mean())  # response tokens, end token included
    seq = P + resp
    pi = (cfg.policy.hidden, cfg.policy.layers)

    def fwd(size, rows, length=seq, head=0):
        return forward_flops(*size, head, rows * length, length / 2)

    f = {"pi0": 3 * fwd(pi, cfg.policy.steps * cfg.policy.batch_size, head=V),
         "pairs": fwd(pi, 2 * (cfg.rm.n_train + cfg.rm.n_val), head=V),
         "pool": fwd(pi, len(pool.tokens), head=V)}
    sizes = {s: parse_size(s) for s in cfg.rm.sizes}
    f["calibration"] = sum(fwd(sz, 2 * cfg.rm.n_val) for sz in sizes.values())
    for name, sz in sizes.items():
        f[f"rm {name}"] = 3 * fwd(sz, 2 * cfg.rm.epochs * cfg.rm.n_train) + fwd(sz, 4 * cfg.rm.n_val)
        f[f"score {name}"] = fwd(sz, len(pool.tokens))
    rl_path = out / "rl.csv"
    if rl_path.exists():
        rl = pd.read_csv(rl_path)
        r = cfg.rl
        for curve, g in rl.groupby("curve"):
            if curve not in sizes:
                continue
            steps = np.arange(r.steps)
            length = P + 1 + np.interp(steps, g["step"], g["length"])  # words + the end token
            rows = r.prompts_per_step * r.k
            roll = sum(2 * fwd(pi, rows, L, V) + fwd(sizes[curve], rows, L) for L in length)
            update = sum(3 * r.epochs * fwd(pi, rows, L, V) for L in length)
            ev_rows = r.eval_prompts * r.eval_samples
            ev = sum(3 * fwd(pi, ev_rows, P + 1 + L, V) + fwd(sizes[curve], ev_rows, P + 1 + L) for L in g["length"])
            f[f"rl {curve}"] = roll + update + ev
    return f


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", default="28666db", help="reference commit")
    ap.add_argument("--preset", default="default", help="the workload: this preset as the reference resolves it")
    ap.add_argument("--config", default="", help="the workload as a config file instead of --preset")
    ap.add_argument("--threads", type=int, default=0, help="torch threads of both runs (0: all cores)")
    ap.add_argument("--keep", default="", help="keep both runs' outputs and caches in this folder")
    return ap


def work(a) -> dict[str, tuple]:
    """Both runs read one workload (the reference's resolved config.yaml, `config_agrees` after the runs) on a fresh
    cache with the same threads."""
    source = a.config or f"preset {a.preset}"
    return {"workload": (source, source), "fresh cache": (True, True), "torch threads": (a.threads, a.threads)}


def config_agrees(ref: Path, now: Path) -> dict[str, tuple]:
    """Every key the reference run resolved, at its value in both runs' config.yaml (a key only the current code has
    is a new option, at its default)."""
    r, n = (yaml.safe_load(p.read_text()) for p in (ref, now))
    return {f"{sec}.{k}": (n.get(sec, {}).get(k), v) for sec, fields in r.items() for k, v in fields.items()
            if sec != "run" or k in ("seed", "device")}


def main() -> None:
    a = parser().parse_args()
    check(work(a), f"ref {a.ref}")
    rate = matmul_rate()
    print(f"matmul rate: {rate:.1f} GFLOP/s float32, {torch.get_num_threads()} threads")
    folder = Path(a.keep or tempfile.mkdtemp(prefix="overopt-stages-"))
    folder.mkdir(parents=True, exist_ok=True)
    tree = folder / "ref-tree"
    if not tree.exists():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), a.ref], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        workload = ["--config", str(Path(a.config).resolve())] if a.config else ["--preset", a.preset]
        wall_ref = run_overopt(tree / "src", workload, folder / "out-ref", folder / "cache-ref", a.threads)
        wall_now = run_overopt(ROOT / "src", ["--config", str(folder / "out-ref" / "config.yaml")],
                               folder / "out-now", folder / "cache-now", a.threads)
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    agree = config_agrees(folder / "out-ref" / "config.yaml", folder / "out-now" / "config.yaml")
    bad = [k for k, (x, y) in agree.items() if x != y]
    print(f"config: {len(agree) - len(bad)} of {len(agree)} resolved keys agree" + (f"; differ: {bad}" if bad else ""))
    man = {k: json.loads((folder / f"out-{k}" / "manifest.json").read_text()) for k in ("ref", "now")}
    flops = stage_flops(folder / "out-now", folder / "cache-now")
    stages, ref_s = man["now"]["stages"], {n: st["seconds"] for n, st in man["ref"]["stages"].items()}
    moved = []  # proxies and curves run in workers read as cached in their own stages: their figures go to the workers'
    for workers, prefix in (("proxies in workers", "rm "), ("rl curves in workers", "rl ")):
        if workers in stages:
            mine = [n for n, st in stages.items() if n.startswith(prefix) and st.get("cached") and n in flops]
            flops[workers] = sum(flops.pop(n) for n in mine)
            ref_s[workers] = sum(ref_s.pop(n, float("nan")) for n in mine)
            moved += mine
    w = max(16, *(len(n) + 2 for n in stages))
    print(f"{'stage':<{w}}{'ref s':>9}{'now s':>9}{'ratio':>8}{'GFLOP':>10}{'GFLOP/s':>9}{'of rate':>9}")
    for name, st in stages.items():
        if name in moved:
            continue
        ref = ref_s.get(name, float("nan"))
        now = st["seconds"]
        g = flops.get(name, float("nan")) / 1e9
        achieved = g / now if now else float("nan")
        print(f"{name:<{w}}{ref:>9.1f}{now:>9.1f}{ref / now if now else float('nan'):>8.2f}{g:>10.0f}"
              f"{achieved:>9.1f}{achieved / rate:>9.1%}")
    total = sum(flops.values()) / 1e9
    print(f"model FLOPs in the stages above: {total:.0f} GFLOP, {total / wall_now:.1f} GFLOP/s over the whole run "
          f"({total / wall_now / rate:.1%} of the matmul rate)")
    for k, wall in (("ref", wall_ref), ("now", wall_now)):
        print(f"{k}: wall {wall:.1f} s, peak RSS {man[k].get('peak_rss_mb', float('nan')) / 1024:.2f} GB")
    print(f"ratio: {wall_ref / wall_now:.3f}")


if __name__ == "__main__":
    main()

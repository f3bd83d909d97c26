"""Peak memory and time of `overopt fit --forecast` and `overopt monitor` on a long JSON Lines log, now and at a
reference commit.

    python bench/logmem.py [--lines 400000] [--ref dc0cae6] [--repeats 3]

Writes one log as a TRL GRPO run writes it (step, epoch, loss, grad_norm, learning_rate, a per-token kl with
completions/mean_length, reward, reward_std, entropy; the reward rising as 0.3 sqrt(KL) with batch noise 0.3), then
runs each command on it in a fresh process, here and in a `git worktree` of ``--ref``, interleaved, and reads each
process's peak resident memory (`resource.getrusage` of the child). The issue's target: fit under 600 MB on 400,000
lines. `ratio:` last is the reference's median fit peak memory over now's (> 1: less memory now).
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

from work import check

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = {"fit --forecast": ["fit", "LOG", "--forecast", "--n-boot", "200"],
            "monitor": ["monitor", "LOG", "--reference-col", "reward_std"]}


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=400_000)
    ap.add_argument("--ref", default="dc0cae6", help="the reference commit (default: before the stop rule)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--monitor", action="store_true", help="also time the monitor (minutes on 400,000 lines)")
    return ap


def work(a) -> dict[str, tuple]:
    """Both sides run the same command lines on the same file."""
    return {"log lines": (a.lines, a.lines), "fit": (" ".join(COMMANDS["fit --forecast"]),) * 2,
            "monitor": (" ".join(COMMANDS["monitor"]) if a.monitor else "not run",) * 2}


def write_log(path: Path, lines: int) -> None:
    rng = np.random.default_rng(0)
    with open(path, "w") as f:
        for i in range(lines):
            kl = 1e-4 * i  # per token; x 40 tokens: the sequence KL
            f.write(json.dumps({"step": i, "epoch": i / lines, "loss": 0.1, "grad_norm": 1.0, "learning_rate": 1e-6,
                                "kl": kl, "completions/mean_length": 40.0,
                                "reward": float(0.3 * np.sqrt(40 * kl) + rng.normal(0, 0.3)), "reward_std": 0.5,
                                "entropy": 1.0}) + "\n")


def peak(src: Path, args: list[str]) -> tuple[float, float]:
    """(peak resident MB, seconds) of one overopt command in a fresh process (its own children's peak)."""
    code = ("import resource, sys, time; from overopt.cli import main; t = time.perf_counter(); "
            f"main({args!r}); print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
            "time.perf_counter() - t, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(src)},
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    line = next((x for x in done.stderr.splitlines() if x.startswith("PEAK")), None)
    if line is None:
        raise SystemExit(f"overopt {' '.join(args)} at {src} failed: {done.stderr.strip().splitlines()[-1:]}")
    kb, seconds = line.split()[1:]
    return int(kb) / 1024 / (1024 if sys.platform == "darwin" else 1), float(seconds)  # ru_maxrss: KB (bytes on macOS)


def main() -> None:
    a = parser().parse_args()
    check(work(a), f"ref {a.ref}")
    folder = Path(tempfile.mkdtemp(prefix="overopt-logmem-"))
    log = folder / "grpo.jsonl"
    write_log(log, a.lines)
    print(f"log: {a.lines:,} lines, {log.stat().st_size / 2**20:.0f} MB")
    tree = folder / "ref-tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), a.ref], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    res: dict = {}
    try:
        for name, cmd in COMMANDS.items():
            if name == "monitor" and not a.monitor:
                continue
            args = [str(log) if x == "LOG" else x for x in cmd]
            for _ in range(a.repeats):
                for side, src in (("ref", tree / "src"), ("now", ROOT / "src")):
                    res.setdefault((name, side), []).append(peak(src, args))
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"{'command':<16} {'side':<5} {'peak MB (median)':>17} {'seconds (median)':>17}")
    for (name, side), runs in res.items():
        print(f"{name:<16} {side:<5} {statistics.median(m for m, _ in runs):>17.0f} "
              f"{statistics.median(s for _, s in runs):>17.1f}")
    fit = {side: statistics.median(m for m, _ in res[("fit --forecast", side)]) for side in ("ref", "now")}
    print(f"ratio: {fit['ref'] / fit['now']:.3f}")


if __name__ == "__main__":
    t0 = time.time()
    main()
    print(f"({time.time() - t0:.0f} s)", file=sys.stderr)

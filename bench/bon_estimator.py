"""Vectorised unbiased best-of-n estimator against a straightforward per-n loop with exact binomials.

    python bench/bon_estimator.py [--prompts 1000] [--pool 12600] [--repeats 3]

Baseline: for each n, the weights C(i-1, n-1) / C(N, n) from exact Python integers (as public
reproductions compute them), then the weighted sum over each prompt's sorted pool.
overopt: one sort, log-space weights (lgamma) and one matrix product for every n.
Prints the medians of the repeats, the largest relative disagreement, and `ratio:` last.
"""
import argparse
import statistics
import time
from math import comb

import numpy as np

from overopt.measure.bon import best_of_n
from work import check


def baseline(proxy: np.ndarray, values: np.ndarray, ns) -> np.ndarray:
    N = proxy.shape[1]
    out = []
    for n in ns:
        total = comb(N, n)
        w = np.array([comb(i - 1, n - 1) / total for i in range(n, N + 1)])  # exact, then rounded once
        res = 0.0
        for p, v in zip(proxy, values):
            res += float(np.dot(v[np.argsort(p, kind="stable")][n - 1:], w))
        out.append(res / len(proxy))
    return np.array(out)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=1000)
    ap.add_argument("--pool", type=int, default=12600)
    ap.add_argument("--repeats", type=int, default=3)
    return ap


def grid(a) -> list[int]:
    return sorted({1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, a.pool})[:15]


def work(a) -> dict[str, tuple]:
    """Both sides estimate every n of one grid on the same [prompts, pool] arrays."""
    return {"prompts": (a.prompts, a.prompts), "pool N": (a.pool, a.pool), "values of n": (grid(a), grid(a))}


def main():
    a = parser().parse_args()
    check(work(a), "baseline")
    rng = np.random.default_rng(0)
    proxy = rng.normal(size=(a.prompts, a.pool))
    gold = 0.7 * proxy + rng.normal(size=proxy.shape)
    ns = grid(a)
    t_base, t_ours = [], []
    for _ in range(a.repeats):
        t = time.perf_counter(); want = baseline(proxy, gold, ns); t_base.append(time.perf_counter() - t)
        t = time.perf_counter(); got = best_of_n(proxy, gold, ns); t_ours.append(time.perf_counter() - t)
    rel = float(np.max(np.abs(got - want) / np.maximum(np.abs(want), 1e-300)))
    b, o = statistics.median(t_base), statistics.median(t_ours)
    print(f"prompts={a.prompts} N={a.pool} n values={len(ns)} repeats={a.repeats}")
    print(f"baseline per-n loop, exact binomials: median {b:.3f} s  ({', '.join(f'{x:.3f}' for x in t_base)})")
    print(f"overopt vectorised:                   median {o:.3f} s  ({', '.join(f'{x:.3f}' for x in t_ours)})")
    print(f"max relative disagreement: {rel:.2e} ({'ok' if rel <= 1e-9 else 'FAIL: above 1e-9'})")
    print(f"ratio: {b / o:.2f}")


if __name__ == "__main__":
    main()

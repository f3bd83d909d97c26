"""Independent pieces of a run (the proxies, the RL curves of a study) in forked worker processes, on a CPU.

    prefetch(run, [(key, lambda: run_curve(...)), ...], "rl", "rl curves")   # then the study's own loop

Small models use a CPU's cores poorly from one process: an RL step of the default 64x2 policy on two cores is
only 1.5x faster than on one (its matmuls have 64 columns, its attention 16-wide heads), so two processes of one
thread each get through 1.2x more steps than one process of two, and more on sampling and evaluation, where
Python overhead dominates. Each worker is a fork of the run (it shares the world, pi0 and the proxies without
copying them) that runs one job, writes the result into the cache and exits; the caller's own loop then reads
it from there. A job a worker could not finish is left to that loop, which runs it again in the main process
(resuming from the job's last checkpoint) and so raises its error there, with everything computed kept.

With J jobs and W workers, the first J - J mod W run in workers (W at a time, 1 thread each, or threads / W)
and the rest in the main process with every thread: a last job alone in a worker would leave a core idle.
Only where `fork` exists (Linux), on a CPU device, and never inside a worker.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import sys
from multiprocessing.connection import wait

import torch

_IN_WORKER = False


def n_workers(run, n_jobs: int) -> int:
    """How many worker processes ``n_jobs`` independent jobs get: run.workers (0: one per thread of the run),
    at most the jobs; 1 (none) on a GPU, without fork, or inside a worker."""
    if _IN_WORKER or run.device.type != "cpu" or "fork" not in mp.get_all_start_methods() or sys.platform != "linux":
        return 1
    w = run.cfg.run.workers or torch.get_num_threads()
    return max(1, min(w, n_jobs))


def in_workers(run, jobs: list, desc: str) -> int:
    """Run the first len(jobs) - len(jobs) mod W of ``jobs`` (callables that cache their own results) in W forked
    workers, W at a time; returns how many ran there. The caller runs every job afterwards, reading from the cache
    what a worker finished."""
    w = n_workers(run, len(jobs))
    if w < 2:
        return 0
    pending = list(range(len(jobs) - len(jobs) % w))
    n, threads, ctx = len(pending), max(1, torch.get_num_threads() // w), mp.get_context("fork")
    running = {}
    with run.bar(n, f"{desc} ({w} processes)") as bar:
        while pending or running:
            while pending and len(running) < w:
                p = ctx.Process(target=_work, args=(run, jobs[pending.pop(0)], threads), daemon=True)
                p.start()
                running[p.sentinel] = p
            for s in wait(list(running)):
                running.pop(s).join()  # a job that failed is run again by the caller
                bar.update(1)
    return n


def prefetch(run, jobs: list, kind: str, desc: str) -> None:
    """The jobs ((cache key, callable) pairs) whose ``kind`` artifact is not cached yet, in workers when there are
    several (the run's stage "<desc> in workers" counts them): the caller's loop over all of them then reads those
    from the cache and runs the rest."""
    todo = [job for key, job in jobs if not run.cache.readable(kind, key)]  # a garbled one is rebuilt there too
    if n_workers(run, len(todo)) > 1:
        with run.stage(f"{desc} in workers") as st:
            st["jobs"] = in_workers(run, todo, desc)


def _work(run, job, threads: int) -> None:
    """A worker: one job with ``threads`` threads and no progress bars; its exit status says whether it finished."""
    global _IN_WORKER
    _IN_WORKER = True
    torch.set_num_threads(threads)
    run.quiet = True
    try:
        job()
    except BaseException:  # the main process runs this job again and reports its error
        os._exit(1)
    os._exit(0)

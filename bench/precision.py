"""Would lower precision buy speed here? One RL step in bfloat16 autocast against the same step in float32.

    python bench/precision.py [--prompts 64] [--k 4] [--threads 1] [--repeats 5]

Both trainers start from the default preset's pi0 and run `RLTrainer.step` (RLOO, 4 epochs x 4 minibatches, as
the default run; named here) on the same prompts, interleaved; the bfloat16 one inside `torch.autocast` (matmuls and attention in
bfloat16, weights and Adam in float32: mixed precision as TRL's `bf16=True`). One thread by default, as each RL
curve runs in a one-thread worker on a CPU. Also prints the float32 and bfloat16 matmul rates of square products
(the default policy is 64 wide) and how far autocast moves the reference's log-probs of the same tokens. A change
of precision changes what is computed; this measures what it would buy, it is not an option of the run.
`ratio:` last is the float32 step's median time over the bfloat16 step's (> 1: bfloat16 is faster).
"""
import argparse
import copy
import statistics
import time

import numpy as np
import torch

from overopt.config import load_config
from overopt.models.policy import response_logprobs, sample
from overopt.optimizers.rl import RLSettings, RLTrainer
from overopt.pipeline.build import build_pi0, build_world
from overopt.pipeline.run import Run
from overopt.world.toy import EOS, PAD
from work import check


def matmul_rate(n: int, dtype, repeats: int = 21) -> float:
    """GFLOP/s of an n x n by n x n product in ``dtype`` (median of ``repeats``)."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        ts.append(time.perf_counter() - t)
    return 2 * n ** 3 / statistics.median(ts) / 1e9


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    return ap


def settings(a) -> RLSettings:
    """One settings object for both trainers: only the precision differs."""
    return RLSettings(algo="rloo", k=a.k, lr=5e-5, kl_coef=0.05, kl_target=0.0, epochs=4, minibatches=4, clip=0.2,
                      max_new_tokens=40, max_grad_norm=1.0)


def work(a) -> dict[str, tuple]:
    s32, s16 = settings(a), settings(a)
    return {"prompts x samples": (a.prompts * s32.k, a.prompts * s16.k),
            "updates per rollout": (s32.epochs * s32.minibatches, s16.epochs * s16.minibatches),
            "max new tokens": (s32.max_new_tokens, s16.max_new_tokens)}


def main():
    a = parser().parse_args()
    check(work(a), "bfloat16")
    torch.set_num_threads(a.threads)
    run = Run(load_config("default"), "/tmp/overopt-bench", quiet=True)
    world = build_world(run)
    pi0 = build_pi0(run, world).cpu()
    prompts = torch.tensor(world.prompt_ids[np.random.default_rng(0).choice(world.train_prompt_idx, a.prompts)])
    reward = lambda p, r: (r == EOS).float().sum(1)  # noqa: E731  (trivial: measure the trainer, not the reward)
    trainers = {name: RLTrainer(copy.deepcopy(pi0), pi0, reward, settings(a), PAD, EOS, seed=0)
                for name in ("float32", "bfloat16")}

    def step(name: str) -> float:
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=name == "bfloat16"):
            trainers[name].step(prompts)
        return time.perf_counter() - t

    times = {name: [] for name in trainers}
    for name in trainers:
        step(name)  # warm-up
    for _ in range(a.repeats):
        for name in trainers:
            times[name].append(step(name))
    with torch.no_grad():
        batch = prompts.repeat_interleave(a.k, 0)
        tokens = sample(pi0, batch, 40, EOS, PAD, generator=torch.Generator().manual_seed(0)).tokens
        lp32 = response_logprobs(pi0, batch, tokens, PAD, eos_id=EOS).sum(1)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            lp16 = response_logprobs(pi0, batch, tokens, PAD, eos_id=EOS).float().sum(1)
    print(f"RLTrainer.step (RLOO, epochs {settings(a).epochs} x minibatches {settings(a).minibatches}), {a.prompts} prompts "
          f"x {a.k} samples, threads {torch.get_num_threads()}")
    for name, ts in times.items():
        print(f"{name:9s} median {statistics.median(ts) * 1000:7.1f} ms  ({', '.join(f'{x * 1000:.0f}' for x in ts)})")
    print(f"sequence log-prob under pi0, bfloat16 autocast minus float32: median |diff| "
          f"{float((lp16 - lp32).abs().median()):.3f} nats, max {float((lp16 - lp32).abs().max()):.3f}")
    for n in (64, 128, 256, 1024):
        print(f"matmul {n:4d}: float32 {matmul_rate(n, torch.float32):6.1f} GFLOP/s  "
              f"bfloat16 {matmul_rate(n, torch.bfloat16):6.1f} GFLOP/s")
    print(f"ratio: {statistics.median(times['float32']) / statistics.median(times['bfloat16']):.2f}")


if __name__ == "__main__":
    main()

"""overopt's RL step against the raw work it must do: sampling plus forward/backward passes of the same shapes.

    python bench/rl_overhead.py [--prompts 64] [--k 4] [--new-tokens 40] [--repeats 7]

Raw = one KV-cached sampling of the batch + a no-grad forward of the reference over the sampled
sequences + one forward/backward/Adam step of the policy on them: the least work an RL step needs. overopt = one
`RLTrainer.step` (RLOO, KL penalty 0.05, one update on the whole batch: rl.epochs = rl.minibatches = 1, named
here) on the same prompts, with a Python-free reward so the comparison isolates the trainer. Prints medians, `overhead:` (step / raw; target <= 1.5) and
`ratio:` last (raw / step, so higher is better and >= 0.67 meets the target).
"""
import argparse
import statistics
import time

import numpy as np
import torch

from overopt.config import load_config
from overopt.pipeline.run import Run
from overopt.pipeline.build import build_pi0, build_world
from overopt.models.policy import response_logits, sample
from overopt.optimizers.rl import RLSettings, RLTrainer
from overopt.world.toy import EOS, PAD
from work import check

RAW_UPDATES = 1  # the raw side: one forward/backward/Adam step of the policy per batch


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--new-tokens", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=7)
    return ap


def ours_settings(a) -> RLSettings:
    return RLSettings(algo="rloo", k=a.k, lr=1e-6, kl_coef=0.05, kl_target=0.0, epochs=1, minibatches=1, clip=0.2,
                      max_new_tokens=a.new_tokens, max_grad_norm=1.0)


def work(a) -> dict[str, tuple]:
    o = ours_settings(a)
    return {"sequences sampled": (a.prompts * o.k, a.prompts * a.k), "max new tokens": (o.max_new_tokens, a.new_tokens),
            "policy updates": (o.epochs * o.minibatches, RAW_UPDATES)}


def main():
    a = parser().parse_args()
    check(work(a), "raw")
    run = Run(load_config("default"), "/tmp/overopt-bench", quiet=True)
    world = build_world(run)
    policy, ref = build_pi0(run, world).cpu(), build_pi0(run, world).cpu()
    rng = np.random.default_rng(0)
    prompts = torch.tensor(world.prompt_ids[rng.choice(world.train_prompt_idx, a.prompts)])
    reward = lambda p, r: (r == EOS).float().sum(1)  # noqa: E731  (trivial: measure the trainer, not the reward)
    tr = RLTrainer(policy, ref, reward, ours_settings(a), PAD, EOS, seed=0)
    opt = torch.optim.Adam(policy.parameters(), lr=1e-6)
    batch = prompts.repeat_interleave(a.k, 0)

    def raw(seed):
        t = time.perf_counter()
        with torch.no_grad():
            s = sample(policy, batch, a.new_tokens, EOS, PAD, generator=torch.Generator().manual_seed(seed))
            response_logits(ref, batch, s.tokens, PAD, eos_id=EOS)
        logits = response_logits(policy, batch, s.tokens, PAD, eos_id=EOS)
        loss = logits.log_softmax(-1).gather(-1, s.tokens[..., None]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return time.perf_counter() - t

    def step(_):
        t = time.perf_counter()
        tr.step(prompts)
        return time.perf_counter() - t

    raw(0), step(0)
    r_raw, r_step = [], []
    for i in range(a.repeats):
        r_raw.append(raw(i + 1))
        r_step.append(step(i + 1))
    b, o = statistics.median(r_raw), statistics.median(r_step)
    print(f"batch {a.prompts} prompts x {a.k} samples x <= {a.new_tokens} new tokens; threads {torch.get_num_threads()}")
    print(f"raw sampling + forward/backward: median {b * 1000:.1f} ms  ({', '.join(f'{x * 1000:.0f}' for x in r_raw)})")
    print(f"overopt RLTrainer.step:          median {o * 1000:.1f} ms  ({', '.join(f'{x * 1000:.0f}' for x in r_step)})")
    print(f"overhead: {o / b:.2f}")
    print(f"ratio: {b / o:.2f}")


if __name__ == "__main__":
    main()

"""Throughput and peak memory of a preset's models (default: the gpu preset) on this machine's device.

    python bench/throughput.py [--preset gpu] [--batch 0] [--repeats 3] [--device auto]

Builds pi0 and the largest proxy at the preset's sizes (random weights: speed does not depend on training),
then times, as medians of the repeats:
  sampling    pi0 responses of world.max_new_tokens (samples/s, generated tokens/s), overopt's sampler and
              `model.generate` on the same batch (the baseline of `ratio:`)
  scoring     the largest proxy on those responses (sequences/s)
  rl step     one RLOO step of rl.prompts_per_step x rl.k samples with rl.epochs x rl.minibatches updates
              against the largest proxy (samples/s)
and the peak memory (CUDA: max allocated; CPU: peak RSS). Prints a markdown row for docs/BENCHMARKS.md, then
`ratio:` (overopt's sampler over `generate`, tokens per second).
"""
import argparse
import resource
import statistics
import time

import torch

from overopt.config import load_config, parse_size
from overopt.models.policy import build_lm, sample
from overopt.models.reward import build_rm, score
from overopt.optimizers.rl import RLSettings, RLTrainer
from overopt.world.toy import EOS, PAD
from work import GENERATE, check, sampler_work

VOCAB, PROMPT_LEN = 512, 12


def timed(fn, repeats, sync):
    out, times = fn(), []  # warm-up: allocator, kernels, caches
    for _ in range(repeats):
        sync()
        t = time.perf_counter()
        out = fn()
        sync()
        times.append(time.perf_counter() - t)
    return out, statistics.median(times)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="gpu")
    ap.add_argument("--batch", type=int, default=0, help="sampling batch (default: the preset's policy.sample_batch)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="auto")
    return ap


def rl_step_settings(cfg) -> RLSettings:
    """The preset's RL step, every field named (the timed step is the preset's, whatever the code's defaults)."""
    r = cfg.rl
    return RLSettings(algo=r.algo, k=r.k, lr=r.lr, kl_coef=r.kl_coef, kl_target=r.kl_target, kl_horizon=r.kl_horizon,
                      epochs=r.epochs, minibatches=r.minibatches, clip=0.2, max_new_tokens=cfg.world.max_new_tokens,
                      max_grad_norm=1.0)


def work(a) -> dict[str, tuple]:
    """The ratio's two sides: overopt's sampler and `model.generate` on the preset's batch and response length."""
    cfg = load_config(a.preset)
    return sampler_work(a.batch or cfg.policy.sample_batch, cfg.world.max_new_tokens)


def main():
    a = parser().parse_args()
    check(work(a), "generate")
    cfg = load_config(a.preset)
    dev = torch.device("cuda" if a.device == "cuda" or (a.device == "auto" and torch.cuda.is_available()) else "cpu")
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    T, p = cfg.world.max_new_tokens, cfg.policy
    pi0 = build_lm(VOCAB, p.hidden, p.layers, p.heads, PROMPT_LEN + T + 1, 0).to(dev).eval()
    hidden, layers = max((parse_size(s) for s in cfg.rm.sizes), key=lambda s: s[0] * s[0] * s[1])
    rm = build_rm(VOCAB, hidden, layers, PROMPT_LEN + T + 1, 1).to(dev).eval()
    B = a.batch or p.sample_batch
    prompts = torch.randint(3, VOCAB, (B, PROMPT_LEN), device=dev)
    g = torch.Generator(device=dev).manual_seed(0)

    s, t_ours = timed(lambda: sample(pi0, prompts, T, EOS, PAD, generator=g), a.repeats, sync)
    n_tok = int((s.tokens != PAD).sum())

    def generate():
        with torch.inference_mode():
            return pi0.generate(prompts, attention_mask=torch.ones_like(prompts), max_new_tokens=T, **GENERATE)
    gen, t_gen = timed(generate, a.repeats, sync)
    gen_resp = gen[:, PROMPT_LEN:]
    n_gen = int(((gen_resp != PAD).cumsum(1) > 0).sum()) if gen_resp.numel() else 0
    _, t_score = timed(lambda: score(rm, prompts, s.tokens, PAD), a.repeats, sync)

    r = cfg.rl
    trainer = RLTrainer(pi0, build_lm(VOCAB, p.hidden, p.layers, p.heads, PROMPT_LEN + T + 1, 0).to(dev).eval(),
                        lambda pr, resp: score(rm, pr, resp, PAD), rl_step_settings(cfg), PAD, EOS, seed=0)
    rl_prompts = prompts[: r.prompts_per_step]
    trainer.step(rl_prompts)  # warm-up (allocator, kernels)
    _, t_rl = timed(lambda: trainer.step(rl_prompts), a.repeats, sync)
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2 ** 30
        name = torch.cuda.get_device_name()
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
        name = f"CPU x{torch.get_num_threads()} threads"
    print(f"device: {name}; preset {a.preset}: pi0 {p.hidden}x{p.layers}, largest proxy {hidden}x{layers}, "
          f"batch {B}, {T} new tokens")
    print(f"sampling: {B / t_ours:,.0f} samples/s, {n_tok / t_ours:,.0f} tokens/s (generate: {n_gen / t_gen:,.0f} "
          f"tokens/s)")
    print(f"scoring: {B / t_score:,.0f} sequences/s; rl step: {r.prompts_per_step * r.k / t_rl:,.0f} samples/s "
          f"({t_rl:.2f} s/step); peak memory {peak:.2f} GiB")
    print(f"| {time.strftime('%Y-%m-%d')} | {name} | {a.preset} | {B / t_ours:,.0f} | {n_tok / t_ours:,.0f} | "
          f"{B / t_score:,.0f} | {r.prompts_per_step * r.k / t_rl:,.0f} | {peak:.2f} |")
    print(f"ratio: {(n_tok / t_ours) / max(n_gen / t_gen, 1e-9):.3f}")


if __name__ == "__main__":
    main()

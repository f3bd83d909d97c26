"""overopt's KV-cached sampler against `model.generate` on the same model, batch and settings.

    python bench/sampling.py [--batch 1024] [--new-tokens 40] [--repeats 5]

The model is the default preset's pi0 (trained once and cached, as `overopt run` does), so
responses end at the end token the way real samples do. Both sample at temperature 1 with no
top-k or top-p truncation and stop rows at the end token. Prints tokens per second (medians of
the repeats, generated tokens only, up to and including the end token) and `ratio:` last.
"""
import argparse
import statistics
import time

import numpy as np
import torch

from overopt.config import load_config
from overopt.pipeline.run import Run
from overopt.pipeline.build import build_pi0, build_world
from overopt.models.policy import sample
from overopt.world.toy import EOS, PAD
from work import GENERATE, check, sampler_work


def count_tokens(tokens: torch.Tensor) -> int:
    """Generated tokens up to and including the first end token of each row."""
    is_eos = tokens == EOS
    ends = torch.where(is_eos.any(1), is_eos.float().argmax(1) + 1, torch.full((len(tokens),), tokens.shape[1]))
    return int(ends.sum())


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--new-tokens", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0)
    return ap


def work(a) -> dict[str, tuple]:
    return sampler_work(a.batch, a.new_tokens)


def main():
    a = parser().parse_args()
    check(work(a), "generate")
    if a.threads:
        torch.set_num_threads(a.threads)
    run = Run(load_config("default"), "/tmp/overopt-bench", quiet=True)
    world = build_world(run)
    model = build_pi0(run, world).cpu()
    rng = np.random.default_rng(0)
    prompts = torch.tensor(world.prompt_ids[rng.choice(world.eval_prompt_idx, a.batch)])
    model.generation_config.top_k = None  # generate() defaults to top-k 50: sample the full distribution

    def ours(seed):
        s = sample(model, prompts, a.new_tokens, EOS, PAD, generator=torch.Generator().manual_seed(seed))
        return count_tokens(s.tokens)

    def hf(seed):
        torch.manual_seed(seed)
        with torch.no_grad():
            out = model.generate(prompts, attention_mask=torch.ones_like(prompts), max_new_tokens=a.new_tokens,
                                 **GENERATE)
        return count_tokens(out[:, prompts.shape[1]:])

    ours(0), hf(0)  # warm-up
    r_ours, r_hf = [], []
    for i in range(a.repeats):  # interleaved, so both see the same machine load
        t = time.perf_counter(); n = hf(i + 1); r_hf.append(n / (time.perf_counter() - t))
        t = time.perf_counter(); n = ours(i + 1); r_ours.append(n / (time.perf_counter() - t))
    o, h = statistics.median(r_ours), statistics.median(r_hf)
    print(f"model: pi0 GPT-NeoX, {sum(p.numel() for p in model.parameters()):,} params; batch {a.batch}; "
          f"max new tokens {a.new_tokens}; threads {torch.get_num_threads()}")
    print(f"model.generate:  median {h:,.0f} tokens/s  ({', '.join(f'{x:,.0f}' for x in r_hf)})")
    print(f"overopt.sample:  median {o:,.0f} tokens/s  ({', '.join(f'{x:,.0f}' for x in r_ours)})")
    print(f"ratio: {o / h:.2f}")


if __name__ == "__main__":
    main()

"""overopt's RLOO step against TRL's RLOOTrainer: same tiny policy, Python reward and batch shape.

    python bench/rl_step.py [--prompts 16] [--k 4] [--new-tokens 40] [--steps 8] [--repeats 7] [--lr 1e-4]

The policy is the default preset's pi0 (cached as `overopt run` builds it), saved as a Hugging Face
checkpoint with the world's tokenizer so TRL loads it like any model. The reward is one Python
function of the completion text (distinct positive words minus negative ones), called by both.
Each step is one rollout of --prompts x --k samples at temperature 1 without truncation, a fixed KL
penalty of 0.05 per sequence in the reward (the sampled log-ratio, as both compute it), a leave-one-out
baseline and one clipped update on the whole batch (overopt: rl.epochs = rl.minibatches = 1; TRL:
num_iterations = steps_per_generation = 1), at the same learning rate and gradient clip. Both sides'
settings are named here, not taken from defaults (`work`, checked before timing and by tests/test_bench.py).
Prints steps per second (medians of the repeats, each over --steps steps) and `ratio:` last (overopt over TRL).
"""
import argparse
import logging
import os
import statistics
import tempfile
import time
import warnings

import numpy as np
import torch

from overopt.config import load_config
from overopt.pipeline.run import Run
from overopt.pipeline.build import build_pi0, build_world
from overopt.optimizers.rl import RLSettings, RLTrainer
from overopt.world.toy import EOS, NEGATIVE, PAD, POSITIVE
from work import check

KL_COEF, CLIP, GRAD_CLIP = 0.05, 0.2, 1.0


def text_reward(text: str) -> float:
    words = text.split()
    return float(len(POSITIVE.intersection(words)) - len(NEGATIVE.intersection(words)))


def step_options(ap: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The batch, lengths, repeats and rate every TRL step bench names (this one and bench/grpo.py)."""
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--new-tokens", type=int, default=40)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--lr", type=float, default=1e-4,
                    help="both trainers' learning rate; 0 keeps both sampling pi0's lengths for every step")
    return ap


def parser() -> argparse.ArgumentParser:
    return step_options(argparse.ArgumentParser(description=__doc__.splitlines()[0]))


def ours_settings(a) -> RLSettings:
    """overopt's side, every field that shapes a step named (lr 0 is a tiny rate: Adam refuses 0)."""
    return RLSettings(algo="rloo", k=a.k, lr=a.lr or 1e-30, kl_coef=KL_COEF, kl_target=0.0, epochs=1, minibatches=1,
                      clip=CLIP, max_new_tokens=a.new_tokens, max_grad_norm=GRAD_CLIP)


def trl_config(a, seed: int = 0):
    """TRL's side: one generation batch of --prompts x --k completions per optimizer step, used once."""
    from trl import RLOOConfig
    return RLOOConfig(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=a.prompts * a.k,
                      gradient_accumulation_steps=1, steps_per_generation=1, num_iterations=1, num_generations=a.k,
                      max_completion_length=a.new_tokens, beta=KL_COEF, epsilon=CLIP, max_grad_norm=GRAD_CLIP,
                      normalize_advantages=False, learning_rate=a.lr, max_steps=a.steps, logging_steps=10 ** 6,
                      save_strategy="no", report_to=[], use_cpu=True, seed=seed, temperature=1.0, top_k=0, top_p=1.0,
                      disable_tqdm=True, bf16=False)


def work(a) -> dict[str, tuple]:
    """What one step of each side does, read off the two settings objects."""
    o, t = ours_settings(a), trl_config(a)
    updates = t.num_iterations * t.steps_per_generation // t.gradient_accumulation_steps
    return {"prompts per rollout": (a.prompts, t.per_device_train_batch_size * t.steps_per_generation // t.num_generations),
            "samples per prompt": (o.k, t.num_generations),
            "updates per rollout": (o.epochs * o.minibatches, updates),
            "max new tokens": (o.max_new_tokens, t.max_completion_length),
            "KL penalty in reward": (o.kl_coef, t.beta),
            "adaptive KL": (bool(o.kl_target), False),
            "clip low/high": ((o.clip, o.clip), (t.epsilon, t.epsilon_high or t.epsilon)),
            "advantage whitening": (False, t.normalize_advantages),
            "learning rate": (o.lr if a.lr else 0.0, t.learning_rate),
            "gradient clip": (o.max_grad_norm, t.max_grad_norm),
            "temperature/top-k/top-p": ((1.0, 0, 1.0), (t.temperature, t.top_k, t.top_p))}


def race(a, pairs: dict, name: str, trainer: str, trl_config, ours_settings, detail: str = "") -> None:
    """Time ``trl.<trainer>`` (from ``trl_config(a, seed)``) against `RLTrainer` (``ours_settings(a)``) on the
    default pi0, the same prompts and `text_reward`, after checking the work table ``pairs``; print steps per second
    (medians of --repeats, each over --steps steps, interleaved after one warm-up each) and `ratio:` last."""
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    os.environ.setdefault("WANDB_DISABLED", "true")
    check(pairs, f"TRL {name}")
    import trl
    from datasets import Dataset

    run = Run(load_config("default"), "/tmp/overopt-bench", quiet=True)
    world = build_world(run)
    pi0 = build_pi0(run, world).cpu()
    tok = world.tokenizer()
    tmp = tempfile.mkdtemp()
    pi0.generation_config.top_k = None
    pi0.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    rng = np.random.default_rng(0)
    pidx = rng.choice(world.train_prompt_idx, a.prompts * a.steps * (a.repeats + 1))
    prompt_text = [world.prompt_text(i) for i in pidx]

    def trl_reward(prompts, completions, **kw):
        return [text_reward(c) for c in completions]

    def ours_reward(prompts, responses):
        return [text_reward(world.decode(r)) for r in responses.tolist()]

    def trl_run(seed):
        from transformers import AutoModelForCausalLM
        model = AutoModelForCausalLM.from_pretrained(tmp)
        ds = Dataset.from_dict({"prompt": prompt_text[: a.prompts * a.steps]})  # one pass: --steps batches
        tr = getattr(trl, trainer)(model=model, reward_funcs=trl_reward, args=trl_config(a, seed), train_dataset=ds,
                                   processing_class=tok)
        t = time.perf_counter()
        tr.train()
        return a.steps / (time.perf_counter() - t)

    def ours_run(seed):
        policy = build_pi0(run, world).cpu()
        ref = build_pi0(run, world).cpu()
        tr = RLTrainer(policy, ref, ours_reward, ours_settings(a), PAD, EOS, seed=seed)
        prompts = torch.tensor(world.prompt_ids[pidx])
        t = time.perf_counter()
        for i in range(a.steps):
            tr.step(prompts[i * a.prompts:(i + 1) * a.prompts])
        return a.steps / (time.perf_counter() - t)

    trl_run(0), ours_run(0)  # warm-up
    r_trl, r_ours = [], []
    for i in range(a.repeats):
        r_trl.append(trl_run(i + 1))
        r_ours.append(ours_run(i + 1))
    o, b = statistics.median(r_ours), statistics.median(r_trl)
    print(f"policy: pi0 GPT-NeoX {sum(p.numel() for p in pi0.parameters()):,} params; batch {a.prompts} prompts x "
          f"{a.k} samples x <= {a.new_tokens} new tokens; {a.steps} steps per repeat; lr {a.lr:g}; {detail}"
          f"threads {torch.get_num_threads()}")
    print(f"TRL {trainer}: median {b:.3f} steps/s  ({', '.join(f'{x:.3f}' for x in r_trl)})")
    print(f"overopt {name}: median {o:.3f} steps/s  ({', '.join(f'{x:.3f}' for x in r_ours)})")
    print(f"ratio: {o / b:.2f}")


def main():
    a = parser().parse_args()
    race(a, work(a), "RLOO", "RLOOTrainer", trl_config, ours_settings)


if __name__ == "__main__":
    main()

"""overopt's GRPO step against TRL's GRPOTrainer: same tiny policy, Python reward, batch shape and loss.

    python bench/grpo.py [--prompts 16] [--k 4] [--new-tokens 40] [--steps 8] [--repeats 7] [--lr 1e-4]
                         [--loss-type dapo] [--scale-rewards group] [--beta 0] [--updates 1]

The policy is the default preset's pi0 (cached as `overopt run` builds it), saved as a Hugging Face
checkpoint with the world's tokenizer so TRL loads it like any model. The reward is one Python
function of the completion text (distinct positive words minus negative ones), called by both.
Each step is one generation batch of --prompts x --k completions at temperature 1 without truncation, group-relative
advantages (--scale-rewards), the clipped per-token ratio, the KL term at --beta, --loss-type's aggregation, and
--updates optimizer steps on it (overopt: rl.epochs = 1, rl.minibatches = --updates; TRL: num_iterations = 1,
steps_per_generation = --updates, gradient_accumulation_steps = 1), at the same learning rate and gradient clip.
overopt also computes the reference's log-probs at beta 0 (its training statistics report a KL); TRL loads no
reference then. Both sides' settings are named here, not taken from defaults (`work`, checked before timing and by
tests/test_bench.py). Prints steps per second (medians of the repeats, each over --steps steps) and `ratio:` last
(overopt over TRL).
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
from overopt.optimizers.grpo import GRPOSettings
from overopt.optimizers.rl import RLSettings, RLTrainer
from overopt.world.toy import EOS, NEGATIVE, PAD, POSITIVE
from work import check

CLIP, GRAD_CLIP = 0.2, 1.0


def text_reward(text: str) -> float:
    words = text.split()
    return float(len(POSITIVE.intersection(words)) - len(NEGATIVE.intersection(words)))


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--new-tokens", type=int, default=40)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--lr", type=float, default=1e-4,
                    help="both trainers' learning rate; 0 keeps both sampling pi0's lengths for every step")
    ap.add_argument("--loss-type", default="dapo", choices=["grpo", "bnpo", "dapo", "dr_grpo"])
    ap.add_argument("--scale-rewards", default="group", choices=["group", "batch", "none"])
    ap.add_argument("--beta", type=float, default=0.0, help="the KL term's coefficient in the loss")
    ap.add_argument("--updates", type=int, default=1, help="optimizer steps per generation batch")
    return ap


def ours_settings(a) -> RLSettings:
    """overopt's side, every field that shapes a step named (lr 0 is a tiny rate: Adam refuses 0)."""
    return RLSettings(algo="grpo", k=a.k, lr=a.lr or 1e-30, kl_coef=0.0, kl_target=0.0, epochs=1,
                      minibatches=a.updates, max_new_tokens=a.new_tokens, max_grad_norm=GRAD_CLIP,
                      grpo=GRPOSettings(beta=a.beta, scale_rewards=a.scale_rewards, loss_type=a.loss_type, epsilon=CLIP,
                                        epsilon_high=CLIP, importance_sampling_level="token",
                                        use_bias_correction_kl=True))


def trl_config(a, seed: int = 0):
    """TRL's side: one generation batch of --prompts x --k completions, split into --updates optimizer steps."""
    from trl import GRPOConfig
    return GRPOConfig(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=a.prompts * a.k // a.updates,
                      gradient_accumulation_steps=1, steps_per_generation=a.updates, num_iterations=1,
                      num_generations=a.k, max_completion_length=a.new_tokens, beta=a.beta, loss_type=a.loss_type,
                      scale_rewards=a.scale_rewards, epsilon=CLIP, epsilon_high=CLIP, importance_sampling_level="token",
                      use_bias_correction_kl=True, max_grad_norm=GRAD_CLIP, learning_rate=a.lr,
                      max_steps=a.steps * a.updates, logging_steps=10 ** 6, save_strategy="no", report_to=[],
                      use_cpu=True, seed=seed, temperature=1.0, top_k=0, top_p=1.0, disable_tqdm=True, bf16=False)


def work(a) -> dict[str, tuple]:
    """What one generation batch of each side does, read off the two settings objects."""
    o, t = ours_settings(a), trl_config(a)
    g = o.grpo
    return {"prompts per generation batch": (a.prompts, t.per_device_train_batch_size * t.steps_per_generation
                                             // t.num_generations),
            "completions per prompt (group)": (o.k, t.num_generations),
            "optimizer steps per generation batch": (o.epochs * o.minibatches,
                                                     t.num_iterations * t.steps_per_generation
                                                     // t.gradient_accumulation_steps),
            "max new tokens": (o.max_new_tokens, t.max_completion_length),
            "loss type": (g.loss_type, t.loss_type),
            "advantage scaling": (g.scale_rewards, t.scale_rewards),
            "KL term in the loss (beta)": (g.beta, t.beta),
            "KL bias correction": (g.use_bias_correction_kl, t.use_bias_correction_kl),
            "KL penalty in the reward": (o.kl_coef, 0.0),
            "clip low/high": ((g.epsilon, g.upper), (t.epsilon, t.epsilon_high or t.epsilon)),
            "importance ratio": (g.importance_sampling_level, t.importance_sampling_level),
            "learning rate": (o.lr if a.lr else 0.0, t.learning_rate),
            "gradient clip": (o.max_grad_norm, t.max_grad_norm),
            "temperature/top-k/top-p": ((1.0, 0, 1.0), (t.temperature, t.top_k, t.top_p))}


def main():
    a = parser().parse_args()
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    os.environ.setdefault("WANDB_DISABLED", "true")
    check(work(a), "TRL GRPO")
    from datasets import Dataset
    from trl import GRPOTrainer

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
        args = trl_config(a, seed)
        ds = Dataset.from_dict({"prompt": prompt_text[: a.prompts * a.steps]})  # one pass: a.steps batches
        tr = GRPOTrainer(model=model, reward_funcs=trl_reward, args=args, train_dataset=ds, processing_class=tok)
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
          f"{a.k} samples x <= {a.new_tokens} new tokens; {a.steps} steps per repeat; lr {a.lr:g}; loss "
          f"{a.loss_type}, scaling {a.scale_rewards}, beta {a.beta:g}, {a.updates} update(s) per batch; "
          f"threads {torch.get_num_threads()}")
    print(f"TRL GRPOTrainer: median {b:.3f} steps/s  ({', '.join(f'{x:.3f}' for x in r_trl)})")
    print(f"overopt GRPO:    median {o:.3f} steps/s  ({', '.join(f'{x:.3f}' for x in r_ours)})")
    print(f"ratio: {o / b:.2f}")


if __name__ == "__main__":
    main()

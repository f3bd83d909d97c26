"""overopt's GRPO step against TRL's GRPOTrainer: same tiny policy, Python reward, batch shape and loss.

    python bench/grpo.py [--prompts 16] [--k 4] [--new-tokens 40] [--steps 8] [--repeats 7] [--lr 1e-4]
                         [--loss-type dapo] [--scale-rewards group] [--beta 0] [--updates 1]

The policy, prompts, reward and timing are bench/rl_step.py's (`race`): the default preset's pi0 saved as a Hugging
Face checkpoint, one Python function of the completion text as the reward, called by both.
Each step is one generation batch of --prompts x --k completions at temperature 1 without truncation, group-relative
advantages (--scale-rewards), the clipped per-token ratio, the KL term at --beta, --loss-type's aggregation, and
--updates optimizer steps on it (overopt: rl.epochs = 1, rl.minibatches = --updates; TRL: num_iterations = 1,
steps_per_generation = --updates, gradient_accumulation_steps = 1), at the same learning rate and gradient clip.
At beta 0 neither side runs the reference model. Both sides' settings are named here, not taken from defaults
(`work`, checked before timing and by tests/test_bench.py). Prints steps per second (medians of the repeats, each over
--steps steps) and `ratio:` last (overopt over TRL).
"""
import argparse
import tempfile

from overopt.optimizers.grpo import GRPOSettings
from overopt.optimizers.rl import RLSettings
from rl_step import race, step_options

CLIP, GRAD_CLIP = 0.2, 1.0


def parser() -> argparse.ArgumentParser:
    ap = step_options(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
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
    race(a, work(a), "GRPO", "GRPOTrainer", trl_config, ours_settings,
         f"loss {a.loss_type}, scaling {a.scale_rewards}, beta {a.beta:g}, {a.updates} update(s) per batch; ")


if __name__ == "__main__":
    main()

"""overopt's direct-alignment sweep against the same runs done one by one with TRL's DPOTrainer.

    python bench/daa_sweep.py [--preset smoke] [--repeats 3]

The sweep is the preset's daa.betas x {DPO, IPO, SLiC} on its pi0 and gold-labelled pairs (daa.n_pairs,
daa.batch_size, daa.epochs, daa.lr, RMSprop). TRL: one `DPOTrainer` per run with
`precompute_ref_log_probs=True` and loss types sigmoid / ipo / hinge (its IPO averages log-ratios per
token, so overopt's IPO runs with ipo_length_norm here). overopt: reference log-probs once for the
sweep, then one `DAATrainer` per run. Neither evaluates during training. Both sides name every setting that shapes
a step (constant rate after one warm-up step, gradient clip 10; `work`, checked before timing and by
tests/test_bench.py). Prints the sweep wall times
(medians of the repeats), the per-step times, and `ratio:` last (TRL's sweep time over overopt's).
"""
import argparse
import copy
import logging
import os
import statistics
import tempfile
import time
import warnings

import numpy as np
import torch

from overopt.config import load_config
from overopt.optimizers.daa import DAASettings, DAATrainer, PreferenceData, reference_logps
from overopt.pipeline.run import Run
from overopt.pipeline.build import build_pairs, build_pi0, build_world, labelled_pairs
from overopt.world.toy import EOS, PAD
from work import check

LOSSES = {"dpo": "sigmoid", "ipo": "ipo", "slic": "hinge"}
GRAD_CLIP = 10.0


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="smoke")
    ap.add_argument("--repeats", type=int, default=3)
    return ap


def ours_settings(d, loss: str, beta: float) -> DAASettings:
    return DAASettings(loss=loss, beta=beta, alpha=0.0, lr=d.lr, optimizer="rmsprop", batch_size=d.batch_size,
                       epochs=d.epochs, warmup=1, max_grad_norm=GRAD_CLIP, ipo_length_norm=loss == "ipo")


def trl_config(d, loss: str, beta: float):
    from trl import DPOConfig
    return DPOConfig(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=d.batch_size, num_train_epochs=d.epochs,
                     learning_rate=d.lr, optim="rmsprop", loss_type=[LOSSES[loss]], beta=beta,
                     precompute_ref_log_probs=True, report_to=[], use_cpu=True, save_strategy="no",
                     logging_steps=10 ** 6, disable_tqdm=True, max_length=None, lr_scheduler_type="constant",
                     warmup_steps=0, max_grad_norm=GRAD_CLIP, gradient_accumulation_steps=1, seed=0)


def work(a) -> dict[str, tuple]:
    """One run of the sweep per side (the first loss at the first beta; the others differ only in those two)."""
    d = load_config(a.preset).daa
    loss, beta = next(iter(LOSSES)), float(d.betas[0])
    o, t = ours_settings(d, loss, beta), trl_config(d, loss, beta)
    return {"pairs per step": (o.batch_size, t.per_device_train_batch_size * t.gradient_accumulation_steps),
            "epochs": (o.epochs, t.num_train_epochs), "loss": (LOSSES[o.loss], t.loss_type[0]), "beta": (o.beta, t.beta),
            "optimizer": (o.optimizer, getattr(t.optim, "value", t.optim)), "learning rate": (o.lr, t.learning_rate),
            "warm-up steps, then constant": (o.warmup - 1, t.warmup_steps if t.lr_scheduler_type == "constant" else -1),
            "gradient clip": (o.max_grad_norm, t.max_grad_norm),
            "reference log-probs precomputed": (True, t.precompute_ref_log_probs)}


def main():
    a = parser().parse_args()
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    os.environ.setdefault("WANDB_DISABLED", "true")
    check(work(a), "TRL DPO")
    print("the one difference measured: overopt computes the reference log-probs once for the sweep, TRL once per run")
    from datasets import Dataset
    from trl import DPOTrainer

    cfg = load_config(a.preset)
    d = cfg.daa
    run = Run(cfg, tempfile.mkdtemp(), quiet=True)
    world = build_world(run)
    pi0 = build_pi0(run, world).cpu()
    train, _, _ = labelled_pairs(run, world, build_pairs(run, world, pi0))
    train = train.head(min(d.n_pairs, len(train)))
    t = lambda x: torch.tensor(np.asarray(x, dtype=np.int64))  # noqa: E731
    prompts, chosen, rejected = t(world.prompt_ids[train.prompt_idx]), t(train.chosen), t(train.rejected)
    tok = world.tokenizer()
    tmp = tempfile.mkdtemp()
    pi0.generation_config.top_k = None
    pi0.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    ds = Dataset.from_dict({"prompt": [world.prompt_text(i) for i in train.prompt_idx],
                            "chosen": [world.decode(r.tolist()) for r in train.chosen],
                            "rejected": [world.decode(r.tolist()) for r in train.rejected]})
    runs = [(loss, float(beta)) for beta in d.betas for loss in LOSSES]
    steps_per_run = -(-len(train) // d.batch_size) * d.epochs

    def trl_sweep():
        from transformers import AutoModelForCausalLM
        t0, train_s = time.perf_counter(), 0.0
        for loss, beta in runs:
            model = AutoModelForCausalLM.from_pretrained(tmp)
            tr = DPOTrainer(model=model, args=trl_config(d, loss, beta), train_dataset=ds, processing_class=tok)
            s = time.perf_counter()
            tr.train()
            train_s += time.perf_counter() - s
        return time.perf_counter() - t0, train_s

    def ours_sweep():
        t0 = time.perf_counter()
        ref = build_pi0(run, world).cpu()
        rc, rr = reference_logps(ref, prompts, chosen, rejected, PAD, EOS)
        data = PreferenceData(prompts, chosen, rejected, rc, rr, pad_id=PAD)
        train_s = 0.0
        for loss, beta in runs:
            policy = copy.deepcopy(ref)
            tr = DAATrainer(policy, data, ours_settings(d, loss, beta), PAD, EOS)
            s = time.perf_counter()
            for _ in tr.run():
                pass
            train_s += time.perf_counter() - s
        return time.perf_counter() - t0, train_s

    trl_sweep(), ours_sweep()  # warm-up
    r_trl, r_ours = [], []
    for _ in range(a.repeats):
        r_trl.append(trl_sweep())
        r_ours.append(ours_sweep())
    med = lambda rs, i: statistics.median(r[i] for r in rs)  # noqa: E731
    n_steps = steps_per_run * len(runs)
    print(f"sweep: {len(runs)} runs ({', '.join(LOSSES)} x beta {list(d.betas)}), {len(train)} pairs, batch "
          f"{d.batch_size}, {d.epochs} epoch(s): {n_steps} steps; pi0 {sum(p.numel() for p in pi0.parameters()):,} "
          f"params; threads {torch.get_num_threads()}")
    print(f"TRL DPOTrainer, one run at a time: sweep median {med(r_trl, 0):.2f} s "
          f"({', '.join(f'{x[0]:.2f}' for x in r_trl)}); {1000 * med(r_trl, 1) / n_steps:.1f} ms per step")
    print(f"overopt sweep:                     sweep median {med(r_ours, 0):.2f} s "
          f"({', '.join(f'{x[0]:.2f}' for x in r_ours)}); {1000 * med(r_ours, 1) / n_steps:.1f} ms per step")
    print(f"per-step ratio: {med(r_trl, 1) / med(r_ours, 1):.2f}")
    print(f"ratio: {med(r_trl, 0) / med(r_ours, 0):.2f}")


if __name__ == "__main__":
    main()

"""overopt's direct-alignment sweep against the same runs done one by one with TRL's DPOTrainer.

    python bench/daa_sweep.py [--preset smoke] [--repeats 3]

The sweep is the preset's daa.betas x {DPO, IPO, SLiC} on its pi0 and gold-labelled pairs (daa.n_pairs,
daa.batch_size, daa.epochs, daa.lr, RMSprop). TRL: one `DPOTrainer` per run with
`precompute_ref_log_probs=True` and loss types sigmoid / ipo / hinge (its IPO averages log-ratios per
token, so overopt's IPO runs with ipo_length_norm here). overopt: reference log-probs once for the
sweep, then one `DAATrainer` per run. Neither evaluates during training. Prints the sweep wall times
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

LOSSES = {"dpo": "sigmoid", "ipo": "ipo", "slic": "hinge"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="smoke")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    os.environ.setdefault("WANDB_DISABLED", "true")
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

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
            args = DPOConfig(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=d.batch_size,
                             num_train_epochs=d.epochs, learning_rate=d.lr, optim="rmsprop", loss_type=[LOSSES[loss]],
                             beta=beta, precompute_ref_log_probs=True, report_to=[], use_cpu=True, save_strategy="no",
                             logging_steps=10 ** 6, disable_tqdm=True, max_length=None, lr_scheduler_type="constant",
                             warmup_steps=0, seed=0)
            tr = DPOTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
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
            tr = DAATrainer(policy, data, DAASettings(loss=loss, beta=beta, lr=d.lr, optimizer="rmsprop",
                                                     batch_size=d.batch_size, epochs=d.epochs, warmup=1,
                                                     ipo_length_norm=loss == "ipo"), PAD, EOS)
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

"""The Hugging Face world at a realistic model size, built from configs (no hub): a run of the whole pipeline on
GPT-NeoX checkpoints of Pythia's shapes, saved to a folder and loaded back through `hf.policy`, `hf.proxies` and
`hf.gold` as a user's own checkpoints would be.

    python bench/gpu/hf_world.py [--policy 768x12] [--proxies 512x6,768x12] [--gold 512x6] [--out DIR]

pi0 has Pythia-160m's shape by default (768 wide, 12 layers), the proxies Pythia-70m's and 160m's, gold a 70m-shaped
sequence classifier; every model starts from random weights (speed and memory do not depend on training) and reads
the toy world's word vocabulary and prompts (so the vocabulary is ~300 words, not Pythia's 50k). Prints the run's
wall time, peak GPU memory (or RSS), its slowest stages and what the tables say, for docs/BENCHMARKS.md.
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
import yaml

from overopt.config import load_config, parse_size
from overopt.experiment import run_experiment
from overopt.world.toy import ToyWorld


def neox(size: str, vocab: int, seed: int, classifier: bool = False):
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, GPTNeoXForSequenceClassification

    hidden, layers = parse_size(size)
    torch.manual_seed(seed)
    cfg = GPTNeoXConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=max(1, hidden // 64), intermediate_size=4 * hidden,
                        max_position_embeddings=256, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                        tie_word_embeddings=False, num_labels=1)
    return (GPTNeoXForSequenceClassification if classifier else GPTNeoXForCausalLM)(cfg)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policy", default="768x12")
    ap.add_argument("--proxies", default="512x6,768x12")
    ap.add_argument("--gold", default="512x6")
    ap.add_argument("--out", default="")
    ap.add_argument("--set", action="append", default=[], help="more config overrides, section.key=value")
    a = ap.parse_args()
    root = Path(a.out or tempfile.mkdtemp(prefix="overopt-hf-"))
    world = ToyWorld(load_config("smoke").world, 0)
    tok, V = world.tokenizer(), len(world.vocab)
    models = {"policy": neox(a.policy, V, 1), "gold": neox(a.gold, V, 2, classifier=True),
              **{f"rm-{s}": neox(s, V, 3 + i) for i, s in enumerate(a.proxies.split(","))}}
    params = {}
    for name, m in models.items():
        m.save_pretrained(root / "ckpt" / name)
        tok.save_pretrained(root / "ckpt" / name)
        params[name] = sum(p.numel() for p in m.parameters())
    with open(root / "prompts.jsonl", "w") as f:
        for i in range(len(world.prompt_ids)):
            f.write(json.dumps({"prompt": world.prompt_text(i)}) + "\n")
    cfg = {"world": {"max_new_tokens": 48},
           "hf": {"policy": str(root / "ckpt/policy"), "gold": str(root / "ckpt/gold"), "eval_prompts": 128,
                  "proxies": [str(root / f"ckpt/rm-{s}") for s in a.proxies.split(",")],
                  "prompts": str(root / "prompts.jsonl"), "chat_template": "off"},
           "rm": {"n_train": 4000, "n_val": 500, "epochs": 1, "batch_size": 64, "lr": 1.0e-5},
           "bon": {"pool_size": 64, "n_boot": 100},
           "rl": {"enabled": True, "steps": 30, "prompts_per_step": 64, "k": 4, "lr": 1.0e-5, "eval_points": 6,
                  "eval_prompts": 64, "eval_samples": 4},
           "run": {"cache_dir": str(root / "cache")}}
    (root / "hf.yaml").write_text(yaml.safe_dump(cfg))
    config = load_config(None, str(root / "hf.yaml"), a.set)
    t = time.perf_counter()
    run_experiment(config, root / "run", quiet=True)
    wall = time.perf_counter() - t
    man = json.loads((root / "run" / "manifest.json").read_text())
    slow = sorted(((k, v.get("seconds", 0.0)) for k, v in man["stages"].items()), key=lambda kv: -kv[1])[:6]
    print(f"device {man['device']}; params " + ", ".join(f"{k} {v / 1e6:.1f}M" for k, v in params.items()))
    print(f"wall {wall:.1f} s; peak GPU memory {man.get('peak_gpu_mem_mb', 'n/a')} MB; peak RSS "
          f"{man.get('peak_rss_mb')} MB")
    print("slowest stages: " + ", ".join(f"{k} {s:.1f} s" for k, s in slow))
    import pandas as pd
    rm, bon = pd.read_csv(root / "run/rm.csv"), pd.read_csv(root / "run/bon.csv")
    print("proxies' validation accuracy: " + ", ".join(f"{r.rm} {r.val_acc:.3f}" for r in rm.itertuples()))
    print(f"best-of-{config.bon.pool_size} gold gain: " + ", ".join(f"{k} {g['gold'].iloc[-1]:+.3f}"
                                                                for k, g in bon.groupby("rm")))
    rl = pd.read_csv(root / "run/rl.csv")
    print("RL, last evaluation: " + ", ".join(f"{k} KL {g['kl'].iloc[-1]:.2f} gold {g['gold'].iloc[-1]:+.3f}"
                                             for k, g in rl.groupby("curve")))


if __name__ == "__main__":
    main()

"""The Hugging Face world on the CPU: tiny random checkpoints saved to a folder and loaded back through the real
loading path (policy, gold, proxies), run end to end into the toy world's tables and report."""
import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from overopt.cli import main
from overopt.studies.bon import bon_columns
from overopt.studies.fits import FIT_TABLE_COLUMNS
from overopt.pipeline.core import RM_COLUMNS
from overopt.studies.rl import rl_table_columns

WORDS = ["good", "bad", "the", "phone", "battery", "screen", "was", "is", "very", "quite", "and", ".", "i", "liked",
         "it", "review", "of", "about", "camera", "price", ",", ":", "a", "great", "awful", "not", "really", "so"]


def count_gold(prompts, responses):
    """A gold reward with structure a proxy can learn: uses of 'good' and 'great' minus 'bad' and 'awful',
    less a little per word beyond 6."""
    out = []
    for r in responses:
        w = r.split()
        out.append(sum(x in ("good", "great") for x in w) - sum(x in ("bad", "awful") for x in w)
                   - 0.1 * max(0, len(w) - 6))
    return out


def tokenizer(chat: bool = False):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = ["[PAD]", "[BOS]", "[EOS]", "[UNK]"] + WORDS
    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="[BOS]", eos_token="[EOS]", pad_token="[PAD]",
                                  unk_token="[UNK]")
    if chat:
        tok.chat_template = ("{% for m in messages %}[BOS] {{ m['content'] }} {% endfor %}"
                             "{% if add_generation_prompt %}: {% endif %}")
    return tok


def neox(hidden, layers, vocab, head=None, seed=0):
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, GPTNeoXForSequenceClassification

    torch.manual_seed(seed)
    cfg = GPTNeoXConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=max(1, hidden // 16), intermediate_size=4 * hidden,
                        max_position_embeddings=256, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                        tie_word_embeddings=False)
    if head == "score":
        cfg.num_labels = 1
        return GPTNeoXForSequenceClassification(cfg)
    return GPTNeoXForCausalLM(cfg)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    tok = tokenizer()
    V = len(tok)
    for name, model in (("policy", neox(32, 1, V, seed=1)), ("rm-16", neox(16, 1, V, seed=2)),
                        ("rm-32", neox(32, 2, V, seed=3)), ("gold", neox(16, 1, V, head="score", seed=4))):
        model.save_pretrained(root / name)
        tok.save_pretrained(root / name)
    rng = np.random.default_rng(0)
    things = ["phone", "battery", "screen", "camera", "price"]
    with open(root / "prompts.jsonl", "w") as f:
        for i in range(40):
            extra = " , so really" if i % 3 == 0 else ""  # prompts of two lengths: the shorter are left-padded
            f.write(json.dumps({"prompt": f"review of the {things[i % 5]} , about the {things[rng.integers(5)]}{extra} :",
                                "id": i}) + "\n")
    return root


def hf_config(root, out_cfg, **hf):
    cfg = {"world": {"max_new_tokens": 10},
           "rm": {"n_train": 300, "n_val": 60, "epochs": 2, "batch_size": 32, "lr": 0.003},
           "bon": {"pool_size": 16, "n_boot": 20, "n_examples": 1},
           "rl": {"enabled": True, "steps": 4, "prompts_per_step": 4, "k": 2, "epochs": 1, "minibatches": 1,
                  "lr": 0.001, "eval_points": 2, "eval_prompts": 6, "eval_samples": 2, "kl_sweep": [0.1]},
           "budget": {"enabled": True, "budgets": [0, 6], "fixed_set": 4, "batch": 2, "repeats": 1,
                      "bon_prompts": [2], "bon_top": 2, "bon_rest": 1},
           "hf": {"policy": str(root / "policy"), "gold": "test_hfworld:count_gold",
                  "proxies": [str(root / "rm-16"), str(root / "rm-32")], "prompts": str(root / "prompts.jsonl"),
                  "eval_prompts": 8, **hf}}
    out_cfg.write_text(yaml.safe_dump(cfg))
    return out_cfg


@pytest.fixture(scope="module")
def hf_run(checkpoints, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hfrun")
    cfg = hf_config(checkpoints, tmp / "hf.yaml")
    out, cache = tmp / "out", tmp / "cache"
    assert main(["run", "--config", str(cfg), "--out", str(out), "--quiet", "--set", f"run.cache_dir={cache}"]) == 0
    return out, cache, cfg


def test_hf_world_writes_the_toy_worlds_tables_and_report(hf_run):
    out, _, _ = hf_run
    rm, bon, rl = pd.read_csv(out / "rm.csv"), pd.read_csv(out / "bon.csv"), pd.read_csv(out / "rl.csv")
    assert list(rm.columns) == RM_COLUMNS and rm["rm"].tolist() == ["rm-16", "rm-32"]
    # a Hugging Face gold names no dimensions: the generic tables carry no gold_<dimension> column
    assert list(bon.columns) == bon_columns(()) and list(rl.columns) == rl_table_columns(())
    assert not any(c.startswith("gold_") and c not in ("gold_lo", "gold_hi") for c in [*bon.columns, *rl.columns])
    assert list(pd.read_csv(out / "fits.csv").columns) == FIT_TABLE_COLUMNS
    for f in ("tilt.csv", "length.csv", "claims.csv", "samples.csv", "report.html", "plots/fig1_bon.png"):
        assert (out / f).exists(), f
    # the proxies learn the gold callable from 300 pairs, and best-of-16 against them gains gold
    assert (rm["val_acc"] > 0.6).all()
    top = bon[bon["n"] == bon["n"].max()]
    assert (top["gold"] > 0.2).all()
    # every family curve and the KL-penalty curve were evaluated at steps 0, 2 and 4, KL 0 at the start
    assert set(rl["curve"]) == {"rm-16", "rm-32", "rm-16/kl0.1"}
    assert (rl[rl["step"] == 0]["kl"].abs() < 1e-5).all() and (rl["kl"] >= -1e-5).all()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["stages"]["world"]["kind"] == "hf"
    samples = pd.read_csv(out / "samples.csv")
    assert samples["prompt"].str.startswith("review of the").all()
    # the judge on a budget and the detectors run here too, the gold callable as the judge
    budget, det = pd.read_csv(out / "budget.csv"), pd.read_csv(out / "detectors.csv")
    assert set(budget["curve"]) == set(det["curve"]) == {"rm-16", "rm-32"} and (budget["labels"] <= budget["budget"]).all()
    assert set(pd.read_csv(out / "bon_choice.csv")["rm"]) == {"rm-16", "rm-32"}


def test_hf_world_reruns_from_the_cache_and_gold_is_cached(hf_run, tmp_path):
    out, cache, cfg = hf_run
    assert (cache / "gold").is_dir() and len(list((cache / "gold").iterdir())) >= 2
    out2 = tmp_path / "again"
    assert main(["run", "--config", str(cfg), "--out", str(out2), "--quiet", "--set", f"run.cache_dir={cache}"]) == 0
    stages = json.loads((out2 / "manifest.json").read_text())["stages"]
    assert stages["rm rm-16"]["cached"] and stages["rl rm-32"]["cached"]
    pd.testing.assert_frame_equal(pd.read_csv(out / "bon.csv"), pd.read_csv(out2 / "bon.csv"))


def test_gold_sequence_classifier_and_prompt_readers(checkpoints, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from overopt.config import HFConfig
    from overopt.world.hf import HFWorld, load_gold, read_prompts

    hcfg = HFConfig(policy=str(checkpoints / "policy"), gold=str(checkpoints / "gold"),
                    proxies=(str(checkpoints / "rm-16"),), prompts=str(checkpoints / "prompts.jsonl"), eval_prompts=8)
    gold = load_gold(hcfg.gold, hcfg, torch.device("cpu"))
    got = gold(["review of the phone :"] * 3, [" good good", " bad", " the phone was very good ."])
    model = AutoModelForSequenceClassification.from_pretrained(checkpoints / "gold")
    tok = AutoTokenizer.from_pretrained(checkpoints / "gold")
    for text, g in zip(["review of the phone : good good", "review of the phone : bad"], got):
        want = model(**tok(text, return_tensors="pt")).logits[0, 0].item()
        assert abs(want - g) < 1e-4
    # the same prompts from CSV and Parquet; a missing column is named
    df = pd.read_json(checkpoints / "prompts.jsonl", lines=True)
    df.to_csv(tmp_path / "p.csv", index=False)
    df.to_parquet(tmp_path / "p.parquet")
    assert read_prompts(str(tmp_path / "p.csv"), "prompt") == read_prompts(str(tmp_path / "p.parquet"), "prompt")
    assert len(read_prompts(str(tmp_path / "p.csv"), "prompt", limit=5)) == 5
    with pytest.raises(ValueError, match="has no column 'text'.*hf.prompt_field"):
        read_prompts(str(tmp_path / "p.csv"), "text")
    # a dataset saved to disk (TRL's datasets dependency): a Dataset, and a DatasetDict read from its first split
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_pandas(df)
    ds.save_to_disk(str(tmp_path / "ds"))
    datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "dd"))
    want = read_prompts(str(tmp_path / "p.csv"), "prompt")
    assert read_prompts(str(tmp_path / "ds"), "prompt") == want == read_prompts(str(tmp_path / "dd"), "prompt")
    # the world: left-padded prompts, held-out split, gold through the callable path and the normalisation
    world = HFWorld(hcfg, 10, 0, torch.device("cpu"))
    assert world.prompt_ids.shape[0] == 40 and len(world.eval_prompt_idx) == 8
    assert set(world.eval_prompt_idx).isdisjoint(world.train_prompt_idx)
    lead = world.prompt_ids[:, 0] == world.pad
    assert lead.any() and (world.prompt_ids[:, -1] != world.pad).all()  # shorter prompts are padded on the left
    resp = np.array([[world.tok.convert_tokens_to_ids("good")] * 3 + [world.eos] + [world.pad] * 6])
    assert world.decode(resp[0]) == "good good good"


def test_chat_template_wraps_each_prompt(checkpoints, tmp_path):
    from overopt.config import HFConfig
    from overopt.world.hf import HFWorld

    tok = tokenizer(chat=True)
    tok.save_pretrained(tmp_path / "chat")
    neox(16, 1, len(tok)).save_pretrained(tmp_path / "chat")
    hcfg = HFConfig(policy=str(tmp_path / "chat"), gold="test_hfworld:count_gold", proxies=("x",),
                    prompts=str(checkpoints / "prompts.jsonl"), eval_prompts=8)
    world = HFWorld(hcfg, 10, 0, torch.device("cpu"))
    ids = world.prompt_ids[0][world.prompt_ids[0] != world.pad]
    text = world.tok.decode(ids)
    assert text.startswith("[BOS] review of the") and text.endswith(": :")  # the template's turn, then its cue
    off = HFWorld(HFConfig(**{**hcfg.__dict__, "chat_template": "off"}), 10, 0, torch.device("cpu"))
    assert off.prompt_ids.shape[1] < world.prompt_ids.shape[1]


def test_unsafe_or_bad_checkpoints_are_refused_in_one_line(checkpoints, tmp_path, capsys):
    # a checkpoint that asks for its own code is refused unless hf.trust_remote_code is on
    import shutil
    remote = tmp_path / "remote"
    shutil.copytree(checkpoints / "rm-16", remote)
    cfg = json.loads((remote / "config.json").read_text())
    cfg["auto_map"] = {"AutoModel": "modeling_evil.EvilModel"}
    (remote / "config.json").write_text(json.dumps(cfg))
    (remote / "modeling_evil.py").write_text("raise SystemExit('remote code ran')\n")
    path = hf_config(checkpoints, tmp_path / "c.yaml")
    data = yaml.safe_load(path.read_text())
    data["hf"]["proxies"] = [str(remote)]
    path.write_text(yaml.safe_dump(data))
    assert main(["run", "--config", str(path), "--out", str(tmp_path / "o"), "--quiet",
                 "--set", f"run.cache_dir={tmp_path / 'c'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "ships its own modelling code" in err and "hf.trust_remote_code" in err
    # weights that are not a weights file (a torch.load that refuses them: safe, and one line)
    junk = tmp_path / "junk"
    shutil.copytree(checkpoints / "rm-16", junk)
    for f in junk.glob("*.safetensors"):
        f.unlink()
    (junk / "pytorch_model.bin").write_bytes(b"this is not a checkpoint" * 40)
    # a toy-only study, a missing prompts file, a folder that is no model, sequences longer than the model's
    # positions (256), a relative path that does not exist (not a hub name): one line each, exit 2
    for sets, msg in (([f"hf.proxies={junk}"], f"hf.proxies: cannot load {junk}: "),
                      (["hf.policy=tests/no-such-model"], "hf.policy: tests/no-such-model does not exist"),
                      (["ensemble.enabled=true"], "'ensemble.enabled' is a toy-world study"),
                      (["rm.pretrain_steps=10"], "'rm.pretrain_steps' is for the toy world"),
                      (["world.max_new_tokens=250"], "exceed the model's 256 positions; lower hf.max_prompt_tokens"),
                      ([f"hf.prompts={tmp_path / 'none.jsonl'}"], "does not exist"),
                      ([f"hf.policy={tmp_path}"], "not a model folder"),
                      ([f"hf.policy={tmp_path / 'missing'}"], "hf.policy: " + str(tmp_path / "missing") + " does not exist")):
        args = ["run", "--config", str(hf_config(checkpoints, tmp_path / "d.yaml")), "--out", str(tmp_path / "o2"),
                "--quiet", "--set", f"run.cache_dir={tmp_path / 'c'}"]
        for s in sets:
            args += ["--set", s]
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and msg in err, err


def test_a_tokenizer_without_padding_pads_with_its_end_token(checkpoints, tmp_path):
    """GPT-2 and Pythia tokenizers have no padding token: the end token pads, and a run (RL and DPO) still
    completes with KL 0 at the start."""
    from overopt.config import HFConfig
    from overopt.world.hf import HFWorld

    tok = tokenizer()
    tok.pad_token = None
    (tmp_path / "nopad").mkdir()
    tok.save_pretrained(tmp_path / "nopad")
    neox(32, 1, len(tok), seed=1).save_pretrained(tmp_path / "nopad")
    world = HFWorld(HFConfig(policy=str(tmp_path / "nopad"), gold="test_hfworld:count_gold", proxies=("x",),
                             prompts=str(checkpoints / "prompts.jsonl"), eval_prompts=8), 10, 0, torch.device("cpu"))
    assert world.pad == world.eos == tok.eos_token_id
    path = hf_config(checkpoints, tmp_path / "c.yaml", policy=str(tmp_path / "nopad"))
    data = yaml.safe_load(path.read_text())
    data["rl"].update(kl_sweep=[])
    data["daa"] = {"enabled": True, "losses": ["dpo"], "betas": [0.1], "n_pairs": 64, "n_val_pairs": 32,
                   "epochs": 1, "batch_size": 16, "checkpoints_per_epoch": 2, "eval_prompts": 6, "eval_samples": 2}
    data["hf"]["proxies"] = [str(checkpoints / "rm-16")]
    path.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    assert main(["run", "--config", str(path), "--out", str(out), "--quiet", "--set",
                 f"run.cache_dir={tmp_path / 'cache'}"]) == 0
    rl = pd.read_csv(out / "rl.csv")
    assert abs(rl.loc[rl["step"] == 0, "kl"].iloc[0]) < 1e-5 and (rl["kl"] > -1e-5).all()
    assert (pd.read_csv(out / "rm.csv")["val_acc"] > 0.55).all()
    # direct alignment runs in this world too; pi0 is named by its folder
    daa = pd.read_csv(out / "daa.csv")
    assert set(daa["curve"]) == {"dpo/b0.1/pi0-nopad"} and abs(daa.loc[daa["step"] == 0, "kl"].iloc[0]) < 1e-5

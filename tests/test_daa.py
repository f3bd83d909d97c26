import numpy as np
import pandas as pd
import pytest
import torch

from overopt.stats import r2_linear
from overopt.studies import daa as daarun
from overopt.optimizers.daa import DAASettings, DAATrainer, PreferenceData, policy_logps, preference_loss

# h = [log pi(y_w) - log ref(y_w)] - [log pi(y_l) - log ref(y_l)] = [0.5 - (-0.5), -0.5 - 1.0] = [1.0, -1.5]
PC, PR = torch.tensor([-1.0, -2.0]), torch.tensor([-3.0, -1.0])
RC, RR = torch.tensor([-1.5, -1.5]), torch.tensor([-2.5, -2.0])
LC, LR = torch.tensor([4, 2]), torch.tensor([2, 5])


@pytest.mark.parametrize("loss,kw,expected", [
    ("dpo", {}, [0.4740769841801067, 1.1368710061148999]),       # log(1 + exp(-beta h)), beta h = 0.5, -0.75
    ("ipo", {}, [0.0, 6.25]),                                     # (h - 1/(2 beta))^2 = (h - 1)^2
    ("slic", {}, [0.5, 1.75]),                                    # max(0, 1 - beta h)
    ("rdpo", {"alpha": 0.1}, [0.4031860488854579, 1.3500584796176431]),  # beta h + 0.1 (|y_w| - |y_l|) = 0.7, -1.05
    ("ipo", {"ipo_length_norm": True}, [0.390625, 2.1025]),       # h = 0.5/4 + 0.5/2 = 0.375; -0.5/2 - 1/5 = -0.45
])
def test_losses_by_hand(loss, kw, expected):
    out = preference_loss(PC, PR, RC, RR, 0.5, loss, LC, LR, **kw)
    assert torch.allclose(out, torch.tensor(expected), atol=1e-6)


def test_bad_loss_and_missing_lengths():
    with pytest.raises(ValueError, match="unknown preference loss 'kto'"):
        preference_loss(PC, PR, RC, RR, 0.5, "kto")
    with pytest.raises(ValueError, match="needs chosen_lengths"):
        preference_loss(PC, PR, RC, RR, 0.5, "rdpo", alpha=0.1)


def test_dpo_gradient_raises_the_margin():
    """One DPO step on a one-token world raises log pi(chosen) - log pi(rejected)."""
    torch.manual_seed(0)

    class Tiny(torch.nn.Module):  # a bigram LM over 4 tokens with the HF call signature
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(4, 4)

        def forward(self, input_ids, attention_mask=None, position_ids=None):
            return type("O", (), {"logits": self.emb(input_ids)})()

    policy = Tiny()
    prompts = torch.full((8, 1), 3)
    chosen, rejected = torch.full((8, 1), 1), torch.full((8, 1), 2)
    with torch.no_grad():
        ref_c, ref_r = policy_logps(policy, prompts, chosen, rejected, pad_id=0, eos_id=-1)
    data = PreferenceData(prompts, chosen, rejected, ref_c, ref_r, pad_id=0)
    tr = DAATrainer(policy, data, DAASettings(loss="dpo", beta=1.0, lr=0.05, batch_size=4, warmup=1,
                                              checkpoints_per_epoch=2), pad_id=0, eos_id=-1)
    assert tr.checkpoints() == [0, 1, 2]
    margin = lambda: float((policy.emb.weight[3, 1] - policy.emb.weight[3, 2]).detach())  # noqa: E731
    before = margin()
    marks = list(tr.run())
    assert marks == [(0, 0.0), (1, 0.5), (2, 1.0)] and margin() > before
    assert tr.losses[0] == pytest.approx(np.log(2), rel=1e-6)  # -log sigmoid(0): the policy starts as its reference


def test_r2_linear():
    x = np.arange(10.0)
    assert r2_linear(x, 3 * x + 1) == pytest.approx(1.0)
    assert r2_linear(x, np.ones(10)) == 0.0


def test_smoke_sweep_computes_reference_once_and_learns(tmp_path, monkeypatch):
    from overopt.config import load_config
    from overopt.experiment import run_experiment

    calls = []
    real = daarun.reference_logps
    monkeypatch.setattr(daarun, "reference_logps", lambda *a, **k: calls.append(1) or real(*a, **k))
    cfg = load_config("smoke", overrides=[f"run.cache_dir={tmp_path / 'cache'}", "rl.enabled=false"])
    out = run_experiment(cfg, tmp_path / "out", quiet=True)
    daa = pd.read_csv(out / "daa.csv")
    n_runs = len(cfg.daa.losses) * len(cfg.daa.betas) * (1 + len(cfg.daa.policy_sizes))
    assert daa["curve"].nunique() == n_runs == 16
    assert len(calls) == 2 * (1 + len(cfg.daa.policy_sizes))  # training and held-out pairs, once per reference
    start = daa[daa["step"] == 0]
    assert np.allclose(start["implicit_acc"], 0.5) and np.allclose(start["kl"], 0.0, atol=1e-6)
    end = daa.groupby("curve").tail(1)
    assert (end["implicit_acc"] > 0.5).mean() >= 0.75 and (end["kl"] > 0).all()
    assert set(pd.read_csv(out / "daa_summary.csv")["curve"]) == set(daa["curve"])
    # a rerun takes every run from the cache: no reference pass at all
    calls.clear()
    run_experiment(cfg, tmp_path / "out2", quiet=True)
    assert calls == [] and pd.read_csv(tmp_path / "out2" / "daa.csv").equals(daa)


@pytest.mark.parametrize("loss,trl_loss", [("dpo", "sigmoid"), ("slic", "hinge")])
def test_matches_trl_dpo_trainer(tmp_path, loss, trl_loss):
    """TRL's DPOTrainer loss on one of its own batches equals ours on the same log-probs."""
    trl = pytest.importorskip("trl")
    from datasets import Dataset

    from overopt.config import WorldConfig
    from overopt.models.policy import build_lm
    from overopt.world.toy import ToyWorld

    world = ToyWorld(WorldConfig(n_bigram=2000), seed=0)
    tok = world.tokenizer()
    model = build_lm(len(world.vocab), 16, 1, 2, 64, seed=0)
    model.generation_config.top_k = None
    rng = np.random.default_rng(0)
    pidx, resp = world.corpus(16, rng)
    text = [world.decode(r.tolist()) for r in resp]
    ds = Dataset.from_dict({"prompt": [world.prompt_text(i) for i in pidx[:8]], "chosen": text[:8],
                            "rejected": text[8:]})
    args = trl.DPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=4, loss_type=[trl_loss], beta=0.3,
                         precompute_ref_log_probs=True, report_to=[], use_cpu=True, max_length=None)
    tr = trl.DPOTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
    batch = next(iter(tr.get_train_dataloader()))
    model.train()
    with torch.no_grad():
        trl_value = float(tr.compute_loss(model, batch))
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    lp = logits.log_softmax(-1).gather(-1, batch["input_ids"][:, 1:, None]).squeeze(-1)
    lp = (lp * batch["completion_mask"][:, 1:]).sum(1)
    pc, pr = lp.chunk(2)
    ours = preference_loss(pc, pr, batch["ref_chosen_logps"], batch["ref_rejected_logps"], 0.3, loss).mean()
    assert float(ours) == pytest.approx(trl_value, rel=1e-4, abs=1e-5)


def test_relabel_by_a_proxy_puts_its_preferred_response_first():
    from overopt.measure.labels import Pairs
    from overopt.models.reward import Proxy, build_rm, score

    rng = np.random.default_rng(0)
    prompt_ids = rng.integers(3, 20, size=(5, 4))
    a, b = rng.integers(3, 20, size=(12, 6)), rng.integers(3, 20, size=(12, 6))
    pairs = Pairs(rng.integers(0, 5, 12), a, b, np.zeros(12), np.zeros(12), np.zeros(12, bool))
    rm = build_rm(20, 16, 1, 16, seed=0)
    ch, rj = daarun._relabel(pairs, prompt_ids, Proxy("rm", 0, rm), "cpu", 0)
    p = torch.tensor(prompt_ids[pairs.prompt_idx])
    s_ch, s_rj = score(rm, p, torch.tensor(ch), 0), score(rm, p, torch.tensor(rj), 0)
    assert (s_ch >= s_rj).all()
    sa, sb = score(rm, p, torch.tensor(a), 0), score(rm, p, torch.tensor(b), 0)
    assert 0 < (sb > sa).sum() < 12  # the proxy disagrees with the given order on some pairs, and they swap
    assert np.array_equal(ch[sb > sa], b[sb > sa]) and np.array_equal(ch[sb <= sa], a[sb <= sa])


def test_non_finite_loss_stops_the_run_with_one_line_and_keeps_finished_runs(tmp_path, monkeypatch, capsys):
    from overopt.optimizers import daa as daa_mod
    from overopt.cli import main

    real = daa_mod.preference_loss
    seen = {"calls": 0}

    def nan_in_the_third_run(*a, **k):  # smoke: 8 steps per run: call 17 is run 3's first
        seen["calls"] += 1
        out = real(*a, **k)
        return out * float("nan") if seen["calls"] == 17 else out

    monkeypatch.setattr(daa_mod, "preference_loss", nan_in_the_third_run)
    code = main(["run", "--preset", "smoke", "--quiet", "--out", str(tmp_path / "o"), "--set", "rl.enabled=false",
                 "--set", "ensemble.enabled=false", "--set", "multi.enabled=false", "--set", "aif.enabled=false",
                 "--set", "active.enabled=false",
                 "--set", f"run.cache_dir={tmp_path / 'c'}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1
    assert err[0] == "overopt run: error: direct alignment run ipo/b0.1/pi0-32x1: step 0: loss is not finite"
    kept = pd.read_csv(tmp_path / "o" / "daa.csv")  # the two runs that finished, every checkpoint of each
    assert set(kept["curve"]) == {"dpo/b0.1/pi0-32x1", "dpo/b1/pi0-32x1"} and len(kept) == 6

import math

import numpy as np

import pytest
import torch

from overopt.models.policy import build_lm
from overopt.optimizers.rl import (KLController, RLError, RLSettings, RLTrainer, clipped_pg_loss, clipped_value_loss, gae,
                        rloo_advantages)

V, EOS, PAD = 12, 2, 0

# the smoke preset without the reward-model studies, which these tests do not need
ONLY_RL = ["--set", "ensemble.enabled=false", "--set", "multi.enabled=false", "--set", "aif.enabled=false",
           "--set", "daa.enabled=false", "--set", "active.enabled=false"]


def test_rloo_advantages_leave_one_out():
    adv = rloo_advantages(torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 4.0]]))
    torch.testing.assert_close(adv, torch.tensor([[-1.5, 0.0, 1.5], [-2.0, -2.0, 4.0]]))


def test_clipped_pg_loss_hand_computed():
    old = torch.zeros(3)
    new = torch.log(torch.tensor([1.5, 1.5, 0.5]))
    adv = torch.tensor([1.0, -1.0, 1.0])
    # ratio 1.5, A=+1 -> clipped to 1.2; ratio 1.5, A=-1 -> unclipped -1.5; ratio 0.5, A=+1 -> 0.5
    want = (-1.2 + 1.5 - 0.5) / 3
    assert clipped_pg_loss(new, old, adv, None, 0.2).item() == pytest.approx(want)
    mask = torch.tensor([1.0, 0.0, 1.0])
    assert clipped_pg_loss(new, old, adv, mask, 0.2).item() == pytest.approx((-1.2 - 0.5) / 2)


def test_gae_hand_computed_and_monte_carlo_limit():
    r = torch.tensor([[0.0, 0.0, 1.0, 0.0]])
    v = torch.tensor([[0.5, 0.6, 0.7, 9.9]])   # the last column is padding
    m = torch.tensor([[1, 1, 1, 0]])
    adv, ret = gae(r, v, m, gamma=1.0, lam=0.5)
    torch.testing.assert_close(adv, torch.tensor([[0.225, 0.25, 0.3, 0.0]]))
    torch.testing.assert_close(ret, torch.tensor([[0.725, 0.85, 1.0, 0.0]]))
    adv, ret = gae(r, v, m, gamma=1.0, lam=1.0)  # lambda = 1: returns are the Monte Carlo returns
    torch.testing.assert_close(ret, torch.tensor([[1.0, 1.0, 1.0, 0.0]]))


def test_clipped_value_loss_hand_computed():
    loss = clipped_value_loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 0.0]]), torch.tensor([[2.0, 5.0]]),
                              torch.tensor([[1.0, 0.0]]), clip=0.2)
    assert loss.item() == pytest.approx(0.5 * max((1 - 2) ** 2, (0.2 - 2) ** 2))


def test_adaptive_kl_controller_moves_toward_the_target():
    up, down, fixed = KLController(0.1, 2.0, 100), KLController(0.1, 2.0, 100), KLController(0.1)
    up.update(kl=10.0, n=10)      # error clipped to +0.2: 0.1 * (1 + 0.2 * 10 / 100)
    down.update(kl=1.0, n=10)     # error -0.2
    fixed.update(kl=10.0, n=10)
    assert up.value == pytest.approx(0.1 * 1.02) and down.value == pytest.approx(0.1 * 0.98)
    assert fixed.value == 0.1


def count_token(tok):
    return lambda prompts, responses: (responses == tok).float().sum(1)


@pytest.mark.parametrize("algo", ["rloo", "ppo"])
def test_rl_raises_the_reward_and_stays_finite(algo):
    torch.manual_seed(0)
    policy, ref = build_lm(V, 16, 1, 2, 32, seed=0), build_lm(V, 16, 1, 2, 32, seed=0)
    s = RLSettings(algo=algo, k=4, lr=3e-3, kl_coef=0.01, max_new_tokens=6, epochs=2, minibatches=2)
    tr = RLTrainer(policy, ref, count_token(7), s, PAD, EOS, seed=0)
    prompts = torch.randint(3, V, (16, 3), generator=torch.Generator().manual_seed(0))
    stats = [tr.step(prompts) for _ in range(25)]
    first = sum(x["proxy"] for x in stats[:3]) / 3
    last = sum(x["proxy"] for x in stats[-3:]) / 3
    assert last > first + 1.0
    assert stats[-1]["kl_k3"] > stats[0]["kl_k3"] >= 0
    assert all(math.isfinite(x["loss/policy"]) for x in stats)


def test_non_finite_reward_stops_with_the_step_and_quantity():
    policy, ref = build_lm(V, 16, 1, 2, 32, seed=0), build_lm(V, 16, 1, 2, 32, seed=0)
    tr = RLTrainer(policy, ref, lambda p, r: torch.full((len(r),), float("nan")), RLSettings(max_new_tokens=4),
                   PAD, EOS)
    with pytest.raises(RLError, match="step 0: reward is not finite"):
        tr.step(torch.randint(3, V, (2, 3)))


def test_rl_curve_interrupted_mid_way_resumes_to_the_same_rows(tmp_path, monkeypatch):
    """A curve stopped after some evaluation points continues from its checkpoint, bit for bit."""
    import pandas as pd

    from overopt.optimizers import rl as rl_mod
    from overopt.cli import main

    base = ["run", "--preset", "smoke", "--quiet", "--set", "rm.sizes=[8x1]", *ONLY_RL]
    assert main([*base, "--out", str(tmp_path / "a"), "--set", f"run.cache_dir={tmp_path / 'ca'}"]) == 0
    calls = {"n": 0}
    real_step = rl_mod.RLTrainer.step

    def flaky(self, prompts):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        return real_step(self, prompts)

    out, cache = str(tmp_path / "b"), f"run.cache_dir={tmp_path / 'cb'}"
    with monkeypatch.context() as m:
        m.setattr(rl_mod.RLTrainer, "step", flaky)
        assert main([*base, "--out", out, "--set", cache]) == 130
    assert main([*base, "--out", out, "--set", cache]) == 0
    a, b = pd.read_csv(tmp_path / "a" / "rl.csv"), pd.read_csv(tmp_path / "b" / "rl.csv")
    pd.testing.assert_frame_equal(a, b)


def test_iterated_prediction_hand_computed():
    from overopt.laws import iterated_prediction
    from overopt.laws import predict
    kl = np.array([0.0, 1.0, 4.0])
    np.testing.assert_allclose(iterated_prediction(0.5, 0.2, kl, 1), predict("rl", 0.5, 0.2, kl))
    np.testing.assert_allclose(iterated_prediction(0.5, 0.2, [1.0], 3), [0.5 + 0.2 * math.log(3)])  # d = 1


def test_non_finite_rl_stops_the_run_with_one_line_and_keeps_the_points(tmp_path, monkeypatch, capsys):
    import pandas as pd

    from overopt.optimizers import rl as rl_mod
    from overopt.cli import main

    real_step = rl_mod.RLTrainer.step

    def nan_after_five(self, prompts):
        if self.n_steps == 5:
            raise RLError(f"step {self.n_steps}: reward is not finite")
        return real_step(self, prompts)

    monkeypatch.setattr(rl_mod.RLTrainer, "step", nan_after_five)
    out = tmp_path / "out"
    assert main(["run", "--preset", "smoke", "--quiet", "--out", str(out), "--set", "rm.sizes=[8x1]", *ONLY_RL,
                 "--set", f"run.cache_dir={tmp_path / 'c'}"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "overopt run: error: RL curve 8x1: step 5: reward is not finite"
    rl = pd.read_csv(out / "rl.csv")
    assert rl["step"].tolist() == [0, 2, 4]  # the evaluations before the failure
    assert (out / "bon.csv").exists()


def test_evaluator_winrate_against_brute_force():
    from overopt.measure.evaluator import Evaluator
    rng = np.random.default_rng(0)
    ev = Evaluator.__new__(Evaluator)
    ev.n_prompts = 3
    ev.base_gold_all = np.round(rng.normal(size=(3, 5)), 1)  # rounded: ties occur
    gold = np.round(rng.normal(size=6), 1)                    # 2 samples per prompt, prompt-major
    wins = [(1.0 if g > b else 0.5 if g == b else 0.0) for i, g in enumerate(gold) for b in ev.base_gold_all[i // 2]]
    assert ev.winrate(gold) == pytest.approx(np.mean(wins))
    assert ev.winrate(np.full(6, 10.0)) == 1.0

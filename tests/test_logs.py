"""Reading other trainers' logs: formats, column recognition, documented handling, and bad input."""
import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from overopt.cli import main
from overopt.laws import peak, predict
from overopt.online.columns import recognise
from overopt.online.logs import LogError, read_log, tidy


def trainer_state(path, kl, reward):
    """A trainer_state.json as transformers.Trainer writes it: training lines (TRL's RLOO/PPO names) mixed
    with evaluation lines that have neither KL nor reward."""
    hist = []
    for i, (k, r) in enumerate(zip(kl, reward), 1):
        hist.append({"epoch": i / len(kl), "step": i, "objective/kl": float(k), "objective/scores": float(r),
                     "loss/policy_avg": 0.1, "learning_rate": 1e-5})
        if i % 3 == 0:
            hist.append({"epoch": i / len(kl), "step": i, "eval_loss": 0.5, "eval_runtime": 1.0})
    path.write_text(json.dumps({"best_metric": None, "global_step": len(kl), "log_history": hist,
                                "max_steps": len(kl), "trial_name": None}, indent=2))


def test_trainer_state_json_is_read_and_fitted(tmp_path, capsys):
    kl = np.linspace(0.2, 12, 15)
    f = tmp_path / "trainer_state.json"
    trainer_state(f, kl, predict("rl", 0.8, 0.35, kl))
    df = read_log(str(f))
    cols = recognise(df, str(f))
    assert (cols["kl"], cols["reward"], cols["step"]) == ("objective/kl", "objective/scores", "step")
    curve = tidy(df, cols, str(f))
    assert len(curve) == 15 and curve["step"].tolist() == list(range(1, 16))   # evaluation lines dropped
    assert main(["fit", str(f), "--form", "rl", "--json"]) == 0
    (r,) = json.loads(capsys.readouterr().out)
    assert r["alpha"] == pytest.approx(0.8, abs=1e-6) and r["beta"] == pytest.approx(0.35, abs=1e-6)


def test_wandb_export_becomes_one_curve_per_run(tmp_path):
    kl = np.linspace(0.1, 6, 10)
    df = pd.DataFrame({"Step": np.arange(10)})
    for run, a in (("ppo-small", 0.5), ("ppo-large", 0.9)):
        df[f"{run} - objective/kl"] = kl
        df[f"{run} - objective/kl__MIN"] = kl - 0.1
        df[f"{run} - objective/kl__MAX"] = kl + 0.1
        df[f"{run} - objective/scores"] = predict("rl", a, 0.3, kl)
    f = tmp_path / "wandb_export.csv"
    df.to_csv(f, index=False)
    raw = read_log(str(f))
    assert set(raw["run"]) == {"ppo-small", "ppo-large"} and "objective/kl__MIN" not in raw.columns
    curve = tidy(raw, recognise(raw, str(f)), str(f))
    assert curve.groupby("group").size().to_dict() == {"ppo-large": 10, "ppo-small": 10}
    from overopt.online.fitlog import fit_log_file
    fits = {r["curve"]: r for r in fit_log_file(str(f), "rl", None, None, None, n_boot=20).rows}
    assert fits["ppo-small"]["alpha"] == pytest.approx(0.5, abs=1e-6)
    assert fits["ppo-large"]["alpha"] == pytest.approx(0.9, abs=1e-6)


def test_grpo_reward_function_column_and_documented_handling(tmp_path):
    # GRPO: one column per reward function; steps unsorted and repeated
    rows = [{"step": 3, "kl": 0.3, "rewards/my_rm/mean": 1.0}, {"step": 1, "kl": 0.1, "rewards/my_rm/mean": 0.2},
            {"step": 3, "kl": 0.5, "rewards/my_rm/mean": 2.0}, {"step": 2, "kl": 0.2, "rewards/my_rm/mean": 0.5},
            {"step": 2, "eval_loss": 1.0}]
    f = tmp_path / "log.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows))
    df = read_log(str(f))
    cols = recognise(df, str(f))
    assert cols["reward"] == "rewards/my_rm/mean"
    curve = tidy(df, cols, str(f))
    assert curve["step"].tolist() == [1, 2, 3]
    assert curve["kl"].tolist() == pytest.approx([0.1, 0.2, 0.4]) and curve["reward"].tolist() == [0.2, 0.5, 1.5]


@pytest.mark.parametrize("content,args,msg", [
    ('{"step": 1, "loss": 0.3}\n{"step": 2, "loss": 0.2}\n', [], "no reward column found; name it with --reward-col"),
    ('{"kl": 1, "reward": 1}\n', ["--kl-col", "objective/kl"], "has no column 'objective/kl' (--kl-col)"),
    ('{"kl": 1, "gold": 1}\n', ["--reward-col", "gold", "--proxy-col", "gold"], "is also the proxy column"),
    ('{"reward": 1}\n{"reward": 2}\n', ["--until-kl", "3"], "--until-kl needs a KL column"),
    ('{"log_history": 3}', [], "'log_history' is not a list"),
    ('[{"kl": 1, "reward": 2}, 5]', [], "entry 2 is not a JSON object"),
    ('[{"kl": 1, "reward": 2}', [], "is not valid JSON"),
    ("kl,reward\n0,0\n1,inf\n2,1\n", [], "too few points to fit: 2"),  # the infinite row dropped (a note)
    ('{"kl": 1, "reward": 1}\n{"kl": 2}\n', ["--reward-col", "score"], "has no column 'score' (--reward-col)"),
    ('{"kl": 1, "loss": 1}\n', ["--reward-col", "loss", "--step-col", "when"], "no column 'when' (--step-col)"),
    ('{"kl": null, "reward": 1}\n{"kl": null, "reward": 2}\n', [], "no line has both a KL ('kl') and a reward"),
    ("kl,reward\n1,2\n", ["--alpha", "0.5"], "--alpha must be between 0.01 and 0.2"),
])
def test_bad_logs_are_one_line_and_exit_2(tmp_path, capsys, content, args, msg):
    f = tmp_path / ("log.json" if content[:1] in "{[" else "log.csv")
    f.write_text(content)
    assert main(["fit", str(f), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and msg in err, err


def test_negative_kl_estimates_are_read_as_zero_and_said(tmp_path, capsys):
    f = tmp_path / "log.csv"
    f.write_text("step,kl,reward\n1,-0.2,0\n2,-0.1,0.1\n3,1,0.5\n4,2,0.6\n5,4,0.65\n")
    df = read_log(str(f))
    curve = tidy(df, recognise(df, str(f)), str(f))
    assert curve["kl"].tolist() == [0, 0, 1, 2, 4] and curve.attrs["negative_kl"] == (2, -0.2)
    assert main(["fit", str(f), "--form", "bon", "--n-boot", "10"]) == 0
    assert "2 line(s) of 'kl' are negative (down to -0.2)" in capsys.readouterr().err


def test_forecast_from_a_partial_log(tmp_path, capsys):
    kl = np.linspace(0.05, 30, 80)
    alpha, beta = 0.8, 0.35
    f = tmp_path / "log.csv"
    rng = np.random.default_rng(0)
    pd.DataFrame({"step": np.arange(80), "kl": kl,
                  "reward": predict("rl", alpha, beta, kl) + rng.normal(0, 0.01, 80)}).to_csv(f, index=False)
    true_kl = peak("rl", alpha, beta)[0]
    assert 6 < true_kl < 20  # exp(2 (alpha / beta - 1)) = 13.1
    # a forecast needs the peak within 2x the KL seen (past that it is an extrapolation: inconclusive)
    assert main(["fit", str(f), "--form", "rl", "--forecast", "--until-kl", "4"]) == 0
    assert "inconclusive (no turn yet: the fitted peak" in capsys.readouterr().out
    assert main(["fit", str(f), "--form", "rl", "--forecast", "--until-kl", "8"]) == 0
    line = capsys.readouterr().out.splitlines()[1]
    assert "before the peak" in line
    lo, hi = (float(x) for x in line.split("[")[1].split("]")[0].split(","))
    assert lo <= true_kl <= hi and hi < 2 * true_kl
    assert main(["fit", str(f), "--form", "rl", "--forecast"]) == 0
    assert "past the peak: stop" in capsys.readouterr().out
    # the stop rule says it, after the true peak (step 35 of 80), with the steps not distinguishable from the best
    assert main(["fit", str(f), "--form", "rl", "--forecast", "--json"]) == 0
    (r,) = json.loads(capsys.readouterr().out)
    assert r["verdict"].startswith("past the peak: stop") and 35 < r["stop_step"] < 80
    assert abs(r["best_step"] - 35) <= 10 and r["tied_steps"]


log_row = st.fixed_dictionaries({
    "step": st.integers(0, 6),
    "kl": st.one_of(st.none(), st.floats(0, 50, allow_nan=False)),
    "reward": st.one_of(st.none(), st.floats(-5, 5, allow_nan=False)),
})


@settings(max_examples=60, deadline=None)
@given(st.lists(log_row, min_size=1, max_size=25))
def test_tidy_matches_a_plain_groupby(tmp_path_factory, rows):
    f = tmp_path_factory.mktemp("h") / "log.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows))
    df = read_log(str(f))
    full = [r for r in rows if r["kl"] is not None and r["reward"] is not None]
    if not full:
        with pytest.raises(LogError):
            tidy(df, recognise(df, str(f)), str(f))
        return
    got = tidy(df, recognise(df, str(f)), str(f))
    want = pd.DataFrame(full).groupby("step")[["kl", "reward"]].mean().reset_index()
    assert got["step"].tolist() == want["step"].tolist()
    np.testing.assert_allclose(got[["kl", "reward"]].to_numpy(), want[["kl", "reward"]].to_numpy())


@settings(max_examples=80, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('{}[]",:0123456789.-eknalrwdsp \n')), max_size=80),
       st.sampled_from(["log.json", "log.jsonl", "log.csv"]))
def test_readers_never_raise_anything_but_log_error(tmp_path_factory, text, name):
    f = tmp_path_factory.mktemp("g") / name
    f.write_text(text)
    try:
        df = read_log(str(f))
        tidy(df, recognise(df, str(f)), str(f))
    except LogError as e:
        assert "\n" not in str(e)


def test_reads_the_trainer_state_of_a_real_trl_run(tmp_path, capsys):
    """A short TRL RLOO run on a tiny GPT-NeoX writes trainer_state.json; overopt fit reads it and turns TRL's
    per-token KL into the sequence KL."""
    import logging
    import warnings

    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import RLOOConfig, RLOOTrainer

    from overopt.config import WorldConfig
    from overopt.models.policy import build_lm
    from overopt.world.toy import POSITIVE, ToyWorld

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    w = ToyWorld(WorldConfig(n_names=2, n_bigram=200, eval_prompts=20), seed=0)
    model_dir = tmp_path / "model"
    m = build_lm(len(w.vocab), 16, 1, 2, 64, 0)
    m.generation_config.top_k = None
    m.save_pretrained(model_dir)
    w.tokenizer().save_pretrained(model_dir)
    args = RLOOConfig(output_dir=str(tmp_path / "out"), per_device_train_batch_size=8, num_generations=4,
                      max_completion_length=12, beta=0.05, learning_rate=3e-3, max_steps=6, logging_steps=1,
                      save_strategy="steps", save_steps=6, report_to=[], use_cpu=True, seed=0, temperature=1.0,
                      top_k=0, disable_tqdm=True, bf16=False)
    ds = Dataset.from_dict({"prompt": [w.prompt_text(i) for i in w.train_prompt_idx[:64]]})

    def positive_words(prompts, completions, **kw):
        return [float(len(POSITIVE.intersection(c.split()))) for c in completions]

    RLOOTrainer(model=AutoModelForCausalLM.from_pretrained(model_dir), reward_funcs=positive_words, args=args,
                train_dataset=ds, processing_class=w.tokenizer()).train()
    logging.disable(logging.NOTSET)
    state = tmp_path / "out" / "checkpoint-6" / "trainer_state.json"
    df = read_log(str(state))
    cols = recognise(df, str(state))
    assert (cols["kl"], cols["reward"], cols["kl_length"]) == ("kl", "reward", "completions/mean_length")
    curve = tidy(df, cols, str(state))
    hist = [h for h in json.loads(state.read_text())["log_history"] if "kl" in h]
    assert curve["step"].tolist() == [h["step"] for h in hist] == list(range(1, 7))
    # TRL's RLOO logs the sampled k1, which can dip below 0: read as 0
    np.testing.assert_allclose(curve["kl"], [max(h["kl"] * h["completions/mean_length"], 0.0) for h in hist])
    capsys.readouterr()  # what the TRL run printed
    code = main(["fit", str(state), "--form", "rl", "--json", "--n-boot", "20"])
    out, err = capsys.readouterr()
    assert "per-token KL" in err
    # six noisy points from a random tiny policy may or may not fit; either way one clear outcome
    if code == 0:
        (r,) = json.loads(out)
        assert r["n_points"] == len(curve) and r["curve"] == "out"  # a curve is named after its run folder
    else:
        assert code == 2 and "'out'" in err


def test_a_followed_log_is_read_by_its_new_lines(tmp_path):
    from overopt.online.logs import LogTail

    for name, first, more, partial in (
            ("log.csv", "step,kl,reward\n0,0,0\n1,0.5,0.2\n", "2,1.0,0.3\n3,1.5,0.35\n", "4,2.0"),
            ("log.jsonl", '{"step": 0, "kl": 0, "reward": 0}\n', '{"step": 1, "eval/gold": 0.4}\n', '{"step": 2')):
        f = tmp_path / name
        f.write_text(first)
        tail = LogTail(str(f))
        a = tail.read()
        with open(f, "a") as h:
            h.write(more + partial)  # a half-written line is left for the next read
        b = tail.read()
        assert tail.offset == len((first + more).encode())
        assert len(b) == more.count("\n") and len(a) == first.count("\n") - (name == "log.csv")
        if name == "log.csv":
            assert list(b.columns) == ["step", "kl", "reward"] and b["step"].tolist() == [2, 3]
        else:
            assert b.to_dict("records") == [{"step": 1, "eval/gold": 0.4}]  # an evaluation line on its own
    doc = tmp_path / "trainer_state.json"  # a JSON document is rewritten whole: read whole
    doc.write_text(json.dumps({"log_history": [{"step": 1, "kl": 0.1, "reward": 1.0}]}))
    assert len(LogTail(str(doc)).read()) == 1


def test_an_extra_column_named_like_a_tidy_column_is_kept_apart():
    """Gold fitted as the reward, the proxy logged as "reward": the proxy comes back as extra:reward, per step."""
    from overopt.online.logs import extra_column
    df = pd.DataFrame({"step": [0, 1, 1, 2], "kl": [0.0, 1.0, 1.0, 2.0], "gold": [0.0, 1.0, 3.0, 2.0],
                       "reward": [0.0, 5.0, 7.0, 9.0], "ref": [1.0, 2.0, 2.0, 3.0]})
    curve = tidy(df, recognise(df, "log", reward="gold"), "log", ("reward", "ref"))
    assert extra_column("reward") == "extra:reward" and extra_column("ref") == "ref"
    assert curve["reward"].tolist() == [0.0, 2.0, 2.0] and curve["extra:reward"].tolist() == [0.0, 6.0, 9.0]
    assert curve["ref"].tolist() == [1.0, 2.0, 3.0]

import numpy as np
import pytest

from overopt.config import GoldConfig, WorldConfig
from overopt.measure.labels import label_pairs
from overopt.world.toy import EOS, PAD, ToyWorld


@pytest.fixture(scope="module")
def world():
    return ToyWorld(WorldConfig(n_bigram=2000), seed=0)


def encode(world, text):
    return [world.tok2id[w] for w in text.split()] + [EOS]


def test_prompts_and_splits(world):
    assert len(world.prompts) >= 2000 and len(set(world.prompts)) == len(world.prompts)
    assert world.prompt_ids.shape == (len(world.prompts), world.prompt_len)
    assert not set(world.eval_prompt_idx) & set(world.train_prompt_idx)
    assert world.prompt_text(0).startswith("review of the ")


def test_grammar_text_is_readable_words(world):
    pidx, resp = world.corpus(50, np.random.default_rng(0))
    texts = [world.decode(r) for r in resp]
    assert all(t.endswith((".", "!")) for t in texts)
    assert world.tokenizer()(texts[0])["input_ids"] == [world.tok2id[w] for w in texts[0].split()]


def test_gold_dimensions_against_hand_computed_values(world):
    p = next(i for i, (n, t, a) in enumerate(world.prompts) if t == "hotel" and a == "staff")
    texts = ["the staff was great .",
             "the staff was not great . the battery was bad .",
             "great great great great"]
    T = 12
    resp = np.full((3, T), PAD)
    for i, t in enumerate(texts):
        ids = encode(world, t)
        resp[i, : len(ids)] = ids
    d = world.gold_dims(np.array([p] * 3), resp, GoldConfig())
    np.testing.assert_allclose(d["sentiment"], [np.log(2), -np.log(3), np.log(2)])  # distinct words
    np.testing.assert_allclose(d["relevance"], [1.0, 0.5, 0.0])      # battery is off-topic for a hotel
    np.testing.assert_allclose(d["n_words"], [5, 11, 4])
    np.testing.assert_allclose(d["length"], [-81.0, -9.0, -100.0])  # target 14
    np.testing.assert_allclose(d["diversity"], [1.0, 8 / 11, 1 / 4])
    # fluency: mean bigram log-prob over the words and the end token (none for a truncated text)
    ids = [world.tok2id[":"]] + encode(world, texts[0])
    want = np.mean([world.bigram_logp[a, b] for a, b in zip(ids[:-1], ids[1:])])
    assert d["fluency"][0] == pytest.approx(want, rel=1e-5)
    assert d["fluency"][0] > d["fluency"][2]
    total, _ = world.gold(np.array([p] * 3), resp, GoldConfig())
    c = GoldConfig()
    want0 = (c.w_sentiment * np.log(2) + c.w_fluency * d["fluency"][0] + c.w_relevance + c.w_length * -81
             + c.w_diversity)
    assert total[0] == pytest.approx(want0)


def test_labels_follow_gold_and_noise_flips_at_its_rate():
    rng = np.random.default_rng(0)
    n = 20000
    ga, gb = rng.normal(size=n), rng.normal(size=n)
    a, b = np.arange(n)[:, None], -np.arange(n)[:, None]
    clean = label_pairs(np.zeros(n), a, b, ga, gb, 0.0, rng)
    assert np.all(clean.gold_chosen >= clean.gold_rejected) and not clean.flipped.any()
    noisy = label_pairs(np.zeros(n), a, b, ga, gb, 0.25, rng)
    assert noisy.flipped.mean() == pytest.approx(0.25, abs=0.01)
    assert np.all((noisy.gold_chosen < noisy.gold_rejected) == noisy.flipped)
    assert len(noisy.head(100)) == 100 and np.array_equal(noisy.head(10).chosen, noisy.chosen[:10])


def test_long_texts_go_beyond_the_world_and_fit():
    from overopt.studies.length import long_texts

    w = ToyWorld(WorldConfig(n_names=2, n_bigram=200), seed=0)
    ends = {w.tok2id["."], w.tok2id["!"]}
    pidx, resp = long_texts(w, w.eval_prompt_idx[:20], 40, seed=1)
    assert len(pidx) > 20 and resp.shape[1] == 40
    for r in resp:
        words = r[: list(r).index(EOS)]
        assert sum(int(t) in ends for t in words) >= 6 and (r[len(words) + 1:] == PAD).all()
    # what the world writes itself never has more than 5 sentences
    rng = np.random.default_rng(2)
    assert max(sum(x in (".", "!") for x in w.write(int(p), rng)) for p in w.eval_prompt_idx[:50]) <= 5

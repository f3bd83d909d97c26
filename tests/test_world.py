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


def test_naturalness_against_hand_computed_value(world):
    from overopt.world.toy import NAT_CLIP, NAT_DIRECTIONS

    D = world.nat_dirs
    # orthonormal directions over the non-special words, none on [PAD], [BOS], [EOS], [UNK]
    np.testing.assert_allclose(D[4:].T @ D[4:], np.eye(NAT_DIRECTIONS), atol=1e-5)
    assert not D[:4].any()
    texts = ["the staff was great .", "great great great great", "the staff was great . the view was nice ."]
    resp = np.full((3, 14), PAD)
    for i, t in enumerate(texts):
        ids = encode(world, t)
        resp[i, : len(ids)] = ids
    resp[1, 5:] = resp[0, :9]  # after [EOS]: ignored
    p = np.zeros(3, dtype=int)
    for decay in (0.5, 1.0):
        got = world.gold_dims(p, resp, GoldConfig(naturalness_decay=decay))["naturalness"]
        s = np.arange(1, NAT_DIRECTIONS + 1) ** -decay
        for i, t in enumerate(texts):
            f = np.zeros(len(world.vocab))
            for w in t.split():
                f[world.tok2id[w]] += 1 / len(t.split())  # word frequencies: [EOS] and beyond excluded
            z = (f @ D - world.tables["nat_mean"]) / world.tables["nat_std"]
            want = -(np.minimum(z ** 2, NAT_CLIP ** 2) * s).sum() / s.sum()
            assert got[i] == pytest.approx(want, rel=1e-4)
    # standardised over the grammar's texts: a text of the world averages about -1, the repetition far below it
    got = world.gold_dims(p, resp, GoldConfig())["naturalness"]
    _, corpus = world.corpus(400, np.random.default_rng(3))
    nat = world.gold_dims(np.zeros(400, dtype=int), corpus, GoldConfig())["naturalness"]
    assert -1.3 < nat.mean() < -0.7 and got[1] < np.quantile(nat, 0.02) and got[0] > got[1]
    # in gold with its weight; the default weight 0 leaves gold as it was
    w = GoldConfig(w_naturalness=2.0)
    assert world.gold(p, resp, w)[0] - world.gold(p, resp, GoldConfig())[0] == pytest.approx(2 * got)


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

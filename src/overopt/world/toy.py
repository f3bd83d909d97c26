"""The synthetic world: English-like reviews from a hidden grammar, a word tokenizer, a gold reward.

A prompt is "review of the <name> <topic> , about the <aspect> :" (10 topics x 8 aspects x
n_names names). The hidden world model writes 1-5 sentences whose polarity follows a latent
star rating. The gold reward has named dimensions computed on token ids (vectorised):

  sentiment  log(1+pos) - log(1+neg): distinct lexicon words, a word after "not" flips sign
  fluency    mean log-prob per token under the world's bigram model (estimated from the grammar)
  relevance  1[the prompt's aspect is mentioned] - share of aspect words off the prompt's topic
  length     -(words - target)^2
  diversity  distinct tokens / tokens
  naturalness  -sum_k k^-decay z_k^2 / sum_k k^-decay: z_k the response's word frequencies projected on the k-th
             of NAT_DIRECTIONS fixed random directions, standardised over the grammar's texts (clipped to +-4).
             Many preferences of falling importance (a power law, as the "quanta" of Michaud et al. 2023): each
             proxy size resolves the directions its width can hold and its data can show, so size keeps mattering.

On pi0's distribution more positive words go with higher gold, but gold punishes the extremes
(too long, repetitive, disfluent, off-topic) that a small proxy cannot see: Goodhart, made visible.
"""
from __future__ import annotations

import numpy as np

from ..config import GOLD_DIMS
from ..streams import stream_rng

TOPICS = {
    "hotel": ["room", "staff", "price", "location", "breakfast", "bed", "view", "service"],
    "restaurant": ["food", "staff", "price", "menu", "service", "dessert", "wine", "table"],
    "phone": ["battery", "screen", "camera", "price", "speed", "design", "sound", "case"],
    "laptop": ["battery", "screen", "keyboard", "price", "speed", "design", "fan", "charger"],
    "movie": ["plot", "actors", "music", "ending", "dialogue", "pacing", "effects", "story"],
    "book": ["plot", "characters", "ending", "writing", "story", "pacing", "cover", "dialogue"],
    "cafe": ["coffee", "staff", "price", "music", "cake", "seats", "service", "tea"],
    "gym": ["equipment", "staff", "price", "classes", "showers", "location", "music", "trainers"],
    "airline": ["seats", "staff", "price", "food", "service", "flight", "luggage", "crew"],
    "museum": ["exhibits", "staff", "price", "guide", "tour", "location", "shop", "art"],
}
NAMES = ("harbor maple summit river golden silver sunset pine oak cedar ocean lake north royal urban "
         "green blue star bright crown bay stone park city metro willow coral ivy aspen delta "
         "amber birch cliff dune echo fern grove hill iris jade").split()
POS_ADJ = ("good great excellent amazing lovely nice perfect friendly clean fresh fast comfortable "
           "wonderful fantastic pleasant").split()
NEG_ADJ = "bad awful terrible poor rude dirty slow noisy boring cold broken horrible bland weak dull".split()
NEU_ADJ = "okay fine average decent ordinary simple".split()
POS_VERB = "loved liked enjoyed".split()
NEG_VERB = "hated disliked".split()
ADVERBS = "very really quite so truly rather".split()
FUNCTION = ("the was is and but i it we will come back overall would not recommend never again "
            "highly recommended to everyone . ! review of , about :").split()
SPECIAL = ["[PAD]", "[BOS]", "[EOS]", "[UNK]"]
NAT_DIRECTIONS = 64  # directions of the naturalness dimension
NAT_CLIP = 4.0       # |z| beyond this adds nothing more
PAD, BOS, EOS, UNK = 0, 1, 2, 3
POSITIVE = set(POS_ADJ + POS_VERB + ["recommend", "recommended"])
NEGATIVE = set(NEG_ADJ + NEG_VERB)


def _vocab() -> list[str]:
    words = list(SPECIAL)
    seen = set(words)
    groups = [FUNCTION, list(TOPICS), sorted({a for v in TOPICS.values() for a in v}), NAMES,
              POS_ADJ, NEG_ADJ, NEU_ADJ, POS_VERB, NEG_VERB, ADVERBS]
    for g in groups:
        for w in g:
            if w not in seen:
                seen.add(w)
                words.append(w)
    return words


def _distinct(ids: np.ndarray) -> np.ndarray:
    """Distinct non-negative values per row (negative entries are ignored)."""
    s = np.sort(ids, axis=1)
    new = np.ones_like(s, dtype=bool)
    new[:, 1:] = s[:, 1:] != s[:, :-1]
    return (new & (s >= 0)).sum(1)


class ToyWorld:
    """Prompts, tokenizer tables, the hidden grammar and the gold reward; deterministic in seed."""

    prompt_len = 11  # [BOS] + 10 words, the same for every prompt

    kind = "toy"
    dims = GOLD_DIMS  # gold's named dimensions, each a column of the generic tables
    TABLES = ("bigram_logp", "nat_mean", "nat_std")  # what `_corpus_tables` estimates and a cached world holds
    eos, pad = EOS, PAD  # the end and padding tokens (the Hugging Face world's come from its tokenizer)

    def __init__(self, cfg, seed: int, tables: dict | None = None):
        self.settings = cfg  # world.*
        self.seed = seed
        self.vocab = _vocab()
        self.tok2id = {w: i for i, w in enumerate(self.vocab)}
        topics = list(TOPICS)
        names = NAMES[: cfg.n_names] if cfg.n_names <= len(NAMES) else \
            NAMES + [f"{a}{b}" for a in NAMES for b in NAMES][: cfg.n_names - len(NAMES)]
        for n in names:  # extra names become extra vocabulary words
            if n not in self.tok2id:
                self.tok2id[n] = len(self.vocab)
                self.vocab.append(n)
        self.prompts = [(n, t, a) for t in topics for a in TOPICS[t] for n in names]
        ids = np.array([self._prompt_ids(p) for p in self.prompts], dtype=np.int64)
        self.prompt_ids = ids  # [n_prompts, prompt_len]
        self.prompt_topic = np.array([topics.index(t) for _, t, _ in self.prompts])
        self.prompt_aspect = np.array([self.tok2id[a] for _, _, a in self.prompts])
        V = len(self.vocab)
        # Lexicon tables over token ids.
        self.valence = np.zeros(V, dtype=np.int8)
        for w in POSITIVE:
            self.valence[self.tok2id[w]] = 1
        for w in NEGATIVE:
            self.valence[self.tok2id[w]] = -1
        self.is_aspect = np.zeros(V, dtype=bool)
        self.topic_aspects = np.zeros((len(topics), V), dtype=bool)
        for ti, t in enumerate(topics):
            for a in TOPICS[t]:
                self.is_aspect[self.tok2id[a]] = True
                self.topic_aspects[ti, self.tok2id[a]] = True
        self.not_id = self.tok2id["not"]
        rng = stream_rng(seed, "world.prompt_split")
        order = rng.permutation(len(self.prompts))
        n_eval = cfg.eval_prompts
        self.eval_prompt_idx = np.sort(order[:n_eval])
        self.train_prompt_idx = np.sort(order[n_eval:])
        # naturalness: fixed random orthonormal directions over the non-special words
        d = stream_rng(seed, "world.naturalness_directions").standard_normal((V - len(SPECIAL), NAT_DIRECTIONS))
        self.nat_dirs = np.zeros((V, NAT_DIRECTIONS), dtype=np.float32)
        self.nat_dirs[len(SPECIAL):] = np.linalg.qr(d)[0]
        # the one costly part, estimated from the grammar's texts: given when a cached world is rebuilt
        if tables is None:
            tables = self._corpus_tables(cfg.n_bigram, stream_rng(seed, "world.bigram_texts"))
        self.tables = {k: np.asarray(v, dtype=np.float32) for k, v in tables.items()}
        self.bigram_logp = self.tables["bigram_logp"]

    # ----- text -----
    def _prompt_ids(self, p) -> list[int]:
        name, topic, aspect = p
        words = f"review of the {name} {topic} , about the {aspect} :".split()
        return [BOS] + [self.tok2id[w] for w in words]

    def decode(self, ids) -> str:
        out = []
        for i in ids:
            i = int(i)
            if i in (PAD, BOS):
                continue
            if i == EOS:
                break
            out.append(self.vocab[i])
        return " ".join(out)

    def prompt_text(self, idx: int) -> str:
        return self.decode(self.prompt_ids[idx])

    def tokenizer(self):
        """A Hugging Face fast tokenizer with this world's word vocabulary."""
        from tokenizers import Tokenizer, models, pre_tokenizers
        from transformers import PreTrainedTokenizerFast

        tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(self.vocab)}, unk_token="[UNK]"))
        tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        return PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="[BOS]", eos_token="[EOS]",
                                       pad_token="[PAD]", unk_token="[UNK]")

    # ----- the hidden world model -----
    def _sentence(self, rng, topic: str, aspect: str, pol: int, first: bool) -> list[str]:
        asp = aspect if rng.random() < 0.55 else TOPICS[topic][rng.integers(8)]
        adjs = {1: POS_ADJ, -1: NEG_ADJ, 0: NEU_ADJ}[pol]
        adj = adjs[rng.integers(len(adjs))]
        adv = [ADVERBS[rng.integers(len(ADVERBS))]] if rng.random() < 0.35 else []
        kind = rng.integers(7)
        if kind == 0 or (kind == 6 and first):
            return ["the", asp, "was", *adv, adj, "."]
        if kind == 1:
            adj2 = adjs[rng.integers(len(adjs))]
            return ["the", asp, "is", adj, "and", adj2, "."] if adj2 != adj else ["the", asp, "is", adj, "."]
        if kind == 2:
            verb = {1: POS_VERB, -1: NEG_VERB, 0: ["liked"]}[pol]
            return ["i", verb[rng.integers(len(verb))], "the", asp, "."]
        if kind == 3:
            return ["the", topic, "was", *adv, adj, "."]
        if kind == 4 and pol == -1:
            return ["the", asp, "was", "not", POS_ADJ[rng.integers(len(POS_ADJ))], "."]
        if kind == 4:
            return ["overall", "it", "was", *adv, adj, "."]
        if kind == 5:
            return {1: [["we", "will", "come", "back", "!"], ["highly", "recommended", "!"],
                        ["i", "would", "recommend", "it", "to", "everyone", "."]][rng.integers(3)],
                    -1: [["never", "again", "."], ["i", "would", "not", "recommend", "it", "."]][rng.integers(2)],
                    0: ["it", "was", adj, "."]}[pol]
        # kind 6, not first: a contrast with the opposite polarity
        other = -pol if pol else (1 if rng.random() < 0.5 else -1)
        oadjs = {1: POS_ADJ, -1: NEG_ADJ}[other]
        return ["but", "the", asp, "was", oadjs[rng.integers(len(oadjs))], "."]

    def write(self, prompt_idx: int, rng, n_sentences: int | None = None) -> list[str]:
        """One review for a prompt, drawn from the hidden grammar (``n_sentences`` forces its length:
        beyond 5, longer than anything the world writes)."""
        _, topic, aspect = self.prompts[prompt_idx]
        stars = rng.choice(5, p=[0.12, 0.13, 0.2, 0.25, 0.3]) + 1
        p_pos = [0.1, 0.25, 0.45, 0.75, 0.9][stars - 1]
        p_neu = 0.3 if stars == 3 else 0.08
        k = rng.choice(5, p=[0.2, 0.35, 0.25, 0.13, 0.07]) + 1
        k = n_sentences or k
        words: list[str] = []
        for j in range(k):
            u = rng.random()
            pol = 0 if u < p_neu else (1 if u < p_neu + (1 - p_neu) * p_pos else -1)
            words += self._sentence(rng, topic, aspect, pol, first=(j == 0))
        return words

    def corpus(self, n: int, rng, prompt_pool=None) -> tuple[np.ndarray, np.ndarray]:
        """n (prompt index, response ids ending in [EOS], right-padded) pairs from the grammar."""
        pool = self.train_prompt_idx if prompt_pool is None else prompt_pool
        pidx = pool[rng.integers(len(pool), size=n)]
        texts = [[self.tok2id[w] for w in self.write(int(p), rng)] + [EOS] for p in pidx]
        T = max(len(t) for t in texts)
        out = np.full((n, T), PAD, dtype=np.int64)
        for i, t in enumerate(texts):
            out[i, : len(t)] = t
        return pidx, out

    def _corpus_tables(self, n: int, rng) -> dict[str, np.ndarray]:
        """Estimated from n of the grammar's texts: log P(next | previous), add-0.01 smoothed (':' starts a
        response), and the mean and standard deviation of each naturalness projection."""
        _, resp = self.corpus(n, rng, prompt_pool=np.arange(len(self.prompts)))
        V = len(self.vocab)
        prev = np.concatenate([np.full((len(resp), 1), self.tok2id[":"]), resp[:, :-1]], axis=1)
        m = resp != PAD
        counts = np.zeros((V, V))
        np.add.at(counts, (prev[m], resp[m]), 1.0)
        counts += 0.01
        proj = self._nat_projection(resp)
        return {"bigram_logp": np.log(counts / counts.sum(1, keepdims=True)).astype(np.float32),
                "nat_mean": proj.mean(0), "nat_std": proj.std(0)}

    def _nat_projection(self, resp: np.ndarray, words: np.ndarray | None = None) -> np.ndarray:
        """Each response's word frequencies (its words, [EOS] and padding excluded) on the naturalness directions,
        [M, NAT_DIRECTIONS]."""
        if words is None:
            words = (resp != PAD) & (resp != EOS) & (np.cumsum(resp == EOS, 1) == 0)
        out = np.zeros((len(resp), NAT_DIRECTIONS), dtype=np.float32)
        for t in range(resp.shape[1]):
            out += self.nat_dirs[resp[:, t]] * words[:, t, None]
        return out / np.maximum(words.sum(1), 1)[:, None]

    def naturalness(self, resp: np.ndarray, words: np.ndarray, decay: float) -> np.ndarray:
        """-sum_k k^-decay min(z_k^2, NAT_CLIP^2) / sum_k k^-decay, z_k the standardised projections: 0 for a
        response whose word mix is the grammar's average on every direction, about -1 for a typical one."""
        z = (self._nat_projection(resp, words) - self.tables["nat_mean"]) / self.tables["nat_std"]
        s = np.arange(1, NAT_DIRECTIONS + 1, dtype=np.float64) ** -decay
        return -(np.minimum(z.astype(np.float64) ** 2, NAT_CLIP ** 2) @ s) / s.sum()

    # ----- the gold reward -----
    def gold_dims(self, prompt_idx: np.ndarray, resp: np.ndarray, gcfg) -> dict[str, np.ndarray]:
        """Raw gold dimensions for responses [M, T] (ids, [EOS] then [PAD] after the end)."""
        resp = np.asarray(resp)
        prompt_idx = np.asarray(prompt_idx)
        M, T = resp.shape
        is_eos = resp == EOS
        has_eos = is_eos.any(1)
        end = np.where(has_eos, is_eos.argmax(1), T)  # index of [EOS] (or T if truncated)
        pos = np.arange(T)[None, :]
        words = pos < end[:, None]                       # response words, [EOS] excluded
        scored = pos <= np.minimum(end, T - 1)[:, None]  # fluency also scores the [EOS]
        scored &= (pos < end[:, None]) | has_eos[:, None]
        n_words = words.sum(1)

        val = self.valence[resp].astype(np.int64) * words
        prev = np.concatenate([np.full((M, 1), self.tok2id[":"]), resp[:, :-1]], axis=1)
        val = np.where(prev == self.not_id, -val, val)
        # Saying "great" five times is no more positive than saying it once: count distinct words.
        sentiment = np.log1p(_distinct(np.where(val > 0, resp, -1))) - np.log1p(_distinct(np.where(val < 0, resp, -1)))

        lp = self.bigram_logp[prev, resp] * scored
        fluency = lp.sum(1) / np.maximum(scored.sum(1), 1)

        asp = self.is_aspect[resp] & words
        mention = ((resp == self.prompt_aspect[prompt_idx][:, None]) & words).any(1)
        on_topic = self.topic_aspects[self.prompt_topic[prompt_idx]][np.arange(M)[:, None], resp] & asp
        off_share = (asp & ~on_topic).sum(1) / np.maximum(asp.sum(1), 1)
        relevance = mention.astype(float) - off_share

        length = -((n_words - gcfg.length_target) ** 2)
        diversity = _distinct(np.where(words, resp, -1)) / np.maximum(n_words, 1)
        naturalness = self.naturalness(resp, words, gcfg.naturalness_decay)
        return {"sentiment": sentiment.astype(float), "fluency": fluency.astype(float),
                "relevance": relevance.astype(float), "length": length.astype(float),
                "diversity": diversity.astype(float), "naturalness": naturalness.astype(float), "n_words": n_words}

    def gold(self, prompt_idx, resp, gcfg, norm: tuple[float, float] | None = None
             ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Weighted gold total and its dimensions, under the weights of a GoldConfig.

        With ``norm`` = (mean, std) of gold under pi0 the total is in pi0 standard deviations."""
        d = self.gold_dims(prompt_idx, resp, gcfg)
        total = sum(getattr(gcfg, f"w_{k}") * d[k] for k in GOLD_DIMS)
        if norm is not None:
            total = (total - norm[0]) / norm[1]
        return total, d

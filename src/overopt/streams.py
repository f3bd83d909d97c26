"""Every random stream of a run, named in one table: one name, one purpose, one id.

    rng = stream_rng(seed, "pairs.prompts")             # numpy Generator of SeedSequence([seed, 4])
    s = stream_seed(seed, "proxy.init", hidden, layers)  # an int seed from SeedSequence([seed, 20, hidden, layers])

A stream is numpy's SeedSequence of the run's seed, the stream's id and the parts that index it (a step, a size);
`stream_seed` draws one integer from it for the code that wants a seed (torch generators, `bootstrap_rows`). Code
names its stream (`pipeline.run.Run.seed` and `Run.rng` take the name); no number is written anywhere else, and
`tests/test_streams.py` fails on a name used for two purposes' ids, an id given to two names (beyond `LEGACY_SHARED`),
or a stream drawn by number.

The ids are those the code used before the table existed, so every table a run writes is unchanged. Seven of them
were given to more than one purpose; their streams stay as they were (a new id would change the smoke and default
runs' tables) and `LEGACY_SHARED` lists them, so that no new sharing can join them. Four pairs are the very same
stream (same id, same parts): world.naturalness_directions and pi0.corpus; calibration.order and daa.trainer;
daa.eval_sampling and iterated.pair_prompts at equal steps; length.long_texts and learned.resamples.
"""
from __future__ import annotations

import numpy as np

STREAMS = {
    # the world
    "world.prompt_split": 1,              # which prompts are held out (toy and Hugging Face world)
    "world.bigram_texts": 2,              # grammar texts the toy world's bigram model (gold fluency) is estimated on
    "world.naturalness_directions": 3,    # the toy world's 64 random word-mix directions
    # pi0, its pairs and its pool
    "pi0.corpus": 3,                      # the corpus texts pi0 (and a pretrained proxy's backbone) learns from
    "pairs.prompts": 4,                   # the prompts of the preference pairs, train and validation
    "pairs.label_noise": 5,               # which labels rm.label_noise flips
    "pi0.init": 10,
    "pi0.data_order": 11,
    "pairs.sampling": 12,                 # the two pi0 responses of every pair
    "proxy.init": 20,                     # a proxy's initialisation (parts: hidden, layers[, member])
    "proxy.data_order": 21,               # a proxy's minibatch order (parts: hidden, layers, n[, member])
    "proxy.bagging": 22,                  # a bagged ensemble member's resample of the pairs (part: member)
    "pool.sampling": 30,                  # the best-of-n pool
    # studies
    "bon.resamples": 40,                  # prompt resamples of every best-of-n curve (the same for every proxy)
    "tilt.resamples": 41,
    "report.sample_prompts": 50,          # the prompts whose texts samples.csv shows
    "rl.trainer": 60,                     # an RL curve's sampling and minibatch generator
    "rl.prompts": 61,                     # an RL curve's training prompts
    "rl.eval_sampling": 62,               # an RL curve's evaluation responses (part: step)
    "rl.resamples": 63,                   # prompt resamples of an RL curve's evaluations
    "pi0_other.baseline": 64,             # another pi0 size's baseline responses (parts: hidden, layers)
    "calibration.order": 70,              # which side of each validation pair a proxy's temperature fit sees first
    "daa.trainer": 70,
    "iterated.proxy_init": 70,            # (part: round)
    "ensembles.resamples": 71,
    "daa.eval_sampling": 71,              # (part: step)
    "iterated.pair_prompts": 71,          # (part: step)
    "daa.resamples": 72,
    "iterated.pair_sampling": 72,         # (part: step)
    "iterated.proxy_data_order": 73,      # (part: round)
    "length.long_texts": 80,
    "learned.resamples": 80,
    "length.resamples": 81,
    "multi.resamples": 90,
    "budget.labels": 90,                  # (parts: curve, repeat, budget, strategy, judge)
    "multi.pareto_weights": 91,
    "budget.bon_choice": 91,              # (parts: proxy params, m, repeat)
    "aif.resamples": 95,
    "active.start": 100,                  # the random pairs both strategies start from
    "active.random_pick": 101,            # the random strategy's picks
    "active.resamples": 102,
}
# ids given to more than one purpose before the table existed, each with its names (kept: see the module's text)
LEGACY_SHARED = {
    3: ("world.naturalness_directions", "pi0.corpus"),
    70: ("calibration.order", "daa.trainer", "iterated.proxy_init"),
    71: ("ensembles.resamples", "daa.eval_sampling", "iterated.pair_prompts"),
    72: ("daa.resamples", "iterated.pair_sampling"),
    80: ("length.long_texts", "learned.resamples"),
    90: ("multi.resamples", "budget.labels"),
    91: ("multi.pareto_weights", "budget.bon_choice"),
}


def stream_rng(seed: int, name: str, *parts: int) -> np.random.Generator:
    """The named stream as a numpy Generator (a KeyError names an unknown stream)."""
    return np.random.default_rng([seed, STREAMS[name], *parts])


def stream_seed(seed: int, name: str, *parts: int) -> int:
    """One integer seed drawn from the named stream."""
    return int(stream_rng(seed, name, *parts).integers(2 ** 31))

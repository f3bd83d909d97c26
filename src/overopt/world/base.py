"""What every stage may ask of a world: the `World` protocol, implemented by the toy world (`world.toy`) and the
Hugging Face world (`world.hf`). Code past the world reads only this; building a world's models (pi0, the proxies)
is `pipeline.worlds`' one builder per world, and the generic tables carry a column per dimension in ``dims``."""
from __future__ import annotations

from typing import Protocol

import numpy as np


class World(Protocol):
    kind: str                     # "toy" or "hf"
    dims: tuple[str, ...]         # gold's named dimensions (toy: config.GOLD_DIMS; a Hugging Face gold has none)
    eos: int                      # the end token that closes every response
    pad: int                      # the padding token (prompts are left-padded, responses right-padded)
    prompt_len: int               # tokens per prompt, padding included
    prompt_ids: np.ndarray        # [prompts, prompt_len]
    train_prompt_idx: np.ndarray  # prompts that label pairs and train RL
    eval_prompt_idx: np.ndarray   # held-out prompts: best-of-n and every evaluation

    def gold(self, prompt_idx, resp, gcfg, norm: tuple[float, float] | None = None
             ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Gold of responses [M, T] (normalised with ``norm``) and each of its named dimensions (``dims``, raw),
        plus ``n_words``."""

    def decode(self, ids) -> str:
        """A response's text (up to its end token)."""

    def prompt_text(self, idx: int) -> str:
        """A prompt's text."""

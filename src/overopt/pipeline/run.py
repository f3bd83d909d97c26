"""The context of one `overopt run`: its config, cache, device, seeds, progress bars, stage timings and output
folder. Every stage and study receives it; it holds no artifacts (those are `pipeline.artifacts`)."""
from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..config import Config
from ..errors import TrainingError
from ..streams import stream_rng, stream_seed
from .cache import Cache, default_cache_dir
from .writers import write_or_drop


class Run:
    """Holds the config, cache, device and timings of one `overopt run`."""

    def __init__(self, cfg: Config, out: Path, quiet: bool = False):
        self.cfg = cfg
        self.out = Path(out)
        self.quiet = quiet
        self.cache = Cache(Path(cfg.run.cache_dir) if cfg.run.cache_dir else default_cache_dir())
        want = cfg.run.device
        self.device = torch.device("cuda" if want == "cuda" or (want == "auto" and torch.cuda.is_available())
                                   else "cpu")
        if cfg.run.threads:
            torch.set_num_threads(cfg.run.threads)
        self.timings: dict[str, dict] = {}
        self.written: dict[str, pd.DataFrame | None] = {}  # each table as last written

    def log(self, msg: str) -> None:
        if not self.quiet:
            tqdm.write(msg)

    def bar(self, total: int, desc: str):
        return tqdm(total=total, desc=desc, disable=self.quiet, leave=False, dynamic_ncols=True)

    @contextmanager
    def stage(self, name: str):
        t = time.time()
        info = {"cached": False}
        yield info
        info["seconds"] = round(time.time() - t, 2)
        self.timings[name] = info
        self.log(f"[{name}] {'cached' if info['cached'] else 'built'} in {info['seconds']:.1f}s")

    def seed(self, stream: str, *parts: int) -> int:
        """An integer seed from the named stream of this run (`streams.STREAMS`)."""
        return stream_seed(self.cfg.run.seed, stream, *parts)

    def rng(self, stream: str, *parts: int) -> np.random.Generator:
        """The named stream of this run as a numpy Generator."""
        return stream_rng(self.cfg.run.seed, stream, *parts)

    def write(self, name: str, df: pd.DataFrame | None) -> None:
        """Write a table into the output folder as soon as it is complete (None: remove a stale one); a table
        already written as it is is not written again."""
        if name in self.written and self.written[name] is df:
            return
        write_or_drop(df, self.out, name)
        self.written[name] = df


@contextmanager
def stage_error(stage: str):
    """A `TrainingError` raised inside names its stage: "pi0 training: step 3: loss is not finite"."""
    try:
        yield
    except TrainingError as e:
        e.args = (f"{stage}: {e}",)
        raise

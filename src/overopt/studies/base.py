"""What a study is: one module that declares when it runs, which earlier studies it reads, and the tables it
returns. `studies.registry.STUDIES` lists them in the order they run; `experiment.run_experiment` loops over it.

A study's ``run(run, art, before)`` receives the run's context (`pipeline.run.Run`: config, cache, seeds, device),
the shared artifacts (`pipeline.artifacts.Artifacts`) and the `Output` of each study it names in ``needs``, and
returns its own `Output`. The loop writes every table the study declares (removing a stale one it did not
return), so a study never writes files itself except to save partial progress before an error.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import pandas as pd

from ..config import Config


@dataclass(frozen=True)
class Output:
    tables: dict[str, pd.DataFrame | None]                  # by table name (the file is <name>.csv)
    boots: dict = field(default_factory=dict)               # {curve: bootstrap replicates of its gold gain}
    samples: dict = field(default_factory=dict)             # {curve: its evaluation responses [points, M, T]}
    labellers: dict = field(default_factory=dict)           # {name: Proxy} other studies may label pairs with


@dataclass(frozen=True)
class Study:
    name: str
    run: Callable                                           # (run, art, before: {name: Output}) -> Output
    tables: tuple[str, ...]
    enabled: Callable[[Config], bool] = lambda cfg: True
    needs: tuple[str, ...] = ()                             # earlier studies whose Output it reads

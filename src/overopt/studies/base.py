"""What a study is: one module that declares, in its `Study`, everything it adds to a run: when it runs, the
earlier studies it reads, the tables it writes, its config section, the claims it checks, the curves it gives the
fits (and their prompt resamples) and its report section. `studies.registry.STUDIES` lists them in the order they
run; `experiment.run_experiment` loops over it and the fits study reads the declarations from it.

A study's ``run(run, art, before)`` receives the run's context (`pipeline.run.Run`: config, cache, seeds, device),
the shared artifacts (`pipeline.artifacts.Artifacts`) and the `Output` of each study it names in ``needs``, and
returns its own `Output`. The loop writes every table the study declares (removing a stale one it did not
return), so a study never writes files itself except to save partial progress before an error.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from ..config import Config
from ..laws.curves import CurveId
from ..models.reward import Proxy


@dataclass(frozen=True)
class Output:
    tables: dict[str, pd.DataFrame | None]                            # by table name (the file is <name>.csv)
    boots: dict[CurveId, np.ndarray] = field(default_factory=dict)    # each curve's gold gain on the prompt resamples
    samples: dict[CurveId, np.ndarray] = field(default_factory=dict)  # each curve's evaluation responses [points, M, T]
    labellers: dict[CurveId, Proxy] = field(default_factory=dict)     # reward models later studies may label pairs with


@dataclass(frozen=True)
class Study:
    name: str
    run: Callable                      # (run, art, before: {name: Output}) -> Output
    tables: tuple[str, ...]            # the tables it writes (and removes when it does not run)
    section: str | None = None         # its config section, when it has settings (a switch `enabled` there runs it)
    enabled: Callable[[Config], bool] | None = None  # when it runs; None: its section's switch, else always
    needs: tuple[str, ...] = ()        # earlier studies whose Output it reads
    claims: tuple[Callable, ...] = ()  # `laws.claims` functions: (ClaimInputs) -> claims.csv rows
    fits: Callable | None = None       # (cfg, its Output) -> fits.csv rows of its curves
    replicates: Callable | None = None  # (cfg, its Output) -> {CurveId: {quantity: values on the prompt resamples}}
    report: str = ""                   # its module under report/sections/ (default: its name)

    def on(self, cfg: Config) -> bool:
        if self.enabled is not None:
            return self.enabled(cfg)
        switch = getattr(getattr(cfg, self.section), "enabled", True) if self.section else True
        return bool(switch)

    @property
    def report_module(self) -> str:
        return self.report or self.name


def check_order(studies) -> None:
    """Every study's ``needs`` names a study that runs before it; every name is registered once."""
    seen = set()
    for s in studies:
        if s.name in seen:
            raise ValueError(f"study '{s.name}' is registered twice")
        later = [n for n in s.needs if n not in seen]
        if later:
            raise ValueError(f"study '{s.name}' needs {later}, which do not run before it")
        seen.add(s.name)

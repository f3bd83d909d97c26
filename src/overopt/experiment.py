"""One run: the core artifacts (world -> pi0 -> labelled pairs -> proxy RMs -> best-of-n pool), then every
enabled study in order (`studies.registry`), then the report. Every built artifact is cached under its content
hash, written atomically, so an interrupted run started again reuses what was finished."""
from __future__ import annotations

import time
from pathlib import Path

import torch
import yaml

from .config import Config
from .errors import ConfigError
from .pipeline.core import build_artifacts
from .pipeline.run import Run
from .pipeline.tracking import require, track
from .pipeline.writers import claim_out, write_manifest
from .report.page import write_report
from .studies.registry import STUDIES


def run_experiment(cfg: Config, out: str | Path, quiet: bool = False, overwrite: bool = False) -> Path:
    """Run the whole pipeline into ``out`` (refused if it holds another run, unless ``overwrite``: see
    `pipeline.writers.claim_out`); returns the output directory."""
    out = Path(out)
    for backend in cfg.run.track:  # a missing backend is said now, not after the run
        require(backend)
    if cfg.run.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"config key 'run.device' is cuda, but torch {torch.__version__} sees no CUDA device here")
    claim_out(out, cfg.hash, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    run = Run(cfg, out, quiet)
    started = time.time()
    write_manifest(run, "running", started)  # first: a folder with anything in it has a manifest naming its run
    (out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    torch.manual_seed(cfg.run.seed)
    art = build_artifacts(run)
    outputs = {}
    for study in STUDIES:
        if not study.on(cfg):
            for name in study.tables:  # a table an earlier run with this study on left behind is not this run's
                run.write(name, None)
            continue
        result = study.run(run, art, {n: outputs[n] for n in study.needs if n in outputs})
        for name in study.tables:
            run.write(name, result.tables.get(name))
        outputs[study.name] = result
    write_manifest(run, "complete", started)  # every table is written; the report only reads them
    with run.stage("report"):
        write_report(out)
    if cfg.run.track:
        with run.stage("tracking") as st:
            st.update(track(out, cfg.run.track, config=cfg.to_dict(), wandb_mode=cfg.run.wandb_mode,
                            wandb_project=cfg.run.wandb_project))
    write_manifest(run, "complete", started)
    return out

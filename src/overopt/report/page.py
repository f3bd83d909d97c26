"""The report: one self-contained HTML page (plots embedded, and saved in plots/) built from a run directory's
tables alone, torch-free. It opens with what a reader wants first, the headline figure and which of the papers'
claims hold on this run; then each study's section (report/sections/, one module per study); the run's stage
timings come last.

    write_report("runs/default")   # runs/default/report.html
"""
from __future__ import annotations

import html
from importlib import import_module
from pathlib import Path

import pandas as pd

from ..errors import ReportError
from .kit import CSS, html_table, written_rows
from .page_context import Page

# The page in a reader's order (headline figure and claims first, timings last), not the run's. Each entry names a
# study: its section (report/sections/<study>.py's `section`), or "<study>.<function>" for another part of it.
# tests/test_registry.py checks the entries against the studies of `studies.registry` (which this module does not
# import: the report loads without torch).
OPENING = ("bon.headline", "fits.claims_summary")
ORDER = ("bon", "draws", "learned", "rl", "grpo", "bon.dimensions", "daa", "length", "multi", "aif", "active",
         "ensembles.calibration", "ensembles", "rl.forecast", "monitor", "budget", "detectors", "fits.claims",
         "bon.samples")
INTRO = ("<p class='note'>Synthetic gold-reward setup (Gao et al. 2022): proxies of several sizes learn from "
         "gold-labelled pairs of pi0 samples; best-of-n against each proxy is scored by gold. Gains are over pi0; gold "
         "is in units of its standard deviation under pi0. KL is the analytic best-of-n bound ln n - (n-1)/n.</p>")


def part(entry: str):
    """The function an entry of the page names: (page) -> its HTML."""
    study, _, name = entry.partition(".")
    return getattr(import_module(f"{__package__}.sections.{study}"), name or "section")


def run_info(out: Path, manifest: dict) -> list[str]:
    """The manifest: status, wall time, device, config hash, seed, memory, versions and each stage's time."""
    if not manifest:
        return []
    stages = pd.DataFrame([{"stage": k, "seconds": v.get("seconds"), "cached": v.get("cached")}
                           for k, v in manifest.get("stages", {}).items()])
    esc = lambda k: html.escape(str(manifest.get(k)))  # noqa: E731
    parts = ["<h2>Run</h2>", f"<p>status <b>{esc('status')}</b>, wall {manifest.get('wall_s')} s, device "
             f"{esc('device')}, config {manifest.get('config_hash')}, seed {manifest.get('seed')}, peak RSS "
             f"{manifest.get('peak_rss_mb', '?')} MB, overopt {manifest.get('overopt')}, torch {manifest.get('torch')}"
             "</p>"]
    written = written_rows(manifest)
    if written:  # a table a complete run does not list is not this run's
        foreign = sorted(f.stem for f in out.glob("*.csv") if f.stem not in written)
        if foreign:
            parts.append(f"<p class='note'>Not written by this run (config {manifest.get('config_hash')}): "
                         f"{html.escape(', '.join(f + '.csv' for f in foreign))}; their figures may come from "
                         "another run.</p>")
    return parts + ([html_table(stages)] if len(stages) else [])


def write_report(out: str | Path) -> Path:
    """Rebuild ``report.html`` and ``plots/*.png`` in ``out`` from its tables."""
    out = Path(out)
    if not out.is_dir():
        raise ReportError(f"{out} is not a directory")
    page = Page(out)
    parts = [f"<html><head><meta charset='utf-8'><title>overopt report</title><style>{CSS}</style></head><body>",
             "<h1>Reward-model overoptimization</h1>", INTRO]
    for entry in OPENING + ORDER:
        parts += part(entry)(page)
    parts += run_info(out, page.manifest) + ["</body></html>"]
    path = out / "report.html"
    path.write_text("\n".join(parts))
    return path

"""Every study, in the order a run runs them. Adding a study: write studies/<name>.py with a `STUDY` (see
`studies.base`), its report section in report/sections/<name>.py, and list both (here and in `report.page`)."""
from __future__ import annotations

from . import active, aif, bon, budget, daa, detectors, draws, ensembles, fits, learned, length, monitor, multi, rl

STUDIES = [bon.STUDY, draws.STUDY, learned.STUDY, length.STUDY, rl.STUDY, ensembles.STUDY, monitor.STUDY,
           budget.STUDY, detectors.STUDY, multi.STUDY, aif.STUDY, active.STUDY, daa.STUDY, fits.STUDY]

"""Every study, in the order a run runs them: the one list. Adding a study: write studies/<name>.py ending in its
`Study` (tables, config section, needs, claims, fits), its report section report/sections/<name>.py, and one line
here; the report's reading order (`report.page.ORDER`) names it too, and tests/test_registry.py checks that the
two agree, that every ``needs`` runs earlier, and that every table, section and claim belongs to a study."""
from __future__ import annotations

from . import active, aif, bon, budget, daa, detectors, draws, ensembles, grpo, learned, length, monitor, multi, rl
from .base import check_order
from .fits import fits_study

BEFORE_FITS = (bon.STUDY, draws.STUDY, learned.STUDY, length.STUDY, rl.STUDY, grpo.STUDY, ensembles.STUDY, monitor.STUDY,
               budget.STUDY, detectors.STUDY, multi.STUDY, aif.STUDY, active.STUDY, daa.STUDY)
STUDIES = (*BEFORE_FITS, fits_study(BEFORE_FITS))  # the fits study reads every declaration before it
check_order(STUDIES)

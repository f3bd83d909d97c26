"""The papers' claims, measured on a run's tables: `claims.csv`, one row per claim and curve.

    rows = claim_table([bon_claims, rl_claims], ClaimInputs({"bon": bon, "rl": rl, "fits": fits}))

Each study declares the claims it checks (`studies.base.Study.claims`), one function from the run's tables to rows
of one shape (`base`); the fits study gathers them in the registry's order. A reproduction that disagrees with a
paper says where: each row states what was measured, what it is compared with, whether the claim holds on this run,
and where its support over the paired prompt resamples leaves it open ("inconclusive").
"""
from .base import (AGREE, CLAIM_COLUMNS, FORM_R2, ClaimInputs, claim_table, family_replicates, paired_share,
                   verdict, verdict_counts)
from .daa import daa_claims
from .ensembles import ensemble_claims
from .grpo import grpo_claims
from .gao import bon_claims, frontier_gap, inversions, rl_claims
from .monitor import monitor_claims
from .scaling import draw_claims, draw_trends, scaling_claims

__all__ = [n for n in dir() if not n.startswith("_")]

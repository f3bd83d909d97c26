"""The laws, torch-free: Gao et al.'s functional forms fitted with bootstrap intervals (`fits`), forecasts of the
peak from a partial curve (`forecast`) and the papers' claims checked on a run's tables (`claims`)."""
from .fits import (ALTERNATIVES, FORMS, FitError, FitResult, Scaling, fit, fit_scaling, fit_shared_alpha,
                   fit_gamma, gamma, iterated_prediction, leverage, peak, predict, replicate_fits)
from .forecast import FORECAST_COLUMNS, forecast_table

__all__ = [n for n in dir() if not n.startswith("_")]

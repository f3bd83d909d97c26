"""The functional forms of Gao et al. 2022 in d = sqrt(KL), fitted with bootstrap intervals.

    r = fit(kl, gain, "bon")      # KL in nats
    r.alpha, r.beta, r.r2, r.kl_peak, r.gain_peak, r.alpha_lo, r.alpha_hi

Every form is linear in (alpha, beta), so each fit is one least-squares solve.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as scipy_stats

from ..errors import FitError
from ..stats import interval


def _xlogx(d: np.ndarray) -> np.ndarray:
    return np.where(d > 0, d * np.log(np.where(d > 0, d, 1.0)), 0.0)


# form -> (basis for alpha, basis for -beta), both functions of d
FORMS = {
    "bon": (lambda d: d, lambda d: d * d),                      # Gao eq. 1: d (alpha - beta d)
    "rl": (lambda d: d, _xlogx),                                # Gao eq. 2: d (alpha - beta ln d)
    "log1p": (lambda d: d, lambda d: d * np.log1p(d)),          # rejected: d (alpha - beta ln(1+d))
    "quad_kl": (lambda d: d * d, lambda d: d ** 4),             # rejected: alpha KL - beta KL^2
}
# The alternatives Gao et al. considered and rejected for each chosen form.
ALTERNATIVES = {"bon": ("log1p", "quad_kl"), "rl": ("log1p", "quad_kl")}


def predict(form: str, alpha: float, beta: float, kl) -> np.ndarray:
    d = np.sqrt(np.asarray(kl, dtype=np.float64))
    fa, fb = FORMS[form]
    return alpha * fa(d) - beta * fb(d)


def peak(form: str, alpha: float, beta: float) -> tuple[float, float]:
    """(KL at the gold peak, gain at the peak); inf where the form never turns down."""
    if not (beta > 0 and alpha > 0) and form != "rl":
        return math.inf, math.inf
    if form == "bon":      # d* = alpha / (2 beta), R* = alpha^2 / (4 beta)
        d = alpha / (2 * beta)
        return d * d, alpha * alpha / (4 * beta)
    if form == "rl":       # d* = exp(alpha/beta - 1), R* = beta d*
        if beta <= 0:
            return math.inf, math.inf
        e = alpha / beta - 1
        if e > 300:
            return math.inf, math.inf
        d = math.exp(e)
        return d * d, beta * d
    if form == "quad_kl":  # KL* = alpha / (2 beta)
        return alpha / (2 * beta), alpha * alpha / (4 * beta)
    # log1p: alpha = beta (ln(1+d) + d/(1+d)), solved by bisection (the right side increases in d)
    f = lambda d: beta * (math.log1p(d) + d / (1 + d)) - alpha  # noqa: E731
    hi = 1.0
    while f(hi) < 0:
        hi *= 2
        if hi > 1e12:
            return math.inf, math.inf
    lo = 0.0
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if f(mid) < 0 else (lo, mid)
    d = (lo + hi) / 2
    return d * d, float(predict("log1p", alpha, beta, d * d))


def gamma(form: str, gold: tuple[float, float], proxy: tuple[float, float], kl_max: float, by: str = "proxy",
          points: int = 2001) -> float:
    """One curve's degree of overoptimization: the area between its fitted proxy curve g and fitted gold curve f,
    over the area under the proxy curve (``by="proxy"``),

        gamma = integral_0^k |f(d) - g(d)| dd / integral_0^k g(d) dd,

    both fits of ``form`` given as (alpha, beta), in d = sqrt(KL) (the variable of Gao et al.'s forms), k the
    square root of ``kl_max`` (the curve's largest KL). 0 when gold gains what the proxy gains; 1 when the gap is
    as large as the proxy's whole gain. Kim et al. 2025 ("Rethinking reward model evaluation through the lens of
    reward overoptimization", arXiv 2505.12763) divide by the area under gold instead (``by="gold"``), which has no
    sign to stand on once gold falls below pi0 over the curve: that version is NaN where gold's area is not
    positive, as the proxy's version is where the proxy's is not. The trapezoid rule on ``points`` values of d."""
    if by not in ("proxy", "gold"):
        raise ValueError(f"gamma is normalised by the proxy's or gold's area, not '{by}'")
    d = np.linspace(0.0, math.sqrt(max(kl_max, 0.0)), points)
    f = predict(form, *gold, d * d)
    g = predict(form, *proxy, d * d)
    trapezoid = lambda y: float(((y[1:] + y[:-1]) / 2 * np.diff(d)).sum())  # noqa: E731
    area = trapezoid(g if by == "proxy" else f)
    if not (area > 0 and math.isfinite(area)):
        return math.nan
    return trapezoid(np.abs(f - g)) / area


def fit_gamma(gold: "FitResult", proxy: "FitResult", kl) -> float:
    """`gamma` of one curve from its gold and proxy fits (of one form), over the curve's KL range."""
    return gamma(gold.form, (gold.alpha, gold.beta), (proxy.alpha, proxy.beta), float(np.max(kl)))


@dataclass
class FitResult:
    form: str
    alpha: float
    beta: float
    r2: float
    kl_peak: float
    gain_peak: float
    alpha_lo: float = math.nan
    alpha_hi: float = math.nan
    beta_lo: float = math.nan
    beta_hi: float = math.nan
    kl_peak_lo: float = math.nan
    kl_peak_hi: float = math.nan
    gain_peak_lo: float = math.nan
    gain_peak_hi: float = math.nan
    n_points: int = 0
    baseline: float = 0.0  # the fitted reward at KL 0 (a free intercept); 0 where gains were given

    def predict(self, kl) -> np.ndarray:
        return predict(self.form, self.alpha, self.beta, kl)

    def to_dict(self) -> dict:
        return asdict(self)


def _check(kl, gain, intercept: bool = False) -> tuple[np.ndarray, np.ndarray]:
    kl = np.asarray(kl, dtype=np.float64).ravel()
    gain = np.asarray(gain, dtype=np.float64).ravel()
    if len(kl) != len(gain):
        raise FitError(f"kl has {len(kl)} values but gain has {len(gain)}")
    if not np.all(np.isfinite(kl)) or not np.all(np.isfinite(gain)):
        raise FitError("kl and gain must be finite numbers (found NaN or infinity)")
    if np.any(kl < 0):
        raise FitError(f"KL must be >= 0 (found {kl.min():.4g})")
    need = 4 if intercept else 3
    if len(kl) < need:
        raise FitError(f"too few points to fit: {len(kl)} (need at least {need})")
    if np.count_nonzero(kl > 0) < 2:
        raise FitError("need at least 2 points with KL > 0 to fit")
    return kl, gain


def _design(form: str, kl: np.ndarray, intercept: bool) -> np.ndarray:
    """The least-squares design: the form's alpha and -beta bases in d = sqrt(KL), and a column of ones."""
    d = np.sqrt(kl)
    fa, fb = FORMS[form]
    return np.stack([fa(d), -fb(d)] + ([np.ones_like(d)] if intercept else []), 1)


def leverage(form: str, kl, intercept: bool = False) -> np.ndarray:
    """The least-squares fit's leverages: the diagonal of the hat matrix X (X'X)^-1 X' of ``form``'s design (each
    point's weight in its own fitted value; a residual's variance is sigma^2 (1 - h))."""
    q = np.linalg.qr(_design(form, np.asarray(kl, dtype=np.float64), intercept))[0]
    return (q * q).sum(1)


def _lstsq(form: str, kl, Y, intercept: bool) -> tuple[np.ndarray, np.ndarray]:
    """([B, 2 or 3] (alpha, beta[, baseline]), [B] R^2): ``form`` fitted to each row of ``Y`` ([B, len(kl)]) by
    least squares, every row in one solve (R^2 NaN for a flat row)."""
    X = _design(form, np.asarray(kl, dtype=np.float64), intercept)
    Y = np.asarray(Y, dtype=np.float64)
    coef = np.linalg.lstsq(X, Y.T, rcond=None)[0]
    ss_tot = ((Y - Y.mean(1, keepdims=True)) ** 2).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = np.where(ss_tot > 0, 1 - ((Y - (X @ coef).T) ** 2).sum(1) / ss_tot, np.nan)
    return coef.T, r2


def _solve(form: str, kl: np.ndarray, gain: np.ndarray, intercept: bool = False) -> tuple[float, float, float, float]:
    """(alpha, beta, R^2, baseline): least squares; with ``intercept`` the reward at KL 0 is a free parameter
    (a trainer's log has no exact starting value, only noisy early batches)."""
    coef, r2 = _lstsq(form, kl, gain[None], intercept)
    return float(coef[0, 0]), float(coef[0, 1]), float(r2[0]), float(coef[0, 2]) if intercept else 0.0


def replicate_fits(form: str, kl, reps, intercept: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """([B, 2] (alpha, beta), [B] R^2): ``form`` fitted to each row of ``reps`` ([B, len(kl)], a curve re-measured
    on resampled prompts), every replicate in one least-squares solve (R^2 NaN for a flat replicate)."""
    coef, r2 = _lstsq(form, kl, reps, intercept)
    return coef[:, :2], r2


def fit(kl, gain, form: str = "bon", boot_gains=None, n_boot: int = 200, ci: float = 0.9,
        seed: int = 0, intercept: bool = False) -> FitResult:
    """Fit gain = form(sqrt(kl)) by least squares, with bootstrap intervals.

    ``boot_gains`` ([B, len(kl)]: the curve re-measured on resampled prompts) gives intervals
    from refitting each replicate; without it, residuals are resampled (n_boot times). ``intercept``: fit
    reward = baseline + form(sqrt(kl)) instead, the baseline (``FitResult.baseline``) estimated with the rest.
    """
    if form not in FORMS:
        raise FitError(f"unknown form '{form}' (choose from {', '.join(FORMS)})")
    kl, gain = _check(kl, gain, intercept)
    alpha, beta, r2, base = _solve(form, kl, gain, intercept)
    kp, gp = peak(form, alpha, beta)
    if boot_gains is None and n_boot < 1:  # the point fit alone, no intervals
        return FitResult(form, alpha, beta, r2, kp, gp, n_points=int(len(kl)), baseline=base)
    if boot_gains is not None:
        reps = np.asarray(boot_gains, dtype=np.float64)
        if reps.ndim != 2 or reps.shape[1] != len(kl):
            raise FitError(f"boot_gains must be [replicates, {len(kl)}], got {reps.shape}")
    else:
        rng = np.random.default_rng(seed)
        fitted = base + predict(form, alpha, beta, kl)
        resid = gain - fitted
        reps = fitted + resid[rng.integers(len(kl), size=(n_boot, len(kl)))]
    coefs = replicate_fits(form, kl, reps, intercept)[0]
    peaks = np.array([peak(form, a, b) for a, b in coefs])
    lo_hi = lambda x: interval(x, ci, None) if np.all(np.isfinite(x)) else (  # noqa: E731
        interval(x[np.isfinite(x)], ci, None)[0] if np.isfinite(x).any() else math.inf, math.inf)
    (a_lo, a_hi), (b_lo, b_hi) = interval(coefs[:, 0], ci, None), interval(coefs[:, 1], ci, None)
    (k_lo, k_hi), (g_lo, g_hi) = lo_hi(peaks[:, 0]), lo_hi(peaks[:, 1])
    return FitResult(form, alpha, beta, r2, kp, gp, float(a_lo), float(a_hi), float(b_lo), float(b_hi),
                     float(k_lo), float(k_hi), float(g_lo), float(g_hi), int(len(kl)), base)


# A trend is smooth when a line in log10(axis) explains it (R^2) and it is monotone (Spearman), both at least this.
SMOOTH_R2, SMOOTH_SPEARMAN = 0.8, 0.9


def is_smooth(r2, spearman):
    """Gao et al.'s "smooth, near log-linear" as a test: R^2 >= SMOOTH_R2 and |Spearman| >= SMOOTH_SPEARMAN
    (arrays element-wise; NaN is not smooth)."""
    return (np.asarray(r2) >= SMOOTH_R2) & (np.abs(np.asarray(spearman)) >= SMOOTH_SPEARMAN)


def trend_stats(x, Y) -> tuple[np.ndarray, np.ndarray]:
    """R^2 of the line in log10(x) and Spearman's correlation with x for every row of ``Y`` ([B, len(x)]): a
    coefficient of each proxy on B resamples. A simple regression's R^2 is Pearson's r squared, and Spearman's is
    Pearson's on average ranks (as `scipy.stats.spearmanr`); NaN for a row without spread or not finite."""
    def pearson(a, B):
        a, B = a - a.mean(), B - B.mean(1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (B @ a) / np.sqrt((B * B).sum(1) * (a * a).sum())
    x = np.log10(np.asarray(x, dtype=np.float64))
    Y = np.asarray(Y, dtype=np.float64)
    ok = np.isfinite(Y).all(1)
    r = np.where(ok, pearson(x, np.where(ok[:, None], Y, 0.0)), np.nan)
    rho = np.where(ok, pearson(scipy_stats.rankdata(x), scipy_stats.rankdata(Y, axis=1)), np.nan)
    return r * r, rho


@dataclass
class Scaling:
    coef: str
    axis: str          # what it is set against: params (proxy parameter count) or data (training pairs)
    slope: float       # change of the coefficient per decade of the axis
    slope_lo: float    # the slope's interval (t with n - 2 degrees of freedom)
    slope_hi: float
    intercept: float
    r2: float
    spearman: float    # rank correlation with the axis (sign says rise or fall)
    n: int             # points fitted
    support: float = math.nan  # share of the paired prompt resamples on which the trend is smooth (`is_smooth`)


def fit_scaling(x, values, coef: str, axis: str = "params", ci: float = 0.9, replicates=None) -> Scaling:
    """coef = intercept + slope * log10(x): the near log-linear trends of Gao et al. 2022 (Fig. 3 against the
    proxy's parameters, Fig. 4 against the preference data), with the slope's ``ci`` interval from the residuals
    (Student t, n - 2 degrees of freedom; none from two points) and R^2. ``replicates`` ([B, len(x)]: the
    coefficient of each proxy measured again on B resamples of the prompts, the same resamples for every proxy)
    gives ``support``: on how many of them the trend is smooth too."""
    support = math.nan
    if replicates is not None and len(replicates):
        support = float(is_smooth(*trend_stats(x, replicates)).mean())
    x = np.log10(np.asarray(x, dtype=np.float64))
    y = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    n = len(x)
    if n < 2 or np.ptp(x) == 0:
        return Scaling(coef, axis, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan, n, support)
    slope, intercept = np.polyfit(x, y, 1)
    resid = y - (intercept + slope * x)
    ss_tot = ((y - y.mean()) ** 2).sum()
    r2 = 1 - (resid ** 2).sum() / ss_tot if ss_tot > 0 else math.nan
    lo = hi = math.nan
    if n > 2:
        se = math.sqrt((resid ** 2).sum() / (n - 2) / ((x - x.mean()) ** 2).sum())
        t = scipy_stats.t.ppf(0.5 + ci / 2, n - 2)
        lo, hi = slope - t * se, slope + t * se
    rho = float(scipy_stats.spearmanr(x, y)[0]) if n > 2 else float(np.sign(slope))
    return Scaling(coef, axis, float(slope), float(lo), float(hi), float(intercept), float(r2), rho, n, support)


def fit_shared_alpha(curves: dict, form: str = "rl") -> tuple[float, dict[str, float], dict[str, float]]:
    """One alpha across curves, one beta per curve (Gao et al. fit RL curves so).

    ``curves``: name -> (kl, gain). Returns (alpha, {name: beta}, {name: r2 of that curve}).
    """
    names = list(curves)
    if not names:
        raise FitError("no curves to fit")
    fa, fb = FORMS[form]
    rows, ys = [], []
    for j, name in enumerate(names):
        kl, gain = _check(*curves[name])
        d = np.sqrt(kl)
        X = np.zeros((len(d), 1 + len(names)))
        X[:, 0] = fa(d)
        X[:, 1 + j] = -fb(d)
        rows.append(X)
        ys.append(gain)
    coef, *_ = np.linalg.lstsq(np.vstack(rows), np.concatenate(ys), rcond=None)
    alpha = float(coef[0])
    betas, r2 = {}, {}
    for j, name in enumerate(names):
        betas[name] = float(coef[1 + j])
        pred = rows[j] @ coef
        y = ys[j]
        ss = ((y - y.mean()) ** 2).sum()
        r2[name] = float(1 - ((y - pred) ** 2).sum() / ss) if ss > 0 else math.nan
    return alpha, betas, r2


def iterated_prediction(alpha: float, beta: float, kl, rounds: int) -> np.ndarray:
    """Gao et al. eq. for k rounds of equal KL: d (alpha - beta ln d + beta ln k)."""
    d = np.sqrt(np.asarray(kl, dtype=np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(d > 0, d * (alpha - beta * np.log(np.where(d > 0, d, 1.0)) + beta * np.log(rounds)), 0.0)

"""Best-of-n: the unbiased estimator over one sample pool, and best-of-n's KL from pi0.

    gain = best_of_n(proxy_scores, gold_scores, ns=[1, 2, 4, ..., N])  # [len(ns)]
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.special import gammaln

from ..stats import bootstrap_rows, interval


def _numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def bon_weights(N: int, ns) -> np.ndarray:
    """[len(ns), N] weights on the pool sorted ascending by proxy (Nakano et al. 2021).

    The i-th smallest of N (1-based) is the best of a uniformly drawn n-subset with probability
    C(i-1, n-1) / C(N, n); computed in log space so N in the tens of thousands is exact to 1e-12.
    """
    ns = np.asarray(ns, dtype=np.int64)
    if ns.ndim != 1 or len(ns) == 0 or ns.min() < 1 or ns.max() > N:
        raise ValueError(f"every n must satisfy 1 <= n <= N={N}")
    i = np.arange(1, N + 1, dtype=np.float64)[None, :]
    n = ns.astype(np.float64)[:, None]
    valid = i >= n
    log_c = lambda a, b: gammaln(a + 1) - gammaln(b + 1) - gammaln(a - b + 1)  # noqa: E731
    with np.errstate(invalid="ignore"):
        logw = log_c(i - 1, np.minimum(n - 1, i - 1)) - log_c(float(N), n)
    return np.where(valid, np.exp(np.where(valid, logw, 0.0)), 0.0)


def best_of_n_per_prompt(proxy, values, ns) -> np.ndarray:
    """[prompts, len(ns)]: per prompt, E[value of the proxy-best of n drawn without replacement]."""
    proxy, values = _numpy(proxy), _numpy(values)
    if proxy.ndim != 2 or proxy.shape != values.shape:
        raise ValueError(f"proxy and values must both be [prompts, N]; got {proxy.shape} and {values.shape}")
    # torch's sort uses every core: the sort is nearly all of the cost for large pools.
    order = torch.sort(torch.from_numpy(proxy), dim=1).indices
    sorted_vals = torch.gather(torch.from_numpy(values), 1, order).numpy()
    return sorted_vals @ bon_weights(proxy.shape[1], ns).T


def best_of_n(proxy, values, ns) -> np.ndarray:
    """[len(ns)]: the mean over prompts of the expected value of the proxy-best of n samples."""
    return best_of_n_per_prompt(proxy, values, ns).mean(0)


def kl_bound(n):
    """KL(best-of-n || pi0) <= ln n - (n-1)/n, exact for tie-free continuous rewards (Stiennon et al. 2020)."""
    n = np.asarray(n, dtype=np.float64)
    return np.log(n) - (n - 1) / n


def kl_estimate(eps, n):
    """Beirami et al. 2024 estimate of KL(best-of-n || pi0) for a chosen sample of probability eps.

    D(eps) = (1-eps)^n [ln n + (n-1) ln(1-eps) - (n-1)/n] + (1-(1-eps)^n) ln[(1-(1-eps)^n)/eps].
    Computed in log space: eps may be as small as a sequence probability (e^-60).
    """
    eps = np.asarray(eps, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    sure = eps >= 1.0                           # a single certain outcome: best-of-n is pi0, KL 0
    eps = np.where(sure, 0.5, eps)
    log1m = np.log1p(-eps)
    q = np.exp(n * log1m)                       # (1 - eps)^n
    one_minus_q = -np.expm1(n * log1m)          # 1 - (1 - eps)^n, accurate for tiny eps
    first = q * (np.log(n) + (n - 1) * log1m - (n - 1) / n)
    with np.errstate(divide="ignore", invalid="ignore"):
        second = np.where(one_minus_q > 0, one_minus_q * (np.log(one_minus_q) - np.log(eps)), 0.0)
    return np.where(sure, 0.0, first + second)


def kl_estimate_pool(proxy, logprob, ns) -> np.ndarray:
    """[len(ns)]: the Beirami estimate averaged over prompts, eps = pi0(y) of the chosen sample.

    Which sample is chosen is random; each pool sample enters with its best-of-n weight.
    """
    proxy, logprob = _numpy(proxy), _numpy(logprob)
    order = torch.sort(torch.from_numpy(proxy), dim=1).indices
    eps = np.exp(torch.gather(torch.from_numpy(logprob), 1, order).numpy())
    W = bon_weights(proxy.shape[1], ns)
    return np.array([(kl_estimate(eps, n) @ W[j]).mean() for j, n in enumerate(ns)])


def default_ns(N: int) -> list[int]:
    """Powers of two up to N, and N itself."""
    ns = [2 ** k for k in range(int(np.log2(N)) + 1)]
    return ns if ns[-1] == N else ns + [N]


def gain_curve(proxy, values, ns, n_boot: int, seed: int, ci: float = 0.9):
    """Best-of-n's gain in ``values`` over pi0 (ns[0] must be 1) against ``proxy`` [prompts, N]: the mean over
    prompts for each n, its bootstrap interval over prompts (width ``ci``), and the per-prompt gains."""
    g = best_of_n_per_prompt(proxy, values, ns)
    g = g - g[:, :1]
    lo, hi = interval(bootstrap_rows(g, n_boot, seed), ci)
    return g.mean(0), lo, hi, g


def tilt_weights(proxy, betas) -> tuple[np.ndarray, np.ndarray]:
    """The KL-regularised optimum pi* = pi0 exp(r / beta) / Z (the policy a KL-penalised RL run with
    coefficient beta converges to), estimated on each prompt's pool of N pi0 samples.

    Each sample gets weight w_i = softmax(r / beta)_i and KL(pi* || pi0) ~ sum_i w_i ln(N w_i)
    (self-normalised importance sampling, so KL <= ln N: trust it while it stays well below that).
    Returns (kl [prompts, len(betas)], w [prompts, len(betas), N]); E_pi*[value] = (w * value).sum(-1)."""
    proxy = _numpy(proxy)
    if proxy.ndim != 2:
        raise ValueError(f"proxy must be [prompts, N]; got {proxy.shape}")
    betas = np.asarray(betas, dtype=np.float64)
    if betas.ndim != 1 or len(betas) == 0 or not (betas > 0).all():
        raise ValueError("every beta must be > 0")
    z = proxy[:, None, :] / betas[None, :, None]          # [P, B, N]
    z -= z.max(2, keepdims=True)
    logw = z - np.log(np.exp(z).sum(2, keepdims=True))
    w = np.exp(logw)
    return np.maximum((w * (logw + np.log(proxy.shape[1]))).sum(2), 0.0), w


def tilt_per_prompt(proxy, values, betas) -> tuple[np.ndarray, np.ndarray]:
    """(kl, E_pi*[values]) of `tilt_weights`, each [prompts, len(betas)]."""
    proxy, values = _numpy(proxy), _numpy(values)
    if proxy.shape != values.shape:
        raise ValueError(f"proxy and values must both be [prompts, N]; got {proxy.shape} and {values.shape}")
    kl, w = tilt_weights(proxy, betas)
    return kl, np.einsum("pbn,pn->pb", w, values)


def tilt_betas(proxy, n: int = 16) -> np.ndarray:
    """A grid of betas, largest first, from about KL 0.01 to the pool's limit: multiples of the
    proxy's within-prompt standard deviation, 8 down to 1/32."""
    sd = float(np.mean(_numpy(proxy).std(1)))
    return sd * np.geomspace(8.0, 1 / 32, n)

"""A stop rule with a stated false-stop rate: has a score fallen below its best so far by more than a margin?

    rule = DropRule(alpha=0.05)
    for y in reference_points:              # a logged gold or held-out score, one point per evaluation
        d = rule.update(y)
        d.stop, d.reason, d.best, d.tied    # the verdict, why, the best point and those not distinguishable from it

Asked again at every new point, it stops on noise with probability at most ``alpha`` over the whole run, however
many times it looks, as long as no point's mean lies more than ``margin`` below an earlier point's mean (a score that
rises, stays flat or rises then levels off: no fall). How:

* The points are cut into blocks as they arrive; each complete block is a candidate peak. At every look it is
  compared with the points after it (all of them, and the last L for the mode's windows): the fall (block mean -
  window mean - margin) over its standard error. Z_n is the largest such ratio at look n. The noise of one point is
  estimated from the data: from the pooled spread about a line fitted within each block of 5 (3 degrees of freedom
  each, so neither a trend across blocks nor a steady rise within one is counted as noise), or, where each point
  comes with its own standard error (an evaluation's mean over many responses, a judged checkpoint's label mean),
  from those (`stopcal.KNOWN`: every point a candidate).
* It stops at the first look where Z_n > kappa(alpha) + beta log(n / block), from the mode's first look on. The
  boundary is calibrated as Pocock's and O'Brien and Fleming's group-sequential boundaries are, by simulating the
  rule itself on logs where nothing falls (`online.stopcal`): flat Gaussian logs cross it anywhere with probability
  0.9 alpha (a tenth kept back for the simulation's error and heavier noise), a log that rises crosses it less
  often, and the growth term keeps that probability from growing with the length of the log (measured flat from 200
  to 5,000 points), so the guarantee does not need the number of looks in advance, which a running trainer does not
  know. The statistic is scale-free: one table serves every noise.
  Exact for Gaussian noise; docs/STOPPING.md measures the false-stop rate and the power on logs shaped as real ones.
* Why not an analytic confidence sequence (Howard, Ramdas, McAuliffe and Sekhon 2021's normal mixture, with the
  fall of each block against the points after it a supermartingale in its information)? It holds for any noise
  that is sub-Gaussian with a known scale, but the union over candidate peaks it needs costs too much: on 50-point
  logs it caught a fall of 3 noise sd within 10 points in 15% of logs at best (against 83% here).
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as scipy_stats

from .stopcal import ESTIMATED, KNOWN, Mode, within_ss

# kappa by mode and alpha: `python -m overopt.online.stopcal` (20,000 flat logs at 0.9 alpha: ESTIMATED of 1,000
# points, within 0.06 at 200; KNOWN of 200 points, within 0.04 at 40)
KAPPA = {"estimated": {0.01: 3.606, 0.02: 3.300, 0.05: 2.859, 0.1: 2.528, 0.2: 2.212},
         "known": {0.01: 2.259, 0.02: 2.070, 0.05: 1.817, 0.1: 1.600, 0.2: 1.359}}
ALPHA = 0.05
TESTED = 16  # blocks compared with all their later points at each look: the best by mean (a subset: still valid)


def kappa(alpha: float, mode: Mode = ESTIMATED) -> float:
    """The boundary's level for a false-stop probability ``alpha`` (log-linear between the calibrated values)."""
    table = KAPPA[mode.name]
    a = sorted(table)
    if not a[0] <= alpha <= a[-1]:
        raise ValueError(f"alpha must be between {a[0]:g} and {a[-1]:g} (the calibrated range), got {alpha:g}")
    return float(np.interp(math.log(alpha), [math.log(x) for x in a], [table[x] for x in a]))


def boundary(n: int, alpha: float = ALPHA, mode: Mode = ESTIMATED) -> float:
    """What Z_n must exceed at look n (after n points)."""
    return kappa(alpha, mode) + mode.beta * math.log(n / mode.block)


@dataclass
class Decision:
    stop: bool
    reason: str                   # why it stopped, or how far it is from stopping, or why it cannot judge yet
    best: int | None = None       # the checkpoint to roll back to: the last point of the highest block so far
    tied: list[int] = field(default_factory=list)  # on a stop: points not distinguishable from that block at alpha
    z: float = -math.inf          # the statistic at this look
    bound: float = math.inf       # what it had to exceed
    fall: float = math.nan        # the fall behind z: block mean less the window's mean
    sd: float = math.nan          # the estimated noise sd of one point
    block: tuple[int, int] | None = None    # the block behind z, as (first point, last point)
    window: tuple[int, int] | None = None   # and the window it fell to


class DropRule:
    """The rule, one point at a time (module docstring). ``known``: every point comes with its standard error
    (`update`'s ``se``). ``tested``: how many of the best blocks are compared with every later point at a look."""

    def __init__(self, alpha: float = ALPHA, margin: float = 0.0, known: bool = False, tested: int = TESTED):
        self.mode = KNOWN if known else ESTIMATED
        kappa(alpha, self.mode)  # refuses an alpha outside the calibrated range
        if margin < 0 or not math.isfinite(margin):
            raise ValueError(f"margin must be a finite number >= 0, got {margin:g}")
        self.alpha, self.margin, self.tested = alpha, margin, tested
        self.y: list[float] = []
        self.cum, self.cvar = [0.0], [0.0]     # prefix sums of the points and (KNOWN) of their variances
        self.means: list[float] = []           # each complete block's mean
        self.ss = 0.0                          # the within-block sum of squares of the complete blocks
        self.top: list[tuple[float, int]] = []  # the ``tested`` best complete blocks as (-mean, block), sorted
        self.best: int | None = None

    def sd(self) -> float:
        """The noise sd of one point: pooled within blocks (ESTIMATED; NaN before a block is complete), or the root
        mean square of the given standard errors (KNOWN)."""
        if self.mode is KNOWN:
            return math.sqrt(self.cvar[-1] / len(self.y)) if self.y else math.nan
        df = len(self.means) * (self.mode.block - 2)
        return math.sqrt(self.ss / df) if df else math.nan

    def update(self, y: float, se: float | None = None) -> Decision:
        y = float(y)
        if not math.isfinite(y):
            raise ValueError(f"point {len(self.y)}: the score must be a finite number, got {y}")
        if self.mode is KNOWN and not (se is not None and math.isfinite(se) and se > 0):
            raise ValueError(f"point {len(self.y)}: a rule of known noise needs each point's standard error > 0, "
                             f"got {se}")
        self.y.append(y)
        self.cum.append(self.cum[-1] + y)
        self.cvar.append(self.cvar[-1] + (float(se) ** 2 if se is not None else 0.0))
        n, b = len(self.y), self.mode.block
        if n % b == 0:
            block = np.array(self.y[n - b:])
            self.means.append(float(block.mean()))
            self.ss += float(within_ss(block)) if self.mode is ESTIMATED else 0.0
            bisect.insort(self.top, (-self.means[-1], len(self.means) - 1))
            del self.top[self.tested:]  # a block outside the best `tested` is never compared again: it cannot re-enter
        best = self.top[0][1] if self.top else None  # the highest block: its last point (a block mean is less noisy
        self.best = (best + 1) * b - 1 if best is not None else int(np.argmax(self.y))  # than the highest point)
        return self._judge()

    def tied(self) -> list[int]:
        """The points not distinguishable from the best block at alpha: block mean - value <= z(1 - alpha) times
        the standard error of that difference (computed when asked: it reads every point)."""
        if not self.top:
            return [self.best] if self.best is not None else []
        k, b, z = self.top[0][1], self.mode.block, scipy_stats.norm.ppf(1 - self.alpha)
        y = np.array(self.y)
        if self.mode is KNOWN:
            v = (self.cvar[(k + 1) * b] - self.cvar[k * b]) / b ** 2
            allow = z * np.sqrt(v + np.diff(self.cvar))
        else:
            sd = self.sd()
            allow = z * sd * math.sqrt(1 / b + 1) if math.isfinite(sd) else math.inf
        return np.flatnonzero(self.means[k] - y <= allow).tolist()

    def _se(self, end: int, a: int, b: int, sd: float) -> float:
        """The standard error of (the block ending at ``end``) - (the mean of points a..b-1)."""
        w, bl = b - a, self.mode.block
        if self.mode is ESTIMATED:
            return sd * math.sqrt(1 / bl + 1 / w)
        return math.sqrt((self.cvar[end] - self.cvar[end - bl]) / bl ** 2 + (self.cvar[b] - self.cvar[a]) / w ** 2)

    def _judge(self) -> Decision:
        n, mode = len(self.y), self.mode
        if n < mode.min_points:
            return Decision(False, f"{n} points: the rule judges from {mode.min_points}"
                                   + (" (its noise estimate needs them)" if mode is ESTIMATED else ""),
                            self.best, [self.best] if self.best is not None else [])
        sd, bound = self.sd(), boundary(n, self.alpha, mode)
        d = Decision(False, "", self.best, bound=bound, sd=sd)
        if not sd > 0:
            d.reason = "the points do not vary: no noise to judge a fall against"
            return d
        lasts = set(mode.windows)
        for neg, k in self.top:
            end = (k + 1) * mode.block
            if end >= n:
                continue
            windows = [(end, n)] + [(n - L, n) for L in sorted(lasts) if end <= n - L]
            if mode is ESTIMATED:  # one error for every block: the last L points need only the best eligible block
                lasts -= {L for L in lasts if end <= n - L}
            for a, b in windows:
                fall = -neg - (self.cum[b] - self.cum[a]) / (b - a)
                z = (fall - self.margin) / self._se(end, a, b, sd)
                if z > d.z:
                    d.z, d.fall, d.block, d.window = z, fall, (end - mode.block, end - 1), (a, b - 1)
        d.stop = d.z > bound
        if d.stop:
            d.tied = self.tied()
        where = (f"points {d.window[0]}-{d.window[1]} are {d.fall:.3g} below points {d.block[0]}-{d.block[1]}"
                 if d.block else "no block has later points yet")
        d.reason = (f"{where}: {d.z:.2f} standard errors, {'beyond' if d.stop else 'within'} the {bound:.2f} that "
                    f"noise reaches with probability {self.alpha:g} over the whole log (noise sd {sd:.3g})")
        return d

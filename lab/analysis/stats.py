"""Statistics of repeated trials: what a point's numbers are worth (numpy, pandas, scipy).

The methods, one each, so a report can name them:

- centre and spread: median, quartiles (pandas' linear interpolation), IQR, min, max, and the
  coefficient of variation (sample standard deviation / mean);
- confidence interval of the median: distribution-free, from order statistics. The interval
  [x(j), x(n+1-j)] covers the true median with probability P(j <= B <= n-j), B ~ Binomial(n, 1/2)
  (scipy.stats.binom). The narrowest such interval whose coverage is at least 95% is chosen; when
  n is too small for 95% (n < 6), [min, max] is the best there is and its own coverage is stated
  (n = 5: 93.75%). Equal tails, the interval scipy.stats.quantile_test gives where 95% is reached;
- intervals of speedups and ratios: percentile bootstrap (scipy.stats.bootstrap) of the ratio
  of two medians, both samples resampled independently, with a fixed seed so that a report
  redrawn from the same raw.jsonl shows the same interval. Asked for 95%, it does not cover 95%
  with few trials: a seeded simulation (`bootstrap_coverage`, rerun by the tests) measures about
  90% at 3 trials a side and 92% at 4, and 95% or more from 5; `ratio_interval_coverage` says
  which, and the report shows it beside every interval of fewer than 5 trials;
- outliers: Tukey's fences, below Q1 - 1.5 IQR or above Q3 + 1.5 IQR of the point's measured
  trials. They are flagged, never dropped (with three trials nothing can lie outside the fences);
- a difference between two runs: the two-sided Mann-Whitney U test (scipy.stats.mannwhitneyu),
  which assumes no distribution; with few trials it cannot reach a small p-value at all, and
  `smallest_p_value` says how small it could get.
"""

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special, stats

CONFIDENCE = 0.95
TUKEY_K = 1.5
BOOTSTRAP_RESAMPLES = 4000
BOOTSTRAP_SEED = 20261126  # fixed: the same raw data always gives the same intervals


@dataclass(frozen=True)
class MedianInterval:
    low: float
    high: float
    coverage: float  # the interval's actual coverage probability, not the one asked for
    lower_rank: int  # 1-based order statistics: [x(lower_rank), x(upper_rank)]
    upper_rank: int

    def describe(self):
        if not self.coverage > 0:
            return "no interval (one trial)"
        return f"[{self.low:.4g}, {self.high:.4g}] at {self.coverage:.2%}"


def order_statistic_coverage(n, lower_rank):
    """Coverage of [x(j), x(n+1-j)] for the median of n continuous values: P(j <= B <= n-j)."""
    return float(stats.binom.cdf(n - lower_rank, n, 0.5) - stats.binom.cdf(lower_rank - 1, n, 0.5))


def median_interval(values, confidence=CONFIDENCE):
    """Distribution-free interval of the median from order statistics, with its actual coverage:
    the narrowest one reaching `confidence`, else [min, max] with the coverage it has."""
    x = np.sort(np.asarray([v for v in values if v is not None and math.isfinite(v)], float))
    n = len(x)
    if n == 0:
        return MedianInterval(math.nan, math.nan, math.nan, 0, 0)
    ranks = np.arange(1, n // 2 + 1)  # lower rank j; the upper is n + 1 - j
    coverage = stats.binom.cdf(n - ranks, n, 0.5) - stats.binom.cdf(ranks - 1, n, 0.5)
    reaching = ranks[coverage >= confidence - 1e-12]
    j = int(reaching.max()) if len(reaching) else 1
    return MedianInterval(float(x[j - 1]), float(x[n - j]), order_statistic_coverage(n, j),
                          j, n + 1 - j)


def tukey_outliers(values):
    """True where a value lies outside Tukey's fences (1.5 IQR beyond the quartiles)."""
    values = pd.Series(values, dtype=float)
    if values.count() < 4:
        return pd.Series(False, index=values.index)
    q1, q3 = values.quantile(0.25), values.quantile(0.75)
    spread = TUKEY_K * (q3 - q1)
    return (values < q1 - spread) | (values > q3 + spread)


def coefficient_of_variation(values):
    """Sample standard deviation over the mean (NaN below two values)."""
    values = pd.Series(values, dtype=float).dropna()
    if len(values) < 2 or values.mean() == 0:
        return math.nan
    return float(stats.variation(values, ddof=1))


def describe(values, unit="s"):
    """Every per-point statistic of one sample, as a dict of summary.csv columns."""
    values = pd.Series(values, dtype=float).dropna()
    interval = median_interval(values)
    q1, q3 = (values.quantile(0.25), values.quantile(0.75)) if len(values) else (math.nan,) * 2
    return {
        "n": int(len(values)), f"median_{unit}": float(values.median()), f"q1_{unit}": float(q1),
        f"q3_{unit}": float(q3), f"iqr_{unit}": float(q3 - q1), f"min_{unit}": float(values.min()),
        f"max_{unit}": float(values.max()), f"mean_{unit}": float(values.mean()),
        "cv": coefficient_of_variation(values),
        f"median_ci_low_{unit}": interval.low, f"median_ci_high_{unit}": interval.high,
        "median_ci_coverage": interval.coverage,
        "outliers": int(tukey_outliers(values).sum()),
    }


def _ratio_of_medians(numerator, denominator, axis=-1):
    return np.median(numerator, axis=axis) / np.median(denominator, axis=axis)


def ratio_interval(numerator, denominator, confidence=CONFIDENCE, seed=BOOTSTRAP_SEED,
                   resamples=BOOTSTRAP_RESAMPLES):
    """Percentile-bootstrap interval of median(numerator) / median(denominator), e.g. a speedup
    T(1) / T(c) or a ratio between runs. (NaN, NaN) when a side has fewer than two values."""
    a = np.asarray([v for v in numerator if v is not None and math.isfinite(v)], float)
    b = np.asarray([v for v in denominator if v is not None and math.isfinite(v)], float)
    if len(a) < 2 or len(b) < 2 or not np.median(b) > 0:
        return math.nan, math.nan
    if np.all(a == a[0]) and np.all(b == b[0]):
        return float(a[0] / b[0]), float(a[0] / b[0])  # no spread to resample
    result = stats.bootstrap((a, b), _ratio_of_medians, vectorized=True, paired=False,
                             n_resamples=resamples, confidence_level=confidence,
                             method="percentile", rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


# Real coverage of the nominal 95% percentile-bootstrap interval of a ratio of medians, by the
# smaller sample's size, from `bootstrap_coverage` (lognormal trials, CV 15%; seed 1, 600 runs).
RATIO_INTERVAL_COVERAGE = {2: 0.66, 3: 0.90, 4: 0.91}


def ratio_interval_coverage(n_a, n_b):
    """The real coverage of ratio_interval's nominal 95% for samples of n_a and n_b trials:
    measured below 5 trials a side, 0.95 from 5 on (simulated 0.96-0.97)."""
    n = min(int(n_a), int(n_b))
    return RATIO_INTERVAL_COVERAGE.get(n, CONFIDENCE if n >= 5 else math.nan)


def bootstrap_coverage(n, simulations=600, resamples=2000, sigma=0.15, seed=1,
                       confidence=CONFIDENCE):
    """How often the percentile-bootstrap interval of median(a) / median(b), n trials a side,
    holds the true ratio (1) when both come from one lognormal: the coverage the interval
    really has. Vectorised numpy, the same percentile method as ratio_interval."""
    rng = np.random.default_rng(seed)
    a = rng.lognormal(0.0, sigma, (simulations, 1, n))
    b = rng.lognormal(0.0, sigma, (simulations, 1, n))
    picks = (simulations, resamples, n)

    def resampled_medians(sample):
        drawn = rng.integers(0, n, picks)
        return np.median(np.take_along_axis(np.broadcast_to(sample, picks), drawn, 2), 2)

    ratio = resampled_medians(a) / resampled_medians(b)
    tail = (1 - confidence) / 2
    low, high = np.quantile(ratio, tail, axis=1), np.quantile(ratio, 1 - tail, axis=1)
    return float(np.mean((low <= 1.0) & (high >= 1.0)))


@dataclass(frozen=True)
class Difference:
    p_value: float
    smallest_p_value: float  # the smallest p the test can give with these sample sizes
    test: str = "Mann-Whitney U, two-sided"

    def significant(self, alpha=0.05):
        return bool(self.p_value < alpha)


def smallest_p_value(n_a, n_b):
    """Two-sided exact Mann-Whitney when one sample lies wholly below the other:
    2 / C(n_a + n_b, n_a)."""
    if n_a < 1 or n_b < 1:
        return math.nan
    return float(min(1.0, 2.0 / special.comb(n_a + n_b, n_a, exact=True)))


def holm(p_values):
    """Holm's step-down adjustment of p-values tested together (same order as given): a point
    is significant at alpha when its adjusted p is below alpha, which keeps the chance of any
    false 'different' among all points at alpha, whatever the tests' dependence. NaN stays NaN."""
    p = np.asarray(p_values, dtype=float)
    finite = np.flatnonzero(np.isfinite(p))
    adjusted = np.full(p.shape, np.nan)
    order = finite[np.argsort(p[finite], kind="stable")]
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p[index]))
        adjusted[index] = running
    return adjusted


def difference(a, b):
    """Whether two samples differ in location: the two-sided Mann-Whitney U test."""
    a = np.asarray([v for v in a if v is not None and math.isfinite(v)], float)
    b = np.asarray([v for v in b if v is not None and math.isfinite(v)], float)
    floor = smallest_p_value(len(a), len(b))
    if len(a) < 1 or len(b) < 1:
        return Difference(math.nan, floor)
    if np.all(a == a[0]) and np.all(b == b[0]) and a[0] == b[0]:
        return Difference(1.0, floor)  # identical constants: no difference, and no U to compute
    result = stats.mannwhitneyu(a, b, alternative="two-sided")
    return Difference(float(result.pvalue), floor)

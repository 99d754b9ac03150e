"""Scaling laws fitted to measured speedups (least squares with scipy; no pandas here).

Amdahl:     S(c) = 1 / (s + (1 - s) / c), serial fraction s in [0, 1]          (strong scaling)
USL:        S(c) = c / (1 + sigma (c - 1) + kappa c (c - 1)), sigma, kappa >= 0 (strong scaling)
            sigma: contention (queueing on a shared resource), kappa: coherency (crosstalk, the
            cost that makes speedup fall past a peak at c* = sqrt((1 - sigma) / kappa))
Gustafson:  S(c) = c - s (c - 1), scaled speedup with the work grown with c     (weak scaling)
Karp-Flatt: e(c) = (1/S - 1/c) / (1 - 1/c), the experimentally determined serial fraction

A law is fitted only where its parameters are identifiable from the CPU counts measured;
otherwise it says "not fitted (why)", never a number. With exactly as many CPU counts above one as
the law has parameters (S(1) = 1 by definition carries no information), the curve goes through
every point by construction: it is "solved exactly", nothing is left to test the law, and it is
never called a fit or given an rmse.
"""

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import curve_fit


@dataclass
class Fit:
    """A one-parameter fit: Amdahl's or Gustafson's serial fraction."""
    fitted: bool
    serial_fraction: float | None
    points: int
    reason: str = ""  # why not fitted, in words
    law: str = "Amdahl"
    rmse: float | None = None  # root-mean-square residual of the speedups
    exact: bool = False  # as many informative CPU counts as parameters: solved, not fitted

    def describe(self):
        if not self.fitted:
            return f"not fitted ({self.reason})"
        if self.exact:
            return (f"serial fraction s = {self.serial_fraction:.3f}, {EXACT_WORDS} "
                    f"({self.points} CPU counts)")
        return (f"serial fraction s = {self.serial_fraction:.3f} (from {self.points} CPU counts"
                f"{_rmse(self.rmse)})")


@dataclass
class UslFit:
    fitted: bool
    sigma: float | None
    kappa: float | None
    points: int
    reason: str = ""
    rmse: float | None = None
    exact: bool = False

    law = "USL"

    @property
    def peak_cpus(self):
        """CPUs of the highest speedup the curve predicts (None when it never turns down)."""
        if not self.fitted or not self.kappa or self.kappa <= 0 or self.sigma >= 1:
            return None
        return math.sqrt((1 - self.sigma) / self.kappa)

    def describe(self):
        if not self.fitted:
            return f"not fitted ({self.reason})"
        peak = self.peak_cpus
        where = f", peak at {peak:.1f} CPUs" if peak is not None and peak < 1e4 else ""
        how = (f", {EXACT_WORDS} ({self.points} CPU counts)" if self.exact
               else f" (from {self.points} CPU counts{_rmse(self.rmse)})")
        return f"contention sigma = {self.sigma:.4f}, coherency kappa = {self.kappa:.5f}{where}{how}"


# Said of a law solved from as many points as parameters: it passes through them by construction.
EXACT_WORDS = "solved exactly, not fitted (one point per parameter: nothing left to test the law)"


def is_exact(counts, parameters):
    """Whether a law of `parameters` parameters is only solved from these CPU counts: S(1) = 1
    holds by definition, so only the counts above one inform it."""
    return sum(1 for c in counts if c > 1) <= parameters


def _rmse(value):
    return "" if value is None else f", rmse {value:.3f}"


def _pairs(cpus, speedups):
    return [(float(c), float(s)) for c, s in zip(cpus, speedups)
            if c is not None and s is not None and math.isfinite(float(s)) and float(s) > 0]


def _residual(model, x, y, *parameters):
    return float(np.sqrt(np.mean((model(np.array(x), *parameters) - np.array(y)) ** 2)))


def amdahl_speedup(cpus, serial_fraction):
    cpus = np.asarray(cpus, dtype=float)
    return 1.0 / (serial_fraction + (1.0 - serial_fraction) / cpus)


def fit_amdahl(cpus, speedups):
    """Least-squares serial fraction, bounded to [0, 1]. Not identifiable from fewer than two
    CPU counts or without a count above one: then 'not fitted', never a number."""
    pairs = _pairs(cpus, speedups)
    counts = {c for c, _ in pairs}
    if len(counts) < 2 or max(counts, default=0) <= 1:
        return Fit(False, None, len(counts),
                   "needs speedups at two or more CPU counts, one above 1")
    x, y = zip(*pairs)
    (s,), _ = curve_fit(amdahl_speedup, np.array(x), np.array(y), p0=[0.05], bounds=(0.0, 1.0))
    exact = is_exact(counts, 1)
    return Fit(True, float(s), len(counts), exact=exact,
               rmse=None if exact else _residual(amdahl_speedup, x, y, s))


def usl_speedup(cpus, sigma, kappa):
    cpus = np.asarray(cpus, dtype=float)
    return cpus / (1.0 + sigma * (cpus - 1.0) + kappa * cpus * (cpus - 1.0))


def fit_usl(cpus, speedups):
    """Least-squares contention and coherency, both >= 0. Two parameters and S(1) = 1 by
    definition: it takes three or more CPU counts, else 'not fitted'."""
    pairs = _pairs(cpus, speedups)
    counts = {c for c, _ in pairs}
    if len(counts) < 3:
        return UslFit(False, None, None, len(counts),
                      f"needs speedups at 3 or more CPU counts, has {len(counts)}")
    x, y = zip(*pairs)
    (sigma, kappa), _ = curve_fit(usl_speedup, np.array(x), np.array(y), p0=[0.05, 0.001],
                                  bounds=([0.0, 0.0], [1.0, np.inf]))
    exact = is_exact(counts, 2)
    return UslFit(True, float(sigma), float(kappa), len(counts), exact=exact,
                  rmse=None if exact else _residual(usl_speedup, x, y, sigma, kappa))


def gustafson_speedup(cpus, serial_fraction):
    cpus = np.asarray(cpus, dtype=float)
    return cpus - serial_fraction * (cpus - 1.0)


def fit_gustafson(cpus, scaled_speedups):
    """Least-squares serial fraction of Gustafson's law from weak scaling's scaled speedups
    (c x T(1) / T(c)), bounded to [0, 1]; needs a CPU count above one."""
    pairs = _pairs(cpus, scaled_speedups)
    counts = {c for c, _ in pairs}
    if max(counts, default=0) <= 1:
        return Fit(False, None, len(counts), "needs a scaled speedup at a CPU count above 1",
                   law="Gustafson")
    x, y = zip(*pairs)
    (s,), _ = curve_fit(gustafson_speedup, np.array(x), np.array(y), p0=[0.05], bounds=(0.0, 1.0))
    exact = is_exact(counts, 1)
    return Fit(True, float(s), len(counts), law="Gustafson", exact=exact,
               rmse=None if exact else _residual(gustafson_speedup, x, y, s))


def karp_flatt(cpus, speedup):
    """Serial fraction implied by one measured speedup; undefined at one CPU."""
    if cpus is None or speedup is None or cpus <= 1 or not speedup > 0:
        return None
    return (1.0 / speedup - 1.0 / cpus) / (1.0 - 1.0 / cpus)


def seed_speedup_cap(cpus, tasks=6):
    """The tutorial's six equal tasks on c workers finish in ceil(6/c) rounds: at most 6/ceil(6/c)."""
    return tasks / math.ceil(tasks / cpus)

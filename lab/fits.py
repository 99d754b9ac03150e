"""Scaling laws fitted to measured speedups (pure arithmetic; no pandas here).

Amdahl:     S(c) = 1 / (s + (1 - s) / c), serial fraction s in [0, 1]
Karp-Flatt: e(c) = (1/S - 1/c) / (1 - 1/c), the experimentally determined serial fraction
"""

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import curve_fit


@dataclass
class Fit:
    fitted: bool
    serial_fraction: float | None
    points: int
    reason: str = ""  # why not fitted, in words

    def describe(self):
        if not self.fitted:
            return f"not fitted ({self.reason})"
        return f"serial fraction s = {self.serial_fraction:.3f} (from {self.points} CPU counts)"


def amdahl_speedup(cpus, serial_fraction):
    cpus = np.asarray(cpus, dtype=float)
    return 1.0 / (serial_fraction + (1.0 - serial_fraction) / cpus)


def fit_amdahl(cpus, speedups):
    """Least-squares serial fraction, bounded to [0, 1]. Not identifiable from fewer than two
    CPU counts or without a count above one: then 'not fitted', never a number."""
    pairs = [(float(c), float(s)) for c, s in zip(cpus, speedups)
             if s is not None and math.isfinite(float(s)) and float(s) > 0]
    counts = {c for c, _ in pairs}
    if len(counts) < 2 or max(counts, default=0) <= 1:
        return Fit(False, None, len(counts), "needs speedups at two or more CPU counts, one above 1")
    x, y = zip(*pairs)
    (s,), _ = curve_fit(amdahl_speedup, np.array(x), np.array(y), p0=[0.05], bounds=(0.0, 1.0))
    return Fit(True, float(s), len(counts))


def karp_flatt(cpus, speedup):
    """Serial fraction implied by one measured speedup; undefined at one CPU."""
    if cpus is None or speedup is None or cpus <= 1 or not speedup > 0:
        return None
    return (1.0 / speedup - 1.0 / cpus) / (1.0 - 1.0 / cpus)


def seed_speedup_cap(cpus, tasks=6):
    """The tutorial's six equal tasks on c workers finish in ceil(6/c) rounds: at most 6/ceil(6/c)."""
    return tasks / math.ceil(tasks / cpus)

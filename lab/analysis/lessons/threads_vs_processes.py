"""Lesson threads_vs_processes: the tutorial's CPU-bound task serial, on threads and on
processes (the GIL); its words, check, observed and claim."""

import math

from lab.analysis.lessons.base import Lesson, at_most_cpus, distinct, rows_of, span, values
from lab.analysis.lessons.units import rate, short_python

METRIC_WORDS = {"iterations_per_second": "loops/s"}
CHECKS = {None: ("check", "every loop of the task ran (its sum checked)")}
CLAIM = "Threads cannot run the CPU-bound task in parallel (the GIL); processes can"


def observed(item, rows):
    return (f"{span(values(rows, 'check.iterations'), lambda v: f'{v:,.0f}')} loops, sums "
            f"exact; GIL enabled: {distinct(values(rows, 'check.gil_enabled'))}")


def claim_threads(summary, checks):
    rows = rows_of(summary, lesson="threads_vs_processes")
    if rows.empty:
        return None
    rows = at_most_cpus(rows)
    cpus = int(rows["cpus"].max())
    parts, held = [], True
    for python, group in rows.groupby("python"):
        rates = {item: float(g["metric.iterations_per_second"].median())
                 for item, g in group.groupby("item")}
        serial = rates.get("serial")
        if not serial:
            continue
        threads = rates.get("threads", math.nan) / serial
        processes = rates.get("processes", math.nan) / serial
        held &= processes > 1.3 * threads
        parts.append(f"{short_python(python)}: threads {threads:.2f}x, processes "
                     f"{processes:.2f}x the serial loop rate ({rate(serial, ' loops/s')})")
    if not parts:
        return None
    if cpus < 2:
        return (CLAIM, "fact", f"Measured at 1 CPU only, where neither can run in parallel: "
                               f"{'; '.join(parts)}.")
    return (CLAIM, "held" if held else "not held",
            f"{'Held' if held else 'Not held'} at {cpus} CPUs: {'; '.join(parts)}.")


LESSON = Lesson("threads_vs_processes", "runner", "iterations_per_second", METRIC_WORDS, CHECKS,
                observed, (claim_threads,))

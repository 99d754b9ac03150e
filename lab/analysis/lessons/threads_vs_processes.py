"""Lesson threads_vs_processes: the tutorial's CPU-bound task serial, on threads and on
processes (the GIL); its words, check, observed and claim."""

import math

from lab.analysis.lessons import judge as v
from lab.analysis.lessons.base import (Lesson, at_most_cpus, distinct, rows_of, span, table_of,
                                       values)
from lab.analysis.lessons.units import rate, short_python

METRIC_WORDS = {"iterations_per_second": "loops/s"}
CHECKS = {None: ("check", "every loop of the task ran (its sum checked)")}
CLAIM = "Threads cannot run the CPU-bound task in parallel (the GIL); processes can"
THRESHOLD = 1.3  # processes' loop rate over threads': in parallel when above
CLAIM_INTERPRETERS = ("Interpreters run the CPU-bound task in parallel, each with its own GIL "
                      "(Python 3.14+), as processes do")


def verdicts(trials, summary):
    """Per (Python, CPU count >= 2): processes' loops/s over threads' (> 1.3), gated on the
    CPUs the trials got (section CPU time against section x CPUs, per trial)."""
    out = []
    for python, cpus, rows in v.groups(
            rows_of(summary, every=True, lesson="threads_vs_processes")):
        threads, processes = rows[rows["item"] == "threads"], rows[rows["item"] == "processes"]
        if threads.empty or processes.empty:
            continue
        if cpus < 2:
            out.append(v.row(CLAIM, python, cpus, "loops/s, processes / threads", v.FACT,
                             note="1 CPU: neither can run in parallel"))
            continue
        out.append(v.gated_ratio(CLAIM, python, cpus, "loops/s, processes / threads", trials,
                                 processes, threads, "iterations_per_second", THRESHOLD,
                                 usable=usable_cpus))
    return out


def verdicts_interpreters(trials, summary):
    """Per (Python, CPU count >= 2) where interpreters ran: their loops/s over threads'
    (> 1.3), gated like processes'."""
    out = []
    for python, cpus, rows in v.groups(
            rows_of(summary, every=True, lesson="threads_vs_processes")):
        threads = rows[rows["item"] == "threads"]
        interpreters = rows[rows["item"] == "interpreters"]
        if threads.empty or interpreters.empty:
            continue
        if cpus < 2:
            out.append(v.row(CLAIM_INTERPRETERS, python, cpus, "loops/s, interpreters / "
                             "threads", v.FACT, note="1 CPU: neither can run in parallel"))
            continue
        out.append(v.gated_ratio(CLAIM_INTERPRETERS, python, cpus,
                                 "loops/s, interpreters / threads", trials, interpreters,
                                 threads, "iterations_per_second", THRESHOLD,
                                 usable=usable_cpus))
    return out


def usable_cpus(trial):
    """The CPUs a trial's workers could keep busy: one for serial, and for threads under the
    GIL; else its workers, at most its CPUs."""
    runner = trial.get("param.runner")
    gil = trial.get("check.gil_enabled")
    if runner == "serial" or (runner == "threads" and gil is not False):
        return 1
    workers = trial.get("workers")
    workers = trial["cpus"] if workers is None or workers != workers else workers
    return min(int(workers), int(trial["cpus"]))


def observed(item, rows):
    return (f"{span(values(rows, 'check.iterations'), lambda v: f'{v:,.0f}')} loops, sums "
            f"exact; GIL enabled: {distinct(values(rows, 'check.gil_enabled'))}")


def claim_threads(summary, checks, table=None):
    rows = rows_of(summary, lesson="threads_vs_processes")
    if rows.empty:
        return None
    rows = at_most_cpus(rows)
    cpus = int(rows["cpus"].max())
    parts, held = [], True
    table = table_of(table, CLAIM)
    for python, group in rows.groupby("python"):
        rates = {item: float(g["metric.iterations_per_second"].median())
                 for item, g in group.groupby("item")}
        serial = rates.get("serial")
        if not serial:
            continue
        threads = rates.get("threads", math.nan) / serial
        processes = rates.get("processes", math.nan) / serial
        held &= processes > THRESHOLD * threads
        interpreters = rates.get("interpreters")
        beside = (f", interpreters {interpreters / serial:.2f}x" if interpreters else "")
        parts.append(f"{short_python(python)}: threads {threads:.2f}x, processes "
                     f"{processes:.2f}x{beside} the serial loop rate "
                     f"({rate(serial, ' loops/s')})")
    if not parts:
        return None
    if cpus < 2:
        return (CLAIM, "fact", f"Measured at 1 CPU only, where neither can run in parallel: "
                               f"{'; '.join(parts)}.")
    if table is not None and len(table):
        table = table[table["cpus"] >= 2]
    verdict = v.decided(table, v.HELD if held else v.NOT_HELD)
    return (CLAIM, verdict, f"{v.lead(verdict)} at {cpus} CPUs: {'; '.join(parts)}.")


def claim_interpreters(summary, checks, table=None):
    rows = rows_of(summary, lesson="threads_vs_processes")
    if rows.empty or not (rows["item"] == "interpreters").any():
        return None
    rows = at_most_cpus(rows)
    cpus = int(rows["cpus"].max())
    parts, held = [], True
    for python, group in rows.groupby("python"):
        rates = {item: float(g["metric.iterations_per_second"].median())
                 for item, g in group.groupby("item")}
        if not rates.get("interpreters") or not rates.get("threads"):
            continue
        ratio = rates["interpreters"] / rates["threads"]
        held &= ratio > THRESHOLD
        processes = rates.get("processes")
        parts.append(f"{short_python(python)}: interpreters {ratio:.2f}x the threads' loop rate"
                     + (f", processes {processes / rates['threads']:.2f}x" if processes else ""))
    if not parts:
        return None
    if cpus < 2:
        return (CLAIM_INTERPRETERS, "fact", f"Measured at 1 CPU only, where nothing runs in "
                                            f"parallel: {'; '.join(parts)}.")
    mine = table_of(table, CLAIM_INTERPRETERS)
    if mine is not None and len(mine):
        mine = mine[mine["cpus"] >= 2]
    verdict = v.decided(mine, v.HELD if held else v.NOT_HELD)
    return (CLAIM_INTERPRETERS, verdict, f"{v.lead(verdict)} at {cpus} CPUs: "
                                        f"{'; '.join(parts)}.")


LESSON = Lesson("threads_vs_processes", "runner", "iterations_per_second", METRIC_WORDS, CHECKS,
                observed, (claim_threads, claim_interpreters),
                (verdicts, verdicts_interpreters),
                also=("workers_used",))

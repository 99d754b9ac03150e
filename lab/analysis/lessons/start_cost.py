"""Lesson start_cost: what a process costs to create and start (the tutorial's "12.2 µs"),
its words, check, observed and claim."""

from lab.analysis.lessons.base import (TUTORIAL, Lesson, distinct, per_python, rows_of, span,
                                       values)
from lab.analysis.lessons.units import duration, times

METRIC_WORDS = {
    "start_join_us": "start()+join()", "constructor_us": "Process() alone",
    "pool_first_task_us": "fresh Pool(1) to its first result",
    "first_start_join_us": "first start()+join()", "start_join_p90_us": "start()+join() p90",
}
CHECKS = {None: ("check", "every child started, ran and wrote its pid; every exit code 0")}


def observed(item, rows):
    return (f"{span(values(rows, 'check.processes_ran'))} children per trial, pids "
            f"written {span(values(rows, 'check.pids_written'))}, exit codes "
            f"{distinct(values(rows, 'check.exit_codes'))}")


def claim_constructor(summary, checks):
    rows = rows_of(summary, lesson="start_cost")
    if rows.empty:
        return None
    tutorial = TUTORIAL["constructor_us"]
    constructor = per_python(rows, "metric.constructor_us", duration)
    costs = []
    for method, group in rows.groupby("resolved_start_method", sort=False):
        costs.append((float(group["metric.start_join_us"].median()), method, group))
    costs.sort(key=lambda c: c[0])
    start_join = "; ".join(f"{method} {per_python(group, 'metric.start_join_us', duration)}"
                           for _, method, group in costs)
    ratio = (rows["metric.start_join_us"] / rows["metric.constructor_us"]).dropna()
    held = bool(len(rows)) and float(rows["metric.start_join_us"].max()) <= 2 * tutorial
    return ("Creating a process costs 12.2 µs (the tutorial's %time of Process())",
            "held" if held else "not held",
            f"{'Held' if held else 'Not held'}: Process() alone took {constructor} (nothing "
            f"starts: the tutorial's {tutorial:g} µs timed only this, and %time on its own line "
            f"times an empty statement); start()+join() of one process took {start_join}, "
            f"{times(float(ratio.min()))} to {times(float(ratio.max()))} the constructor "
            f"(medians per point, all CPU counts).")


LESSON = Lesson("start_cost", None, "start_join_us", METRIC_WORDS, CHECKS, observed,
                (claim_constructor,))

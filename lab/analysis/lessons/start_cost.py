"""Lesson start_cost: what a process costs to create and start (the tutorial's "12.2 µs"),
its words, check, observed and claim."""

from lab.analysis.lessons import judge as v
from lab.analysis.lessons.base import (TUTORIAL, Lesson, distinct, per_python, rows_of, span,
                                       table_of, values)
from lab.analysis.lessons.units import duration, times

CLAIM = ("Creating a process costs 12.2 µs: that is Process() alone; a started process costs "
         "at least 10x more")
THRESHOLD = 10  # start()+join() over Process(): a start is no constructor when above

METRIC_WORDS = {
    "start_join_us": "start()+join()", "constructor_us": "Process() alone",
    "pool_first_task_us": "fresh Pool(1) to its first result",
    "first_start_join_us": "first start()+join()", "start_join_p90_us": "start()+join() p90",
}
CHECKS = {None: ("check", "every child started and ran its target (its exit code, read after "
                          "the clock)")}


def observed(item, rows):
    ran = values(rows, "check.ran_target") or values(rows, "check.pids_written")  # older runs
    return (f"{span(values(rows, 'check.processes_ran'))} children per trial, "
            f"{span(ran)} ran their target, exit codes "
            f"{distinct(values(rows, 'check.exit_codes'))}")


def verdicts(trials, summary):
    """Per (Python, CPU count, start method): start()+join() over Process() alone, > 10x."""
    out = []
    for python, cpus, rows in v.groups(rows_of(summary, every=True, lesson="start_cost")):
        for method, group in rows.groupby("resolved_start_method", sort=True):
            figure = f"start()+join() / Process() alone, {method}"
            bad = v.errored(trials, group)
            start = v.metric_values(trials, group, "start_join_us")
            alone = v.metric_values(trials, group, "constructor_us")
            if bad and len(start) < 2:
                out.append(v.row(CLAIM, python, cpus, figure, v.NO_VERDICT,
                                 threshold=THRESHOLD, note=f"{bad} trial(s) errored"))
                continue
            ratio, low, high, coverage, verdict = v.ratio_verdict(start, alone, THRESHOLD)
            out.append(v.row(CLAIM, python, cpus, figure, verdict, ratio=ratio, low=low,
                             high=high, coverage=coverage, threshold=THRESHOLD))
    return out


def claim_constructor(summary, checks, table=None):
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
    medians = rows["metric.start_join_us"] / rows["metric.constructor_us"]
    fallback = (v.HELD if bool((medians > THRESHOLD).all()) else
                v.NOT_HELD if bool((medians <= THRESHOLD).all()) else v.PARTLY)
    verdict = v.decided(table_of(table, CLAIM), fallback)
    return (CLAIM, verdict,
            f"{v.lead(verdict)}: Process() alone took {constructor}: the tutorial's "
            f"{tutorial:g} µs timed only this constructor (nothing starts), not a process; "
            f"start()+join() of one process took {start_join}, {times(float(ratio.min()))} to "
            f"{times(float(ratio.max()))} the constructor (medians per point, all CPU counts).")


LESSON = Lesson("start_cost", None, "start_join_us", METRIC_WORDS, CHECKS, observed,
                (claim_constructor,), (verdicts,))

"""Lesson start_cost: what a process costs to create and start (the tutorial's "12.2 µs"),
its words, check, observed and claim."""

from lab.analysis.lessons import judge as v
from lab.analysis.lessons.base import (TUTORIAL, Lesson, distinct, per_python, rows_of, span,
                                       table_of, values)
from lab.analysis.lessons.units import duration, times

CLAIM = ("Creating a process costs 12.2 µs: that is Process() alone; a started process costs "
         "at least 10x more")
THRESHOLD = 10  # start()+join() over Process(): a start is no constructor when above

CLAIM_BETWEEN = ("An interpreter starts faster than a process and slower than a thread (expected "
                 "here; discuss.python.org thread 53251: 10,000 interpreters took 11.1 s, 10,000 "
                 "processes 7.3 s)")
PUBLISHED_US = {"interpreter": 11.1 / 10_000 * 1e6, "process": 7.3 / 10_000 * 1e6}
NOT_HERE = "not on this Python"

METRIC_WORDS = {
    "start_join_us": "start()+join()", "constructor_us": "Process() alone",
    "thread_start_join_us": "a thread's start()+join()",
    "interpreter_start_us": "an interpreter's create+call+close",
    "pool_first_task_us": "fresh Pool(1) to its first result",
    "first_start_join_us": "first start()+join()", "start_join_p90_us": "start()+join() p90",
}
CHECKS = {None: ("check", "every child started and ran its target (its exit code, read after "
                          "the clock)")}


def observed(item, rows):
    ran = values(rows, "check.ran_target") or values(rows, "check.pids_written")  # older runs
    beside = ""
    if values(rows, "check.threads_ran"):
        beside = (f"; {span(values(rows, 'check.threads_ran'))} threads and "
                  f"{distinct(values(rows, 'check.interpreters_ran'))} interpreters ran theirs")
    return (f"{span(values(rows, 'check.processes_ran'))} children per trial, "
            f"{span(ran)} ran their target, exit codes "
            f"{distinct(values(rows, 'check.exit_codes'))}{beside}")


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


def verdicts_between(trials, summary):
    """Per (Python, CPU count, start method): a process's start over an interpreter's (> 1),
    and an interpreter's over a thread's (> 1); a fact where the Python has no interpreters."""
    out = []
    for python, cpus, rows in v.groups(rows_of(summary, every=True, lesson="start_cost")):
        for method, group in rows.groupby("resolved_start_method", sort=True):
            if not v.metric_values(trials, group, "thread_start_join_us"):
                continue  # a run from before threads and interpreters were measured
            interpreter = v.metric_values(trials, group, "interpreter_start_us")
            if not interpreter:
                out.append(v.row(CLAIM_BETWEEN, python, cpus, f"starts, {method}", v.FACT,
                                 note=NOT_HERE if not v.errored(trials, group)
                                 else "trials errored"))
                continue
            for figure, top, bottom in (
                    (f"process start()+join() / interpreter start, {method}",
                     v.metric_values(trials, group, "start_join_us"), interpreter),
                    (f"interpreter start / thread start()+join(), {method}", interpreter,
                     v.metric_values(trials, group, "thread_start_join_us"))):
                ratio, low, high, coverage, verdict = v.ratio_verdict(top, bottom, 1.0)
                out.append(v.row(CLAIM_BETWEEN, python, cpus, figure, verdict, ratio=ratio,
                                 low=low, high=high, coverage=coverage, threshold=1.0))
    return out


def both(table):
    """The claim's verdict: it has two sides (faster than a process, slower than a thread), so
    at one (Python, CPU count, start method) one side not held is not held, whatever the
    other; those verdicts combine as judge.combine says (held for spawn, not for fork:
    partly)."""
    if table is None or table.empty:
        return v.FACT
    found = []
    method = table["figure"].str.rsplit(", ", n=1).str[-1]  # each figure ends with it
    for _, rows in table.groupby([table["python"], table["cpus"], method]):
        verdicts = rows["verdict"].tolist()
        found.append(v.NOT_HELD if v.NOT_HELD in verdicts else v.combine(verdicts))
    return v.combine(found)


def claim_between(summary, checks, table=None):
    rows = rows_of(summary, lesson="start_cost")
    if rows.empty or "metric.thread_start_join_us" not in rows:
        return None
    parts = []
    for python, group in rows.groupby("python", sort=True):
        thread = float(group["metric.thread_start_join_us"].median())
        found = group.get("metric.interpreter_start_us")
        found = found.dropna() if found is not None else found
        interpreter = (duration(float(found.median())) if found is not None and len(found)
                       else NOT_HERE)
        processes = ", ".join(f"{method} {duration(float(g['metric.start_join_us'].median()))}"
                              for method, g in group.groupby("resolved_start_method"))
        parts.append(f"Python {python}: a thread {duration(thread)}, an interpreter "
                     f"{interpreter}, a process {processes}")
    verdict = both(table_of(table, CLAIM_BETWEEN))
    return (CLAIM_BETWEEN, verdict,
            f"{v.lead(verdict)}: {'; '.join(parts)} (medians). The published figures are "
            f"{duration(PUBLISHED_US['interpreter'])} an interpreter against "
            f"{duration(PUBLISHED_US['process'])} a process (discuss.python.org thread 53251).")


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
                (claim_constructor, claim_between), (verdicts, verdicts_between),
                also=("constructor_us", "pool_first_task_us", "start_join_p90_us",
                      "thread_start_join_us", "interpreter_start_us"))

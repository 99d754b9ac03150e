"""Lesson sync: Lock, RLock, Semaphore, Event, Condition and Barrier across processes; their
words, checks, observed and claims."""

from lab.analysis.lessons import judge as v
from lab.analysis.lessons.base import (Lesson, check_row, distinct, per_python, rows_of, span,
                                       table_of, values)
from lab.analysis.lessons.units import duration, times

METRIC_WORDS = {"op_us": "per operation", "ops_per_second": "operations/s", "wake_us": "wake-up",
                "release_spread_us": "release spread",
                "release_spread_max_us": "worst release spread"}
LOCK_CLAIM = "A Lock (mutex) lets one process at a time into its section"
SEM_CLAIM = "Semaphore(n) admits n at a time"
CHEAP_CLAIM = "A mutex is cheaper than a semaphore"
CHECKS = {
    "lock": ("check", "a Lock's critical sections never overlap (at most 1 inside); whether "
                      "another process may release it"),
    "rlock": ("check", "an RLock re-enters in its owner and refuses a release by another "
                       "process"),
    "semaphore": ("check", "Semaphore(2) never admits a third"),
    "semaphore_one": ("check", "Semaphore(1) never admits a second"),
    "event": ("check", "an Event wakes every waiter every round, none before set()"),
    "condition": ("check", "a Condition's consumers never take what was not produced; every "
                           "item consumed once"),
    "barrier": ("check", "a Barrier lets nobody out before the last arrives and releases all "
                         "within its bound"),
}


def observed(item, rows):
    def metric(name):
        return [float(v) for v in values(rows, f"metric.{name}")]

    if item in ("lock", "rlock", "semaphore", "semaphore_one", "test_lock_does_not_lock",
                "test_semaphore_admits_three"):
        text = (f"at most {span([int(v) for v in values(rows, 'check.most_inside')])} "
                f"inside over {span(values(rows, 'check.sections'), lambda v: f'{v:,.0f}')}"
                f" sections per trial")
        if item == "rlock":
            text += (f"; re-entered "
                     f"{span(values(rows, 'check.reentered'), lambda v: f'{v:,.0f}')} times")
        release = values(rows, "check.release_by_other_process")
        if release:
            text += f"; release by another process: {distinct(release)}"
        return text
    if item == "event":
        return (f"{span(values(rows, 'check.waiters'))} waiters woke in each of "
                f"{span(values(rows, 'check.rounds'))} rounds; wake-up median "
                f"{span(metric('wake_us'), duration)}")
    if item == "condition":
        if values(rows, "check.items"):
            return (f"{span(values(rows, 'check.items'), lambda v: f'{v:,.0f}')} items "
                    f"produced and consumed once")
        return "every item produced was consumed once, never before it was produced"
    if item == "barrier":
        return (f"{span(values(rows, 'check.parties'))} parties, "
                f"{span(values(rows, 'check.rounds'))} rounds; release spread median "
                f"{span(metric('release_spread_us'), duration)}, worst "
                f"{span(metric('release_spread_max_us'), duration)}")
    return "-"


def verdicts(trials, summary):
    """Per (Python, CPU count): the Lock's and Semaphore(2)'s behaviour checks; a Semaphore's
    cost per operation over a Lock's (> 1: the mutex is cheaper), Semaphore(1) where run (the
    same contention as the Lock), else Semaphore(2), which lets two in and so measures
    concurrency as well."""
    out = []
    for python, cpus, rows in v.groups(rows_of(summary, every=True, lesson="sync")):
        lock = rows[rows["item"] == "lock"]
        for claim, item in ((LOCK_CLAIM, "lock"), (SEM_CLAIM, "semaphore")):
            points = rows[rows["item"] == item]
            if len(points):
                out.append(v.check_verdict(claim, python, cpus, "trials that held it", trials,
                                           points))
        one = rows[rows["item"] == "semaphore_one"]
        sem = one if len(one) else rows[rows["item"] == "semaphore"]
        if len(lock) and len(sem):
            which = "Semaphore(1)" if len(one) else "Semaphore(2)"
            note = "" if len(one) else ("Semaphore(2) admits two at once: this measures "
                                        "concurrency too; run --primitives semaphore_one")
            out.append(v.gated_ratio(CHEAP_CLAIM, python, cpus,
                                     f"per operation, {which} / Lock", trials, sem, lock,
                                     "op_us", 1.0, note=note))
    return out


def claim_lock(summary, checks, table=None):
    row = check_row(checks, "sync", "lock")
    if row is None:
        return None
    costs = rows_of(summary, lesson="sync", item="lock")
    cost = per_python(costs, "metric.op_us", duration)
    verdict = v.decided(table_of(table, LOCK_CLAIM),
                        v.HELD if row["result"] == "PASS" else v.NOT_HELD)
    return (LOCK_CLAIM, verdict,
            f"{v.lead(verdict)}: {row['observed']} ({row['trials']} trials); an "
            f"acquire+release across processes cost {cost} per operation.")


def claim_semaphore(summary, checks, table=None):
    row = check_row(checks, "sync", "semaphore")
    if row is None:
        return None
    verdict = v.decided(table_of(table, SEM_CLAIM),
                        v.HELD if row["result"] == "PASS" else v.NOT_HELD)
    return (SEM_CLAIM, verdict, f"{v.lead(verdict)}: {row['observed']} ({row['trials']} trials).")


def claim_cheaper(summary, checks, table=None):
    lock = rows_of(summary, lesson="sync", item="lock")
    one = rows_of(summary, lesson="sync", item="semaphore_one")
    sem = one if len(one) else rows_of(summary, lesson="sync", item="semaphore")
    if lock.empty or sem.empty:
        return None
    which = "Semaphore(1)" if len(one) else "Semaphore(2)"
    ratio = float(sem["metric.op_us"].median()) / float(lock["metric.op_us"].median())
    verdict = v.decided(table_of(table, CHEAP_CLAIM), v.HELD if ratio > 1 else v.NOT_HELD)
    return (CHEAP_CLAIM, verdict,
            f"{v.lead(verdict)}: a Lock cost {per_python(lock, 'metric.op_us', duration)} per "
            f"operation, {which} {per_python(sem, 'metric.op_us', duration)} ({times(ratio)}). "
            f"In CPython both are the same SemLock code (a Lock is a semaphore of 1 that "
            f"knows its owner)"
            + ("." if len(one) else "; Semaphore(2) lets two in at once, so its figure per "
                                    "operation measures concurrency too."))


LESSON = Lesson("sync", "primitive", "op_us", METRIC_WORDS, CHECKS, observed,
                (claim_lock, claim_semaphore, claim_cheaper), (verdicts,),
                also=("ops_per_second", "wake_us", "release_spread_us"))

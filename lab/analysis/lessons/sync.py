"""Lesson sync: Lock, RLock, Semaphore, Event, Condition and Barrier across processes; their
words, checks, observed and claims."""

from lab.analysis.lessons.base import (Lesson, check_row, distinct, per_python, rows_of, span,
                                       values)
from lab.analysis.lessons.units import duration, times

METRIC_WORDS = {"op_us": "per operation", "ops_per_second": "operations/s", "wake_us": "wake-up",
                "release_spread_us": "release spread",
                "release_spread_max_us": "worst release spread"}
CHECKS = {
    "lock": ("check", "a Lock's critical sections never overlap (at most 1 inside); whether "
                      "another process may release it"),
    "rlock": ("check", "an RLock re-enters in its owner and refuses a release by another "
                       "process"),
    "semaphore": ("check", "Semaphore(2) never admits a third"),
    "event": ("check", "an Event wakes every waiter every round, none before set()"),
    "condition": ("check", "a Condition's consumers never take what was not produced; every "
                           "item consumed once"),
    "barrier": ("check", "a Barrier lets nobody out before the last arrives and releases all "
                         "within its bound"),
}


def observed(item, rows):
    def metric(name):
        return [float(v) for v in values(rows, f"metric.{name}")]

    if item in ("lock", "rlock", "semaphore", "test_lock_does_not_lock",
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


def claim_lock(summary, checks):
    row = check_row(checks, "sync", "lock")
    if row is None:
        return None
    costs = rows_of(summary, lesson="sync", item="lock")
    cost = per_python(costs, "metric.op_us", duration)
    held = row["result"] == "PASS"
    return ("A Lock (mutex) lets one process at a time into its section",
            "held" if held else "not held",
            f"{'Held' if held else 'Not held'}: {row['observed']} ({row['trials']} trials); an "
            f"acquire+release across processes cost {cost} per operation.")


def claim_semaphore(summary, checks):
    row = check_row(checks, "sync", "semaphore")
    if row is None:
        return None
    held = row["result"] == "PASS"
    text = f"{'Held' if held else 'Not held'}: {row['observed']} ({row['trials']} trials)."
    lock = rows_of(summary, lesson="sync", item="lock")
    sem = rows_of(summary, lesson="sync", item="semaphore")
    verdict = "held" if held else "not held"
    if len(lock) and len(sem):
        ratio = float(sem["metric.op_us"].median()) / float(lock["metric.op_us"].median())
        cheaper = ratio > 1
        text += (f" The tutorial adds that a mutex is more efficient than a semaphore: a Lock "
                 f"cost {per_python(lock, 'metric.op_us', duration)} per operation, "
                 f"Semaphore(2) {per_python(sem, 'metric.op_us', duration)} "
                 f"({times(ratio)}): {'held' if cheaper else 'not held'}.")
        if held and not cheaper:
            verdict = "partly"
    return ("Semaphore(n) admits n at a time; a mutex is cheaper", verdict, text)


LESSON = Lesson("sync", "primitive", "op_us", METRIC_WORDS, CHECKS, observed,
                (claim_lock, claim_semaphore))

"""Lesson interpreter_boundary: what crosses between interpreters as it is (shareable) and what
is pickled, and what each costs per object; InterpreterPoolExecutor's pickle fallback against
ProcessPoolExecutor. Its words, check, observed, claims and verdicts (Python 3.14+)."""

from lab.analysis.lessons import judge as v
from lab.analysis.lessons.base import Lesson, distinct, per_python, rows_of, span, table_of, values
from lab.analysis.lessons.units import duration, times
from lab.experiments.lessons_interp import PICKLED_KINDS, POOL_KINDS, SHAREABLE_KINDS

CLAIM_SHAREABLE = ("Shareable objects (None, bool, int, float, str, bytes, tuples of them) cross "
                   "an interpreter boundary cheaply; lists and dicts are pickled and cost more")
CLAIM_POOL = ("Lists and dicts go slower through InterpreterPoolExecutor (pickled) than through "
              "ProcessPoolExecutor (cpython issue #148072, 2026: 2-17x)")
THRESHOLD = 1.0  # a pickled kind's cost per object over the tuple's; the pools' ratio

METRIC_WORDS = {**{f"queue_{kind}_us": f"{kind} through an interpreters queue"
                   for kind in SHAREABLE_KINDS + PICKLED_KINDS},
                **{f"pool_{kind}_us": f"a {kind} through the pool" for kind in POOL_KINDS}}
HEADLINE = {"queue": "queue_list_us", "interpreter_pool": "pool_list_us",
            "process_pool": "pool_list_us"}
CHECKS = {None: ("check", "every object crossed intact and in order (compared in the receiving "
                          "interpreter; the pools' checksums)")}


def observed(item, rows):
    if item == "queue":
        return (f"{span(values(rows, 'check.objects_per_kind'), lambda x: f'{x:,.0f}')} "
                f"objects per kind intact; shareable: "
                f"{distinct(values(rows, 'check.shareable_kinds'))}; pickled: "
                f"{distinct(values(rows, 'check.pickled_kinds'))}")
    return (f"{span(values(rows, 'check.objects_per_kind'), lambda x: f'{x:,.0f}')} lists and "
            f"dicts each, checksums exact; workers {distinct(values(rows, 'check.workers'))}")


def verdicts(trials, summary):
    """Per (Python, CPU count): each pickled kind's cost per object over the tuple's (> 1:
    held), and the interpreter pool's over the process pool's per kind (> 1: held)."""
    out = []
    for python, cpus, rows in v.groups(
            rows_of(summary, every=True, lesson="interpreter_boundary")):
        queue = rows[rows["item"] == "queue"]
        if len(queue):
            tuple_us = v.metric_values(trials, queue, "queue_tuple_us")
            for kind in PICKLED_KINDS:
                out.append(_ratio(CLAIM_SHAREABLE, python, cpus, f"per object, {kind} / tuple",
                                  trials, queue, v.metric_values(trials, queue,
                                                                 f"queue_{kind}_us"), tuple_us))
        mine = rows[rows["item"] == "interpreter_pool"]
        theirs = rows[rows["item"] == "process_pool"]
        if len(mine) and len(theirs):
            for kind in POOL_KINDS:
                out.append(_ratio(CLAIM_POOL, python, cpus,
                                  f"per {kind}, InterpreterPool / ProcessPool", trials,
                                  mine, v.metric_values(trials, mine, f"pool_{kind}_us"),
                                  v.metric_values(trials, theirs, f"pool_{kind}_us"), theirs))
    return out


def _ratio(claim, python, cpus, figure, trials, rows, top, bottom, other=None):
    bad = v.errored(trials, rows) + (v.errored(trials, other) if other is not None else 0)
    if bad and (len(top) < 2 or len(bottom) < 2):
        return v.row(claim, python, cpus, figure, v.NO_VERDICT, threshold=THRESHOLD,
                     note=f"{bad} trial(s) errored")
    ratio, low, high, coverage, verdict = v.ratio_verdict(top, bottom, THRESHOLD)
    note = "fewer than 2 trials a side: no interval" if verdict == v.CANT_TELL and min(
        len(top), len(bottom)) < 2 else ""
    return v.row(claim, python, cpus, figure, verdict, ratio=ratio, low=low, high=high,
                 coverage=coverage, threshold=THRESHOLD, note=note)


def claim_shareable(summary, checks, table=None):
    rows = rows_of(summary, lesson="interpreter_boundary", item="queue")
    if rows.empty:
        return None
    cheap = "; ".join(f"{kind} {per_python(rows, f'metric.queue_{kind}_us', duration)}"
                      for kind in SHAREABLE_KINDS if f"metric.queue_{kind}_us" in rows)
    pickled = "; ".join(f"{kind} {per_python(rows, f'metric.queue_{kind}_us', duration)}"
                        for kind in PICKLED_KINDS if f"metric.queue_{kind}_us" in rows)
    verdict = v.decided(table_of(table, CLAIM_SHAREABLE), v.CANT_TELL)
    return (CLAIM_SHAREABLE, verdict,
            f"{v.lead(verdict)}: per object, put here and taken in a second interpreter: "
            f"{cheap}; pickled: {pickled} (medians).")


def claim_pool(summary, checks, table=None):
    mine = rows_of(summary, lesson="interpreter_boundary", item="interpreter_pool")
    theirs = rows_of(summary, lesson="interpreter_boundary", item="process_pool")
    if mine.empty or theirs.empty:
        return None
    parts = []
    for kind in POOL_KINDS:
        column = f"metric.pool_{kind}_us"
        ratio = float(mine[column].median()) / float(theirs[column].median())
        parts.append(f"a {kind} {per_python(mine, column, duration)} through "
                     f"InterpreterPoolExecutor, {per_python(theirs, column, duration)} through "
                     f"ProcessPoolExecutor ({times(ratio)})")
    verdict = v.decided(table_of(table, CLAIM_POOL), v.CANT_TELL)
    return (CLAIM_POOL, verdict, f"{v.lead(verdict)}: {'; '.join(parts)} (medians; the issue "
                                 f"found the interpreter pool 2-17x slower).")


LESSON = Lesson("interpreter_boundary", "crossing", HEADLINE, METRIC_WORDS, CHECKS, observed,
                (claim_shareable, claim_pool), (verdicts,),
                also=("queue_tuple_us", "queue_dict_us", "pool_dict_us"))

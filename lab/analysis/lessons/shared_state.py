"""Lesson shared_state: a counter shared by processes through a Manager, Value, Array or
SharedMemory, locked or not; its words, checks, observed and claims."""

from lab.analysis.lessons import judge as v
from lab.analysis.lessons.base import Lesson, per_python, rows_of, span, table_of, values
from lab.analysis.lessons.units import cpus_words, rate, short_python, times

LOST_NOTE_MIN = 0  # a Value without its lock: lost updates above this are the lesson seen
METRIC_WORDS = {"increments_per_second": "increments/s", "increment_us": "per increment",
                "lost_updates": "lost updates"}
FAST_CLAIM = "Shared memory performs best (against a Queue and a Pipe)"
RIVALS = {"queue": "a Queue", "pipe": "a Pipe", "manager_dict": "a Manager dict"}
LOST_CLAIM = "Without its lock a Value loses updates (why synchronising is needed)"
CHECKS = {None: ("check", "the counter is exact under its lock: no update lost"),
          "queue": ("check", "every increment sent through the Queue reached the holder"),
          "pipe": ("check", "every increment sent through a Pipe reached the holder"),
          "value_unlocked": ("lesson", "a Value incremented without its lock loses updates "
                                       "under contention")}


def observed(item, rows):
    expected = [int(v) for v in values(rows, "check.expected")]
    final = [int(v) for v in values(rows, "check.final")]
    if item == "value_unlocked":
        lost = [e - f for e, f in zip(expected, final)]
        share = [x / e for x, e in zip(lost, expected) if e]
        return (f"lost {span(lost, lambda v: f'{v:,}')} of "
                f"{span(expected, lambda v: f'{v:,}')} increments "
                f"({span(share, lambda v: f'{v:.0%}')}); "
                f"{sum(1 for x in lost if x > LOST_NOTE_MIN)} of {len(lost)} trials lost some")
    return (f"final = expected ({span(expected, lambda v: f'{v:,}')}) in {len(final)} of "
            f"{len(final)} trials; 0 lost")


def verdicts(trials, summary):
    """Per (Python, CPU count): shared memory's increments/s over a Manager dict's (> 1); an
    unlocked Value's trials: held when every one lost updates, not held when none did, can't
    tell when some did."""
    out = []
    for python, cpus, rows in v.groups(rows_of(summary, every=True, lesson="shared_state")):
        fast = rows[rows["item"] == "shared_memory"]
        rivals = [r for r in ("queue", "pipe") if (rows["item"] == r).any()] or \
            [r for r in ("manager_dict",) if (rows["item"] == r).any()]
        for rival in rivals if len(fast) else ():
            note = ("" if rival != "manager_dict" else "the tutorial compares shared memory "
                    "with Pipe and Queue; a Manager is a server process behind a proxy, so "
                    "this comparison can hardly fail: run --states shared_memory,queue,pipe")
            out.append(v.gated_ratio(FAST_CLAIM, python, cpus,
                                     f"increments/s, shared memory / {RIVALS[rival]}", trials,
                                     fast, rows[rows["item"] == rival],
                                     "increments_per_second", 1.0, note=note))
        unlocked = rows[rows["item"] == "value_unlocked"]
        if len(unlocked):
            out.append(_lost_verdict(trials, python, cpus, unlocked))
    return out


def _lost_verdict(trials, python, cpus, points):
    lost = v.metric_values(trials, points, "lost_updates")
    bad = v.errored(trials, points)
    figure = "trials that lost updates without the lock"
    if not lost:
        return v.row(LOST_CLAIM, python, cpus, figure, v.NO_VERDICT, unit="trials",
                     note=f"{bad} trial(s) errored" if bad else "no trial")
    some = sum(1 for x in lost if x > LOST_NOTE_MIN)
    verdict = (v.HELD if some == len(lost) else v.NOT_HELD if some == 0 else v.CANT_TELL)
    return v.row(LOST_CLAIM, python, cpus, figure, verdict, unit="trials", ratio=float(some),
                 note=f"{some} of {len(lost)} trials lost updates"
                      + (f"; {bad} errored" if bad else ""))


def claim_shared_memory(summary, checks, table=None):
    rows = rows_of(summary, lesson="shared_state")
    fast = rows[rows["item"] == "shared_memory"]
    rivals = rows[rows["item"].isin(list(RIVALS))]
    if fast.empty or rivals.empty:
        return None
    ratios = []
    for (python, cpus), group in rows.groupby(["python", "cpus"]):
        mine = group[group["item"] == "shared_memory"]["metric.increments_per_second"]
        for rival in RIVALS:
            other = group[group["item"] == rival]["metric.increments_per_second"]
            if len(mine) and len(other):
                ratios.append(float(mine.iloc[0]) / float(other.iloc[0]))
    verdict = v.decided(table_of(table, FAST_CLAIM),
                        v.HELD if ratios and min(ratios) > 1 else v.NOT_HELD)
    figures = "; ".join(
        f"{item} {per_python(rows[rows['item'] == item], 'metric.increments_per_second', rate)}"
        for item in ("shared_memory", "value_locked", "array_locked", "queue", "pipe",
                     "manager_dict")
        if (rows["item"] == item).any())
    against = ("" if rows["item"].isin(["queue", "pipe"]).any() else
               " Only a Manager dict was run against it here, which the tutorial does not "
               "compare (a server process behind a proxy: it can hardly win); run --states "
               "shared_memory,queue,pipe for the tutorial's comparison.")
    return (FAST_CLAIM, verdict,
            f"{v.lead(verdict)}: increments per second of one counter shared by the workers "
            f"(median over CPU counts) — {figures}; shared memory was {times(min(ratios))} to "
            f"{times(max(ratios))} the others' rates. A Queue or a Pipe shares the counter by "
            f"sending every increment to a holder that adds them up.{against}")


def claim_sync_hardest(summary, checks, table=None):
    rows = rows_of(summary, lesson="shared_state", item="value_unlocked")
    if rows.empty or "lost_fraction" not in rows:
        return None
    locked = rows_of(summary, lesson="shared_state")
    locked = locked[locked["item"] != "value_unlocked"]
    lost_any = bool((rows["metric.lost_updates"] > 0).any())
    parts = []
    for (python, cpus), group in rows.groupby(["python", "cpus"]):
        parts.append(f"{group['lost_fraction'].iloc[0]:.0%} (up to "
                     f"{group['lost_fraction_max'].iloc[0]:.0%}) at {cpus_words(cpus)} on "
                     f"{short_python(python)}")
    exact = ""
    if len(locked):
        bad = locked["metric.lost_updates"].fillna(0).gt(0).any()
        exact = (" Every locked state ended exact (0 lost)." if not bad
                 else " A locked state lost updates: see the checks.")
    verdict = v.decided(table_of(table, LOST_CLAIM), v.HELD if lost_any else v.NOT_HELD)
    return (LOST_CLAIM, verdict,
            f"{v.lead(verdict)}: a Value incremented without its "
            f"lock lost a median {', '.join(parts)} of its increments (a lesson, not a failed "
            f"trial).{exact} That synchronising is the tutorial's 'hardest part' is an opinion no "
            f"trial can test: what is measured is that it is needed.")


LESSON = Lesson("shared_state", "state", "increments_per_second", METRIC_WORDS, CHECKS,
                observed, (claim_shared_memory, claim_sync_hardest), (verdicts,),
                also=("increment_us", "lost_updates"))

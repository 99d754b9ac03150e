"""Lesson shared_state: a counter shared by processes through a Manager, Value, Array or
SharedMemory, locked or not; its words, checks, observed and claims."""

from lab.analysis.lessons.base import Lesson, per_python, rows_of, span, values
from lab.analysis.lessons.units import cpus_words, rate, short_python, times

LOST_NOTE_MIN = 0  # a Value without its lock: lost updates above this are the lesson seen
METRIC_WORDS = {"increments_per_second": "increments/s", "increment_us": "per increment",
                "lost_updates": "lost updates"}
CHECKS = {None: ("check", "the counter is exact under its lock: no update lost"),
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


def claim_shared_memory(summary, checks):
    rows = rows_of(summary, lesson="shared_state")
    manager = rows[rows["item"] == "manager_dict"]
    fast = rows[rows["item"].isin(["value_locked", "array_locked", "shared_memory"])]
    if manager.empty or fast.empty:
        return None
    ratios = []
    for (python, cpus), group in rows.groupby(["python", "cpus"]):
        m = group[group["item"] == "manager_dict"]["metric.increments_per_second"]
        others = group[group["item"].isin(["value_locked", "array_locked", "shared_memory"])]
        if m.empty or others.empty:
            continue
        low = float(others["metric.increments_per_second"].min())
        high = float(others["metric.increments_per_second"].max())
        ratios += [low / float(m.iloc[0]), high / float(m.iloc[0])]
    held = bool(ratios) and min(ratios) > 1
    figures = "; ".join(
        f"{item} {per_python(rows[rows['item'] == item], 'metric.increments_per_second', rate)}"
        for item in ("shared_memory", "value_locked", "array_locked", "manager_dict")
        if (rows["item"] == item).any())
    return ("Shared memory is the fastest way to share state (against a Manager)",
            "held" if held else "not held",
            f"{'Held' if held else 'Not held'}: locked increments per second (median over CPU "
            f"counts) — {figures}; shared memory and Value/Array were "
            f"{times(min(ratios))} to {times(max(ratios))} a Manager dict's rate.")


def claim_sync_hardest(summary, checks):
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
    return ("...but synchronising shared memory is the hardest part",
            "held" if lost_any else "not held",
            f"{'Held' if lost_any else 'Not seen this run'}: a Value incremented without its "
            f"lock lost a median {', '.join(parts)} of its increments (a lesson, not a failed "
            f"trial).{exact}")


LESSON = Lesson("shared_state", "state", "increments_per_second", METRIC_WORDS, CHECKS,
                observed, (claim_shared_memory, claim_sync_hardest))

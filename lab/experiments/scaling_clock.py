"""IN THE TRIAL (standard library only): how a scaling executor's section is timed and its
warm-up proven, for every executor (process pools, processes, threads, interpreters).

`TimedSection`: perf_counter around the parallel section, the trial counters read just outside
it. `StampedSection`: from the workers' own stamps (earliest start to latest end of work).
`check_warm`: every worker took its warm-up task. `Executed`: what an executor hands the trial.
"""

import math
import time
from typing import NamedTuple

from lab import sysinfo
from lab.experiments import TrialCheckFailed

WARM_BARRIER_TIMEOUT_S = 120.0  # a worker that never takes its warm-up task fails the trial


class Executed(NamedTuple):
    """An executor's run: the chunk records (in the order of the units asked), the timed
    section, the seconds it took to start (a pool's constructor; for processes, to the first
    work), the workers used, the ids (pid, thread ident, interpreter id) that took a warm-up
    task, and for pools the seconds from the constructor until every worker had started and
    taken its warm-up task (what starting the pool costs before it can work: NaN elsewhere),
    and for pools the median round trip of one empty task after the section (NaN elsewhere)."""
    chunks: list
    section: object
    start_seconds: float
    workers_used: int
    warmed: list
    ready_seconds: float = math.nan
    round_trip_seconds: float = math.nan


ROUND_TRIPS = 21  # one empty task at a time, after the timed section: its median is the cost


def round_trip_median(call):
    """Median seconds of `call()` (one task sent to a warm pool and its result back, waited
    for before the next): what handing a pool one task costs, beside what its work costs."""
    times = []
    for _ in range(ROUND_TRIPS):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


class TimedSection:
    """perf_counter around the parallel section, and the trial counters (cgroup CPU and
    throttling, steal) read just outside it, so pool start and warm-up are not charged to it."""

    def __enter__(self):
        self.counters_before = sysinfo.trial_counters()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *_exc):
        self.seconds = time.perf_counter() - self.start
        self.counters = sysinfo.counters_delta(self.counters_before, sysinfo.trial_counters())
        return False


class StampedSection:
    """The process variant's section: from the earliest worker's start of work to the latest
    end, from the workers' own perf_counter stamps (the parent's clock would start after the
    release, while the workers already spin); the trial counters read by the parent just
    before it releases the workers and after the last result."""

    def __init__(self, counters_before, chunks):
        self.start = min(c["t_start"] for c in chunks)
        self.seconds = max(c["t_end"] for c in chunks) - self.start
        self.counters = sysinfo.counters_delta(counters_before, sysinfo.trial_counters())


def check_warm(warmed_ids, workers, kind="pool workers"):
    """Every one of the `workers` workers (`kind`: pool workers, threads, interpreters) must
    have taken a warm-up task: as many distinct ids as workers."""
    distinct = len(set(warmed_ids))
    if distinct != workers:
        raise TrialCheckFailed(f"the warm-up reached {distinct} of the {workers} {kind}")
    return {"warmed_workers": distinct, "all_workers_warmed": True}

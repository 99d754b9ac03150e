"""IN THE TRIAL (standard library only): the in-process executors of a scaling trial, given a
task's work function and the units of each chunk (lab.experiments.scaling_task):

  threads       concurrent.futures.ThreadPoolExecutor of `workers` threads (one GIL for all on a
                GIL build: the tutorial's reason to use processes)
  interpreters  concurrent.futures.InterpreterPoolExecutor of `workers` interpreters (Python
                3.14+, PEP 734: each interpreter has its own GIL, all in one process)

Both pools start their workers lazily, one per task submitted while none is idle. The warm-up
is a barrier-like scheme on two queues (queue.Queue for threads, a concurrent.interpreters queue
for interpreters, the only kind that crosses interpreters): each of `warm_tasks` warm-up tasks
puts its worker's id (thread ident, interpreter id) on `arrive` and blocks on `release`; the
trial takes every arrival, then releases them all, so no worker can take two warm-up tasks and
every worker is started and has run the work before the clock starts. The pool's ready time is
from its constructor until every worker has arrived (threads made, interpreters created). The
section is timed by the trial's clock around executor.map, like the process Pool's.
"""

import queue
import time
from concurrent.futures import ThreadPoolExecutor

from lab.experiments import SpecError, TrialCheckFailed
from lab.experiments.scaling_clock import (WARM_BARRIER_TIMEOUT_S, Executed, TimedSection,
                                           round_trip_median)
from lab.experiments.scaling_task import echo, run_chunk, warm_and_wait

KINDS = {"threads": "thread", "interpreters": "interpreter"}


def interpreters_missing():
    """None where InterpreterPoolExecutor exists here, else why not (naming this Python)."""
    import platform
    try:
        from concurrent.futures import InterpreterPoolExecutor  # noqa: F401 (3.14+)
    except ImportError:
        return (f"InterpreterPoolExecutor needs Python 3.14 or later; this trial's Python is "
                f"{platform.python_version()}")
    return None


def _pool(kind, workers):
    """(executor, arrive queue, release queue) of `kind`."""
    if kind == "threads":
        return ThreadPoolExecutor(max_workers=workers), queue.Queue(), queue.Queue()
    missing = interpreters_missing()
    if missing:
        raise SpecError(missing)
    from concurrent import interpreters
    from concurrent.futures import InterpreterPoolExecutor
    return (InterpreterPoolExecutor(max_workers=workers), interpreters.create_queue(),
            interpreters.create_queue())


def executor_run(kind, workers, work, asked, warm_units, warm_tasks):
    """`workers` threads or interpreters (`kind`), each warmed untimed and proven, then the
    chunks `asked` timed alone. `warm_tasks` is `workers` (one fewer only for the cold-worker
    test doubles, which leave one worker to start inside the timed section)."""
    who = KINDS[kind]
    start = time.perf_counter()
    executor, arrive, release = _pool(kind, workers)
    constructed = time.perf_counter() - start  # lazy pools: nothing started yet
    try:
        warming = [executor.submit(warm_and_wait, work, warm_units, arrive, release,
                                   WARM_BARRIER_TIMEOUT_S, who) for _ in range(warm_tasks)]
        for arrived in range(warm_tasks):
            try:
                arrive.get(timeout=WARM_BARRIER_TIMEOUT_S)
            except queue.Empty:
                raise TrialCheckFailed(f"the warm-up reached {arrived} of the {workers} "
                                       f"{who}s in {WARM_BARRIER_TIMEOUT_S:g} s") from None
        ready_seconds = time.perf_counter() - start  # every worker started and holding a task
        for _ in range(warm_tasks):
            release.put(True)
        warmed = [future.result(WARM_BARRIER_TIMEOUT_S) for future in warming]
        with TimedSection() as section:
            chunks = list(executor.map(run_chunk, [work] * len(asked), asked))
        round_trip = round_trip_median(
            lambda: executor.submit(echo, 0).result(WARM_BARRIER_TIMEOUT_S))
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
    return Executed(chunks, section, constructed, workers, warmed, ready_seconds, round_trip)

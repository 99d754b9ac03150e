"""IN THE TRIAL (standard library only): the process executors of a scaling trial, each given a
task's work function and the units of each chunk (lab.experiments.scaling_task), each warming
every worker untimed and proving it, then timing the parallel section alone:

  pool_run      a multiprocessing Pool; one warm-up task per worker, each waiting on a Barrier
                of all of them (given to the workers when the pool starts), so no worker can
                take two; the barrier's release is when the pool was ready (every worker
                started and holding a task); timed by the parent's clock around pool.map
  process_run   one Process per chunk, warm, parked on a Barrier, released together; timed from
                the workers' own stamps
  ceiling_run   one spinner per CPU of the trial's affinity, each pinned to its own CPU; timed
                like process_run
"""

import os
import time

from lab import sysinfo
from lab.experiments import SpecError, TrialCheckFailed, stop_processes
from lab.experiments.scaling_clock import (WARM_BARRIER_TIMEOUT_S, Executed, StampedSection,
                                           TimedSection, round_trip_median)
from lab.experiments.scaling_task import echo, run_chunk

_warm_barrier = None  # a pool worker's Barrier of all warm-up tasks (set by _pool_worker_init)


def _pool_worker_init(barrier):
    global _warm_barrier
    _warm_barrier = barrier


def _warm_task(job):
    """One worker's warm-up, job = (work, units): wait until every warm-up task is held by a
    worker, so no worker can take two, then run it. Returns (pid, perf_counter when every
    worker was there: the pool was ready)."""
    work, units = job
    _warm_barrier.wait(WARM_BARRIER_TIMEOUT_S)
    ready = time.perf_counter()
    work(units)
    return os.getpid(), ready


def _pool_chunk(job):
    work, units = job
    return run_chunk(work, units)


def pool_run(context, workers, work, asked, warm_units, warm_tasks):
    """Start a pool of `workers` (Pool()'s default size when None), warm every worker untimed,
    then time the chunks `asked` alone. `warm_tasks` is the pool's size (one fewer only for
    the test_cold_worker double)."""
    barrier = context.Barrier(warm_tasks)
    start = time.perf_counter()
    pool = context.Pool(processes=workers, initializer=_pool_worker_init, initargs=(barrier,))
    pool_start_seconds = time.perf_counter() - start
    try:
        warmed = pool.map(_warm_task, [(work, warm_units)] * warm_tasks, chunksize=1)
        ready_seconds = min(ready for _, ready in warmed) - start  # the barrier's release
        with TimedSection() as section:
            chunks = pool.map(_pool_chunk, [(work, n) for n in asked], chunksize=1)
        workers_used = pool._processes  # the size Pool() chose when workers is None
        round_trip = round_trip_median(lambda: pool.apply(echo, (0,)))
    finally:
        pool.close()
        pool.join()
    return Executed(chunks, section, pool_start_seconds, workers_used,
                    [pid for pid, _ in warmed], ready_seconds, round_trip)


def _process_worker(ready, go, results, work, warm_units, units):
    work(warm_units)
    ready.wait()  # warm; the parent reads the counters once every worker is here
    go.wait()  # released together; run_chunk stamps its own start and end of work
    results.put(run_chunk(work, units))


def process_run(context, work, asked, warm_units):
    """One Process per chunk of `asked`; Executed.start_seconds: from the first start() to the
    earliest start of work."""
    workers = len(asked)
    ready, go = context.Barrier(workers + 1), context.Barrier(workers + 1)
    results = context.Queue()
    start = time.perf_counter()
    processes = [context.Process(target=_process_worker,
                                 args=(ready, go, results, work, warm_units, n))
                 for n in asked]
    for process in processes:
        process.start()
    ready.wait()
    counters_before = sysinfo.trial_counters()  # every worker warm and parked: no warm-up in it
    go.wait()
    by_pid = {}
    for _ in processes:
        chunk = results.get()
        by_pid[chunk["pid"]] = chunk
    for process in processes:
        process.join()
    chunks = [by_pid[process.pid] for process in processes]  # in the order of asked
    section = StampedSection(counters_before, chunks)
    # Each process warms itself before the barrier: one warm-up per distinct pid.
    return Executed(chunks, section, section.start - start, workers,
                    [c["pid"] for c in chunks])


def _spinner(cpu, ready, go, send, work, warm_units, units):
    """One ceiling spinner: pinned to `cpu` alone, warm, parked, released, spins, reports."""
    os.sched_setaffinity(0, {cpu})
    work(warm_units)
    ready.wait()
    go.wait()
    chunk = run_chunk(work, units)
    chunk["cpu"] = sorted(os.sched_getaffinity(0))
    send.send(chunk)
    send.close()


def ceiling_run(context, count, work, units, warm_units):
    """`count` spinners, one per CPU of this trial's affinity (the first `count` of them), each
    running `units` of `work`."""
    cpus = sorted(os.sched_getaffinity(0))
    if count > len(cpus):
        raise SpecError(f"scaling ceiling needs one CPU per spinner: {count} spinners, "
                        f"{len(cpus)} CPUs ({cpus})")
    ready, go = context.Barrier(count + 1), context.Barrier(count + 1)
    pipes = [context.Pipe(duplex=False) for _ in range(count)]
    start = time.perf_counter()
    processes = [context.Process(target=_spinner,
                                 args=(cpu, ready, go, send, work, warm_units, units))
                 for cpu, (_, send) in zip(cpus, pipes)]
    started = []
    try:
        for process in processes:
            process.start()
            started.append(process)
        ready.wait(WARM_BARRIER_TIMEOUT_S)
        counters_before = sysinfo.trial_counters()  # every spinner warm and parked
        go.wait(WARM_BARRIER_TIMEOUT_S)
        chunks = [receive.recv() for receive, _ in pipes]
    finally:
        stop_processes(started, graceful=True)
    pinned = [c["cpu"] for c in chunks]
    if pinned != [[cpu] for cpu in cpus[:count]]:
        raise TrialCheckFailed(f"the spinners ran on {pinned}, not one each on {cpus[:count]}")
    section = StampedSection(counters_before, chunks)
    return Executed(chunks, section, section.start - start, count, [c["pid"] for c in chunks])

"""CPU-bound scaling: the tutorial's `task()` (loops of math.sin(40) + math.cos(40)) made parallel.

Variants (`params.work` is the number of loop iterations, the tutorial's 6 x 10^7 at `--work seed`):
  serial   the whole work in this process, no pool: the absolute baseline
  strong   fixed total work in `workers` equal chunks on a Pool
  weak     `work` iterations per worker on a Pool (total grows with workers)
  process  one Process per worker, parked on a Barrier; the clock runs from release to last result
  seed     the tutorial's split: 6 equal tasks on a Pool of `workers` (speedup capped at 6/ceil(6/c))
  calibrate  iterations per second of one process, for sizing the work of a run

Each chunk returns its iteration count, its sum and its own CPU time, so the trial checks the
computed sum and reports the workers' CPU seconds of the timed section.
"""

import math
import multiprocessing
import time

from lab import sysinfo
from lab.experiments import SpecError, TrialCheckFailed

NAME = "scaling"
VARIANTS = ("serial", "strong", "weak", "process", "seed", "calibrate")
SEED_TASKS = 6  # the tutorial splits its work into six tasks
UNIT_VALUE = math.sin(40) + math.cos(40)  # what one iteration adds to the sum
WARMUP_FRACTION = 0.02  # untimed warm-up: a small piece of the same work on the same pool


def spin(iterations):
    """The tutorial's work: `iterations` loops of math.sin(40) + math.cos(40).

    Returns (iterations, sum, cpu_seconds of this process while spinning)."""
    cpu_start = time.process_time()
    total = 0.0
    for _ in range(iterations):
        total += math.sin(40) + math.cos(40)
    return iterations, total, time.process_time() - cpu_start


def split_work(work, parts):
    """`work` iterations in `parts` chunks as equal as integers allow (they sum to `work`)."""
    base, extra = divmod(work, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def check_chunks(chunks, expected_iterations):
    """A wrong count or sum is a failed trial: every iteration must have run exactly once."""
    iterations = sum(c[0] for c in chunks)
    if iterations != expected_iterations:
        raise TrialCheckFailed(f"ran {iterations} iterations, expected {expected_iterations}")
    total = sum(c[1] for c in chunks)
    expected_sum = expected_iterations * UNIT_VALUE
    # Summing the same value n times drifts by at most ~n ulps; 1e-6 relative is far above that.
    if not math.isclose(total, expected_sum, rel_tol=1e-6, abs_tol=1e-9):
        raise TrialCheckFailed(f"sum {total!r} differs from expected {expected_sum!r}")
    return {"iterations": iterations, "sum": total}


class TimedSection:
    """perf_counter around the parallel section, and the cgroup's CPU and throttling counters
    read just outside it, so pool start and warm-up throttling are not charged to it."""

    def __enter__(self):
        self.counters_before = sysinfo.cpu_counters()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *_exc):
        self.seconds = time.perf_counter() - self.start
        self.counters = sysinfo.counters_delta(self.counters_before, sysinfo.cpu_counters())
        return False


def _pool_run(context, workers, timed_chunks, warm_chunks):
    """Start a pool, warm it untimed, then time the parallel section alone."""
    start = time.perf_counter()
    pool = context.Pool(processes=workers)
    pool_start_seconds = time.perf_counter() - start
    try:
        pool.map(spin, warm_chunks, chunksize=1)
        with TimedSection() as section:
            chunks = pool.map(spin, timed_chunks, chunksize=1)
        workers_used = pool._processes  # the size Pool() chose when workers is None
    finally:
        pool.close()
        pool.join()
    return chunks, section, pool_start_seconds, workers_used


def _process_worker(barrier, results, warm_iterations, iterations):
    spin(warm_iterations)
    barrier.wait()  # parked until every worker is ready; the parent starts the clock on release
    results.put(spin(iterations))


def _process_run(context, workers, work_per_worker, warm_iterations):
    barrier = context.Barrier(workers + 1)
    results = context.Queue()
    start = time.perf_counter()
    processes = [context.Process(target=_process_worker,
                                 args=(barrier, results, warm_iterations, n))
                 for n in work_per_worker]
    for process in processes:
        process.start()
    barrier.wait()
    with TimedSection() as section:
        chunks = [results.get() for _ in processes]
    for process in processes:
        process.join()
    return chunks, section, section.start - start, workers


def _calibrate(seconds_wanted):
    """Iterations per second of one process, measured over about `seconds_wanted`."""
    iterations = 10_000
    while True:
        start = time.perf_counter()
        spin(iterations)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds_wanted:
            return iterations / elapsed
        iterations *= 2 if elapsed < seconds_wanted / 4 else math.ceil(seconds_wanted / elapsed)


def run_trial(spec):
    variant = spec["variant"]
    params = spec.get("params", {})
    if variant == "calibrate":
        rate = _calibrate(float(params.get("calibrate_seconds", 0.5)))
        return {"seconds": 0.0, "cpu_seconds": None,
                "metrics": {"iterations_per_second": {"value": rate, "unit": "1/s"}}, "check": {}}

    work = int(params["work"])
    workers = spec.get("workers")  # None: Pool()'s own default size
    if work < 1 or (workers is not None and int(workers) < 1):
        raise SpecError("work and workers must be at least 1")
    context = multiprocessing.get_context(spec.get("start_method") or None)
    warm = max(1, int(work * WARMUP_FRACTION))
    extra = {}
    if variant == "serial":
        spin(warm)
        with TimedSection() as section:
            chunks = [spin(work)]
        expected, workers_used = work, 1
    elif variant in ("strong", "weak", "seed"):
        if variant == "seed":
            timed = split_work(work, SEED_TASKS)
        elif variant == "weak":
            timed = [work] * (workers or _default_pool_size())
        else:
            timed = split_work(work, workers or _default_pool_size())
        warm_chunks = [max(1, warm // len(timed))] * len(timed)
        chunks, section, pool_start, workers_used = _pool_run(context, workers, timed, warm_chunks)
        expected = sum(timed)
        extra["pool_start_seconds"] = {"value": pool_start, "unit": "s"}
    elif variant == "process":
        count = workers or _default_pool_size()
        timed = split_work(work, count)
        chunks, section, start_seconds, workers_used = _process_run(
            context, count, timed, max(1, warm // count))
        expected = work
        extra["process_start_seconds"] = {"value": start_seconds, "unit": "s"}
    else:
        raise SpecError(f"unknown variant {variant!r}")
    check = check_chunks(chunks, expected)
    seconds = section.seconds
    metrics = {
        "iterations_per_second": {"value": expected / seconds, "unit": "1/s"},
        "workers_used": {"value": workers_used, "unit": "processes"},
        **extra,
    }
    return {"seconds": seconds, "cpu_seconds": sum(c[2] for c in chunks),
            "metrics": metrics, "check": check, "section_counters": section.counters}


def _default_pool_size():
    """The size multiprocessing.Pool() picks on this Python (3.13 follows affinity)."""
    return sysinfo.seen()["pool_default_workers"]

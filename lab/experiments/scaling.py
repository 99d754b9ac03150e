"""CPU-bound scaling: the tutorial's `task()` (loops of math.sin(40) + math.cos(40)) made parallel.

Variants (`params.work` is the number of loop iterations, the tutorial's 6 x 10^7 at `--work seed`):
  serial   the whole work in this process, no pool: the absolute baseline
  strong   fixed total work in `workers` equal chunks on a Pool
  weak     `work` iterations per worker on a Pool (total grows with workers)
  process  one Process per worker, parked on a Barrier; timed from the workers' own stamps: the
           earliest start of work to the latest end (perf_counter is CLOCK_MONOTONIC on Linux,
           one clock for every process)
  seed     the tutorial's split: 6 equal tasks on a Pool of `workers` (speedup capped at 6/ceil(6/c))
  ceiling  what the machine delivers: `workers` independent processes, each pinned to its own CPU
           of the trial's affinity, each spinning `work` iterations (no pool, nothing shared but
           the start Barrier and one pipe each for the result after the timed work); timed like
           `process`. N x T(1) / T(N) is how many times one CPU's work N CPUs do: the measured
           ceiling of any speedup (below N where "CPUs" share cores, or hosts share them)
  calibrate  iterations per second of one process, for sizing the work of a run

`USER_VARIANTS` are the variants to offer users. `TEST_DOUBLES` are deliberately broken variants
whose trials must fail (they prove the checks can fire); `VARIANTS` holds both, so the container
accepts them, but nothing should list them to users:
  test_skip_one     strong, but one worker skips one iteration of its chunk
  test_cold_worker  strong, but the warm-up reaches one pool worker fewer than the pool has

Checks. Every chunk returns the sum of its iterations' math.sin(40) + math.cos(40). Adding one
fixed float n times in order gives one exact float, which `exact_sum(n)` computes in a few dozen
steps (see there); each chunk's sum must equal it bit for bit (its IEEE 754 bits, an integer,
are the chunk's checksum), so one iteration skipped or repeated anywhere, in any worker, fails
the trial (each iteration moves the sum by at least one ulp up to ~10^15 iterations), and so
does a wrong value that moves the sum. The check costs nothing in the loop: the loop already
adds each iteration's value. IEEE 754 doubles with round-to-nearest are assumed (every CPython
on x86-64 and aarch64).
Pool warm-up: one warm-up task per pool worker, each waiting on a Barrier of all of them (given
to the workers when the pool starts), so no worker can take two; the trial checks that every
worker's pid took part. The workers' CPU seconds of the timed section are summed.
"""

import functools
import math
import multiprocessing
import os
import struct
import time
from typing import NamedTuple

from lab import sysinfo
from lab.experiments import SpecError, TrialCheckFailed, split_evenly, stop_processes

NAME = "scaling"
USER_VARIANTS = ("serial", "strong", "weak", "process", "seed", "ceiling", "calibrate")
TEST_DOUBLES = ("test_skip_one", "test_cold_worker")
VARIANTS = USER_VARIANTS + TEST_DOUBLES
SEED_TASKS = 6  # the tutorial splits its work into six tasks
UNIT_VALUE = math.sin(40) + math.cos(40)  # what one iteration adds to the sum
WARMUP_FRACTION = 0.02  # untimed warm-up: a small piece of the same work on the same pool
WARM_BARRIER_TIMEOUT_S = 120.0  # a pool worker that never takes its warm-up task fails the trial
_BITS = struct.Struct("<Q")
_DOUBLE = struct.Struct("<d")


# ---------------------------------------------------------------------------------------------
# The work and its exact sum


def spin(iterations):
    """The tutorial's work: `iterations` loops of math.sin(40) + math.cos(40).

    Returns a chunk record: the sum and its checksum (float_bits), this process's pid,
    perf_counter stamps at the start and end of the work, and the CPU seconds of this process
    between them."""
    t_start = time.perf_counter()
    cpu_start = time.process_time()
    total = 0.0
    for _ in range(iterations):
        total += math.sin(40) + math.cos(40)
    return _chunk(total, t_start, cpu_start)


def _spin_skipping_one(iterations):
    """Test double: spin, but leave out the middle iteration (one unit of work lost)."""
    t_start = time.perf_counter()
    cpu_start = time.process_time()
    total = 0.0
    skipped = iterations // 2
    for i in range(iterations):
        if i == skipped:
            continue
        total += math.sin(40) + math.cos(40)
    return _chunk(total, t_start, cpu_start)


def _chunk(total, t_start, cpu_start):
    cpu_seconds = time.process_time() - cpu_start  # inside the stamps: never more than them
    return {"sum": total, "checksum": float_bits(total), "pid": os.getpid(),
            "cpu_seconds": cpu_seconds, "t_start": t_start, "t_end": time.perf_counter()}


def run_chunk(task):
    """A pool task: (iterations, skip_one); skip_one only for the test double."""
    iterations, skip_one = task
    return (_spin_skipping_one if skip_one else spin)(iterations)


def float_bits(value):
    """The IEEE 754 bits of a float as an integer: two sums are equal iff their bits are."""
    return _BITS.unpack(_DOUBLE.pack(value))[0]


@functools.lru_cache(maxsize=256)
def exact_sum(iterations, unit=UNIT_VALUE):
    """The float that `total = 0.0; total += unit` repeated `iterations` times gives, exactly.

    Within one binade [2^(e-1), 2^e) every sum is a multiple of its ulp u, so `total + unit`
    rounds to `total + d` with one step d for the whole binade (round to nearest, ties to even:
    after the binade's first step the total is even in units of u and d stays the same). So:
    add for real until three sums lie in one binade, read d off the last step, jump to the
    binade's end in one multiplication, repeat. A few dozen steps for any count. Raises
    ValueError where d is 0 (the sum stopped growing: no check possible)."""
    if iterations < 0:
        raise ValueError(f"negative iteration count {iterations}")
    total, left = 0.0, iterations
    while left:
        before = total
        total += unit
        left -= 1
        if not left or before == 0.0 or _binade(before) != _binade(total):
            continue
        after = total + unit  # a step between two sums of one binade: the binade's step d
        if _binade(after) != _binade(total):
            continue
        total, left = _jump(total, after - total, left)
    return total


def _binade(value):
    return math.frexp(value)[1]


def _jump(total, step, left):
    """(total after up to `left` steps of `step` without leaving total's binade, steps left)."""
    if step == 0.0:
        raise ValueError("the sum stopped growing: too many iterations for an exact check")
    exponent = _binade(total)
    ulp_exponent = exponent - 53
    units = int(math.ldexp(total, -ulp_exponent))  # total in ulps: exact, below 2^53
    step_units = int(math.ldexp(step, -ulp_exponent))
    steps = min(left, ((1 << 53) - 1 - units) // step_units)
    return math.ldexp(units + steps * step_units, ulp_exponent), left - steps



def check_chunks(chunks, asked):
    """Chunk i must have run exactly asked[i] iterations: its sum equal to exact_sum(asked[i])
    bit for bit. Checked per chunk, so one worker's loss cannot hide behind another's excess."""
    if len(chunks) != len(asked):
        raise TrialCheckFailed(f"{len(chunks)} chunks came back, {len(asked)} were sent")
    for index, (chunk, iterations) in enumerate(zip(chunks, asked)):
        expected = exact_sum(iterations)
        if chunk["checksum"] != float_bits(expected):
            raise TrialCheckFailed(
                f"chunk {index} (pid {chunk['pid']}) summed {chunk['sum']!r}, but "
                f"{iterations} iterations sum to {expected!r}: "
                f"{_iterations_near(chunk['sum'], iterations)}")
    return {"iterations": sum(asked), "chunks": len(asked),
            "checksum": "every chunk's sum equals exact_sum(its iterations) bit for bit"}


def _iterations_near(total, iterations):
    """A hint for the failure message: how many iterations the sum corresponds to, roughly."""
    return f"about {round(total / UNIT_VALUE)} iterations ran, not {iterations}"


# ---------------------------------------------------------------------------------------------
# Timing and warm-up


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


_warm_barrier = None  # a pool worker's Barrier of all warm-up tasks (set by _pool_worker_init)


def _pool_worker_init(barrier):
    global _warm_barrier
    _warm_barrier = barrier


def _warm_task(iterations):
    """One worker's warm-up: spin, then wait until every warm-up task is held by a worker, so
    no worker can take two. Returns the pid."""
    spin(iterations)
    _warm_barrier.wait(WARM_BARRIER_TIMEOUT_S)
    return os.getpid()


def check_warm(warmed_pids, workers):
    """Every one of the `workers` pool workers must have taken a warm-up task."""
    distinct = len(set(warmed_pids))
    if distinct != workers:
        raise TrialCheckFailed(f"the warm-up reached {distinct} of the {workers} pool workers")
    return {"warmed_workers": distinct, "all_workers_warmed": True}


def _pool_run(context, workers, tasks, warm_iterations, warm_tasks):
    """Start a pool of `workers` (Pool()'s default size when None), warm every worker untimed,
    then time the parallel section alone. `warm_tasks` is the pool's size (one fewer only for
    the test_cold_worker double)."""
    barrier = context.Barrier(warm_tasks)
    start = time.perf_counter()
    pool = context.Pool(processes=workers, initializer=_pool_worker_init, initargs=(barrier,))
    pool_start_seconds = time.perf_counter() - start
    try:
        warmed = pool.map(_warm_task, [warm_iterations] * warm_tasks, chunksize=1)
        with TimedSection() as section:
            chunks = pool.map(run_chunk, tasks, chunksize=1)
        workers_used = pool._processes  # the size Pool() chose when workers is None
    finally:
        pool.close()
        pool.join()
    return chunks, section, pool_start_seconds, workers_used, warmed


def _process_worker(ready, go, results, warm_iterations, iterations):
    spin(warm_iterations)
    ready.wait()  # warm; the parent reads the counters once every worker is here
    go.wait()  # released together; spin() stamps its own start and end of work
    results.put(spin(iterations))


class StampedSection:
    """The process variant's section: from the earliest worker's start of work to the latest
    end, from the workers' own perf_counter stamps (the parent's clock would start after the
    release, while the workers already spin); the trial counters read by the parent just
    before it releases the workers and after the last result."""

    def __init__(self, counters_before, chunks):
        self.start = min(c["t_start"] for c in chunks)
        self.seconds = max(c["t_end"] for c in chunks) - self.start
        self.counters = sysinfo.counters_delta(counters_before, sysinfo.trial_counters())


def _process_run(context, workers, work_per_worker, warm_iterations):
    ready, go = context.Barrier(workers + 1), context.Barrier(workers + 1)
    results = context.Queue()
    start = time.perf_counter()
    processes = [context.Process(target=_process_worker,
                                 args=(ready, go, results, warm_iterations, n))
                 for n in work_per_worker]
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
    chunks = [by_pid[process.pid] for process in processes]  # in the order of work_per_worker
    section = StampedSection(counters_before, chunks)
    return chunks, section, section.start - start, workers


def _spinner(cpu, ready, go, send, warm_iterations, iterations):
    """One ceiling spinner: pinned to `cpu` alone, warm, parked, released, spins, reports."""
    os.sched_setaffinity(0, {cpu})
    spin(warm_iterations)
    ready.wait()
    go.wait()
    chunk = spin(iterations)
    chunk["cpu"] = sorted(os.sched_getaffinity(0))
    send.send(chunk)
    send.close()


def _ceiling_run(context, count, iterations, warm_iterations):
    """`count` spinners, one per CPU of this trial's affinity (the first `count` of them)."""
    cpus = sorted(os.sched_getaffinity(0))
    if count > len(cpus):
        raise SpecError(f"scaling ceiling needs one CPU per spinner: {count} spinners, "
                        f"{len(cpus)} CPUs ({cpus})")
    ready, go = context.Barrier(count + 1), context.Barrier(count + 1)
    pipes = [context.Pipe(duplex=False) for _ in range(count)]
    start = time.perf_counter()
    processes = [context.Process(target=_spinner,
                                 args=(cpu, ready, go, send, warm_iterations, iterations))
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
    return chunks, section, section.start - start


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


# ---------------------------------------------------------------------------------------------
# The trial


class Ran(NamedTuple):
    """What one variant's run gives the trial: the chunk records and the iterations each was
    asked for (in the same order), the timed section, the pool size, its extra metrics and
    what it checked on the way (warm-up)."""
    chunks: list
    asked: list
    section: object
    workers_used: int
    extra: dict
    checked: dict


def run_trial(spec):
    variant = spec["variant"]
    params = spec.get("params", {})
    if variant == "calibrate":
        rate = _calibrate(float(params.get("calibrate_seconds", 0.5)))
        return {"seconds": 0.0, "cpu_seconds": None,
                "metrics": {"iterations_per_second": {"value": rate, "unit": "1/s"}}, "check": {}}
    return _measured_trial(spec, variant, params)  # conditions: lab.experiments.__main__


def _measured_trial(spec, variant, params):
    work = int(params["work"])
    workers = spec.get("workers")  # None: Pool()'s own default size
    if work < 1 or (workers is not None and int(workers) < 1):
        raise SpecError("work and workers must be at least 1")
    if variant == "test_cold_worker" and (workers or _default_pool_size()) < 2:
        raise SpecError("scaling test_cold_worker needs at least 2 workers")
    context = multiprocessing.get_context(spec.get("start_method") or None)
    warm = max(1, int(work * WARMUP_FRACTION))
    if variant == "serial":
        ran = _serial(work, warm)
    elif variant == "process":
        ran = _processes(context, workers, work, warm)
    elif variant == "ceiling":
        ran = _ceiling(context, workers, work, warm)
    elif variant in ("strong", "weak", "seed") + TEST_DOUBLES:
        ran = _pool(context, variant, workers, work, warm)
    else:
        raise SpecError(f"unknown variant {variant!r}")
    check = check_chunks(ran.chunks, ran.asked)
    check.update(ran.checked)
    seconds = ran.section.seconds
    metrics = {
        "iterations_per_second": {"value": sum(ran.asked) / seconds, "unit": "1/s"},
        "workers_used": {"value": ran.workers_used, "unit": "processes"},
        **ran.extra,
    }
    return {"seconds": seconds, "cpu_seconds": sum(c["cpu_seconds"] for c in ran.chunks),
            "metrics": metrics, "check": check, "section_counters": ran.section.counters}


def _serial(work, warm):
    spin(warm)
    with TimedSection() as section:
        chunks = [spin(work)]
    return Ran(chunks, [work], section, 1, {}, {"warmed_workers": 1, "all_workers_warmed": True})


def _processes(context, workers, work, warm):
    count = workers or _default_pool_size()
    asked = split_evenly(work, count)
    chunks, section, start_seconds, workers_used = _process_run(context, count, asked,
                                                                max(1, warm // count))
    # Each process warms itself before the barrier: one warm-up per distinct pid.
    warmed = check_warm([c["pid"] for c in chunks], count)
    warmed["section_clock"] = "the workers' own stamps: earliest start to latest end of work"
    extra = {"process_start_seconds": {"value": start_seconds, "unit": "s"}}
    return Ran(chunks, asked, section, workers_used, extra, warmed)


def _ceiling(context, workers, work, warm):
    count = workers or len(os.sched_getaffinity(0))
    chunks, section, start_seconds = _ceiling_run(context, count, work, warm)
    checked = check_warm([c["pid"] for c in chunks], count)
    checked["section_clock"] = "the spinners' own stamps: earliest start to latest end of work"
    checked["pinned"] = "each spinner alone on its own CPU of the trial's affinity"
    extra = {"process_start_seconds": {"value": start_seconds, "unit": "s"},
             "slowest_spinner_seconds": {"value": max(c["t_end"] - c["t_start"] for c in chunks),
                                         "unit": "s"},
             "fastest_spinner_seconds": {"value": min(c["t_end"] - c["t_start"] for c in chunks),
                                         "unit": "s"}}
    return Ran(chunks, [work] * count, section, count, extra, checked)


def _pool(context, variant, workers, work, warm):
    size = workers or _default_pool_size()
    if variant == "seed":
        asked = split_evenly(work, SEED_TASKS)
    elif variant == "weak":
        asked = [work] * size
    else:
        asked = split_evenly(work, size)
    tasks = [(n, variant == "test_skip_one" and i == 0) for i, n in enumerate(asked)]
    warm_tasks = size - 1 if variant == "test_cold_worker" else size
    chunks, section, pool_start, workers_used, warmed_pids = _pool_run(
        context, workers, tasks, max(1, warm // size), warm_tasks)
    if workers_used != size:
        raise RuntimeError(f"Pool() started {workers_used} workers, the trial expected {size}")
    warmed = check_warm(warmed_pids, workers_used)
    extra = {"pool_start_seconds": {"value": pool_start, "unit": "s"}}
    return Ran(chunks, asked, section, workers_used, extra, warmed)


def _default_pool_size():
    """The size multiprocessing.Pool() picks on this Python (3.13 follows affinity)."""
    return sysinfo.seen()["pool_default_workers"]

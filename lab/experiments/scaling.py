"""CPU-bound scaling: the tutorial's `task()` (loops of math.sin(40) + math.cos(40)) made parallel.

The trial's entry: the variants, and `run_trial` (which task, which executor, the checks). The
task and its exact check are lab.experiments.scaling_task (the seam another task plugs into);
the executors are scaling_processes (Pool, Process, ceiling) and scaling_threads (threads,
interpreters); their clocks and warm-up proof scaling_clock.

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
  threads  strong's chunks on a ThreadPoolExecutor of `workers` threads
  interpreters  strong's chunks on an InterpreterPoolExecutor of `workers` interpreters (3.14+)
  calibrate  iterations per second of one process, for sizing the work of a run

`USER_VARIANTS` are the variants to offer users. `TEST_DOUBLES` are deliberately broken variants
whose trials must fail (they prove the checks can fire); `VARIANTS` holds both, so the container
accepts them, but nothing should list them to users:
  test_skip_one     strong, but every worker skips one iteration of its chunk
  test_cold_worker  strong, but the warm-up reaches one pool worker fewer than the pool has
  test_cold_thread, test_cold_interpreter  threads / interpreters, one worker left unwarmed
  test_gil_back_on  threads, its workers' records claiming a free-threaded build (as a
                    free-threaded CPython whose GIL an extension module switched back on)

Every measured trial records from its workers' chunk records whether the GIL was enabled there
(`gil_enabled`: any worker found it on) and whether the build is free-threaded
(`free_threaded`); a free-threaded build whose workers found the GIL on fails the trial: its
numbers would be a GIL build's, labelled free-threaded.
"""

import math
import multiprocessing
import os

from lab import sysinfo
from lab.experiments import SpecError, TrialCheckFailed, split_evenly  # noqa: F401 (importers)
from lab.experiments.scaling_clock import TimedSection, check_warm
from lab.experiments.scaling_processes import ceiling_run, pool_run, process_run
from lab.experiments.scaling_task import (  # noqa: F401 (the names importers use from here)
    SKIPPING_ONE, TUTORIAL, UNIT_VALUE, check_chunks, exact_sum, float_bits, run_chunk, spin)

NAME = "scaling"
USER_VARIANTS = ("serial", "strong", "weak", "process", "seed", "ceiling", "threads",
                 "interpreters", "calibrate")
TEST_DOUBLES = ("test_skip_one", "test_cold_worker", "test_cold_thread",
                "test_cold_interpreter", "test_gil_back_on")
VARIANTS = USER_VARIANTS + TEST_DOUBLES
# Variants that need InterpreterPoolExecutor (Python 3.14+)
NEEDS_INTERPRETERS = ("interpreters", "test_cold_interpreter")
SEED_TASKS = 6  # the tutorial splits its work into six tasks
WARMUP_FRACTION = 0.02  # untimed warm-up: a small piece of the same work on the same pool
# The in-process executors and their test doubles: variant -> (executor kind, cold double)
_IN_PROCESS = {"threads": ("threads", False), "test_cold_thread": ("threads", True),
               "test_gil_back_on": ("threads", False),
               "interpreters": ("interpreters", False),
               "test_cold_interpreter": ("interpreters", True)}
_POOL_VARIANTS = ("strong", "weak", "seed", "test_skip_one", "test_cold_worker")


def _calibrate(seconds_wanted):
    """Iterations per second of one process, measured over about `seconds_wanted`."""
    iterations = 10_000
    while True:
        chunk = spin(iterations)
        elapsed = chunk["t_end"] - chunk["t_start"]
        if elapsed >= seconds_wanted:
            return iterations / elapsed
        iterations *= 2 if elapsed < seconds_wanted / 4 else math.ceil(seconds_wanted / elapsed)


def run_trial(spec, task=None):
    """One trial of `spec`; `task` (a scaling_task.Task) defaults to the tutorial's."""
    variant = spec["variant"]
    params = spec.get("params", {})
    if variant == "calibrate":
        rate = _calibrate(float(params.get("calibrate_seconds", 0.5)))
        return {"seconds": 0.0, "cpu_seconds": None,
                "metrics": {"iterations_per_second": {"value": rate, "unit": "1/s"}}, "check": {}}
    task = task or (SKIPPING_ONE if variant == "test_skip_one" else TUTORIAL)
    return _measured_trial(spec, variant, params, task)  # conditions: lab.experiments.__main__


def _measured_trial(spec, variant, params, task):
    work = int(params["work"])
    workers = spec.get("workers")  # None: Pool()'s own default size
    if work < 1 or (workers is not None and int(workers) < 1):
        raise SpecError("work and workers must be at least 1")
    cold = variant.startswith("test_cold_")
    if cold and (workers or _default_pool_size()) < 2:
        raise SpecError(f"scaling {variant} needs at least 2 workers")
    if variant in NEEDS_INTERPRETERS:
        from lab.experiments.scaling_threads import interpreters_missing
        if interpreters_missing():
            raise SpecError(f"scaling {variant}: {interpreters_missing()}")
    context = multiprocessing.get_context(spec.get("start_method") or None)
    warm = max(1, int(work * WARMUP_FRACTION))
    if variant == "serial":
        ran = _serial(task, work, warm)
    elif variant == "process":
        ran = _processes(context, task, workers, work, warm)
    elif variant == "ceiling":
        ran = _ceiling(context, task, workers, work, warm)
    elif variant in _POOL_VARIANTS:
        ran = _pool(context, task, variant, workers, work, warm)
    elif variant in _IN_PROCESS:
        ran = _in_process(task, variant, workers, work, warm)
    else:
        raise SpecError(f"unknown variant {variant!r}")
    chunks, asked, section, workers_used, extra, checked = ran
    if variant == "test_gil_back_on":  # as a free-threaded build would report them
        for chunk in chunks:
            chunk["free_threaded"] = True
    check = task.check(chunks, asked)
    check.update(checked)
    check.update(check_gil(chunks))
    seconds = section.seconds
    unit = _IN_PROCESS[variant][0] if variant in _IN_PROCESS else "processes"
    metrics = {
        "iterations_per_second": {"value": sum(asked) / seconds, "unit": "1/s"},
        "workers_used": {"value": workers_used, "unit": unit},
        **extra,
    }
    return {"seconds": seconds, "cpu_seconds": sum(c["cpu_seconds"] for c in chunks),
            "metrics": metrics, "check": check, "section_counters": section.counters}


def check_gil(chunks):
    """What the workers found: {"gil_enabled": any worker had the GIL on, "free_threaded":
    every worker's build is free-threaded}; a free-threaded build with the GIL on in some
    worker fails the trial (its figures would be a GIL build's under a free-threaded label)."""
    free = all(c["free_threaded"] for c in chunks)
    enabled = [c for c in chunks if c["gil_enabled"]]
    if free and enabled:
        raise TrialCheckFailed(
            f"this free-threaded Python ran with the GIL enabled in {len(enabled)} of "
            f"{len(chunks)} workers (an extension module without Py_mod_gil can switch it on; "
            f"PYTHON_GIL=0 keeps it off): its figures would be a GIL build's")
    return {"gil_enabled": bool(enabled), "free_threaded": free}


def _serial(task, work, warm):
    task.work(warm)
    with TimedSection() as section:
        chunks = [run_chunk(task.work, work)]
    return [chunks, [work], section, 1, {}, {"warmed_workers": 1, "all_workers_warmed": True}]


def _processes(context, task, workers, work, warm):
    count = workers or _default_pool_size()
    asked = split_evenly(work, count)
    ran = process_run(context, task.work, asked, max(1, warm // count))
    warmed = check_warm(ran.warmed, count)
    warmed["section_clock"] = "the workers' own stamps: earliest start to latest end of work"
    extra = {"process_start_seconds": {"value": ran.start_seconds, "unit": "s"}}
    return [ran.chunks, asked, ran.section, ran.workers_used, extra, warmed]


def _ceiling(context, task, workers, work, warm):
    count = workers or len(os.sched_getaffinity(0))
    ran = ceiling_run(context, count, task.work, work, warm)
    chunks = ran.chunks
    checked = check_warm(ran.warmed, count)
    checked["section_clock"] = "the spinners' own stamps: earliest start to latest end of work"
    checked["pinned"] = "each spinner alone on its own CPU of the trial's affinity"
    extra = {"process_start_seconds": {"value": ran.start_seconds, "unit": "s"},
             "slowest_spinner_seconds": {"value": max(c["t_end"] - c["t_start"] for c in chunks),
                                         "unit": "s"},
             "fastest_spinner_seconds": {"value": min(c["t_end"] - c["t_start"] for c in chunks),
                                         "unit": "s"}}
    return [chunks, [work] * count, ran.section, count, extra, checked]


def _pool(context, task, variant, workers, work, warm):
    size = workers or _default_pool_size()
    if variant == "seed":
        asked = split_evenly(work, SEED_TASKS)
    elif variant == "weak":
        asked = [work] * size
    else:
        asked = split_evenly(work, size)
    warm_tasks = size - 1 if variant == "test_cold_worker" else size
    ran = pool_run(context, workers, task.work, asked, max(1, warm // size), warm_tasks)
    if ran.workers_used != size:
        raise RuntimeError(f"Pool() started {ran.workers_used} workers, the trial expected {size}")
    warmed = check_warm(ran.warmed, ran.workers_used)
    return [ran.chunks, asked, ran.section, ran.workers_used, _start_metrics(ran), warmed]


def _in_process(task, variant, workers, work, warm):
    """strong's chunks on a pool of threads or interpreters (scaling_threads: imported here,
    so what imports this module for its names does not load concurrent.futures)."""
    from lab.experiments.scaling_threads import executor_run
    kind, cold = _IN_PROCESS[variant]
    size = workers or _default_pool_size()
    asked = split_evenly(work, size)
    ran = executor_run(kind, size, task.work, asked, max(1, warm // size),
                       size - 1 if cold else size)
    warmed = check_warm(ran.warmed, size, kind)
    return [ran.chunks, asked, ran.section, size, _start_metrics(ran), warmed]


def _start_metrics(ran):
    """A pool's start: its constructor (pool_start_seconds; a lazy thread or interpreter pool
    starts nothing there), and until every worker had started and taken its warm-up task
    (workers_ready_seconds: what the pool costs before it can work, alike for every pool), and
    one empty task's round trip through the warm pool (task_round_trip_seconds: what handing it
    a task costs, after the timed section)."""
    return {"pool_start_seconds": {"value": ran.start_seconds, "unit": "s"},
            "workers_ready_seconds": {"value": ran.ready_seconds, "unit": "s"},
            "task_round_trip_seconds": {"value": ran.round_trip_seconds, "unit": "s"}}


def _default_pool_size():
    """The size multiprocessing.Pool() picks on this Python (3.13 follows affinity)."""
    return sysinfo.seen()["pool_default_workers"]

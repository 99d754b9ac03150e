"""Lessons start_cost and pool_vs_process: what starting a process costs, and what a Pool saves.

See lab/experiments/lessons.py for the variants, params and metrics. Importing this module starts
nothing; the functions run in children are module-level so spawn and forkserver can import them.
"""

import collections
import os
import platform
import sys
import threading
import time

from lab import sysinfo
from lab.experiments import TrialCheckFailed, stop_processes
from lab.experiments.lessons_kit import (SEED_POOL_WORKERS, SEED_TASKS,  # noqa: F401
                                         TUTORIAL_CONSTRUCTOR_US, check_tasks, median, metric,
                                         quantile, task, task_star, wait_any)

WARM_WAIT_S = 60.0  # a warm-up task waits this long at most for the other workers to start

_warm_barrier = None  # a pool worker's Barrier of all warm-up tasks (set by _pool_worker_init)


def _pool_worker_init(barrier):
    global _warm_barrier
    _warm_barrier = barrier


def warm_task(_index):
    """One warm-up task per worker: it waits until every worker holds one, so each worker has
    started (forkserver and spawn start them late) before the clock, none took two."""
    _warm_barrier.wait(WARM_WAIT_S)
    return os.getpid()


def pool_size(workers):
    """The workers Pool(workers) starts: Pool()'s own default where None (os.process_cpu_count
    from 3.13, os.cpu_count before)."""
    if workers:
        return workers
    count = getattr(os, "process_cpu_count", os.cpu_count)()
    return count or 1


START_PROOF = 42  # the exit code of a started child that ran its target (nothing else gives it)


def ran_target():
    """A child's proof that it ran its target: exit code START_PROOF (the constructor's target:
    Process() alone never runs it)."""
    sys.exit(START_PROOF)


# The bare start's target: sys.exit(START_PROOF). Nothing is handed over that needs the
# resource sharer (a shared array under forkserver and spawn adds a connection per child), and
# no module of the lab's has to be imported by the child to find its target (a function of
# this module would be: about 10 ms a child under forkserver, inside the clock).
BARE_TARGET = sys.exit


def write_pid(slots, index):
    """A child's proof that it ran: its pid in its own slot."""
    slots[index] = os.getpid()


def pool_token(token):
    return token, os.getpid()


def task_into_slot(slots, index, iterations, stamps=None):
    """A Process per task: the loop count its sum proves goes back through its slot; with
    `stamps`, its work's start and end (perf_counter) and CPU seconds in slots 3i..3i+2."""
    t0 = time.perf_counter()
    answer = task(index, iterations)
    slots[index] = answer[1]
    if stamps is not None:
        stamps[3 * index:3 * index + 3] = [t0, time.perf_counter(), answer[2]]


def _cpu_times():
    """User + system seconds of this process and of its reaped children."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


# ---------------------------------------------------------------------------------------------
# start_cost


def _start_join(context, index, timeout_s):
    """One argument-free Process started and joined; returns its seconds (start() to join()
    returning). Its exit code, read after the clock, proves it ran its target."""
    process = context.Process(target=BARE_TARGET, args=(START_PROOF,))
    start = time.perf_counter()
    process.start()
    process.join(timeout_s)
    seconds = time.perf_counter() - start
    if process.exitcode is None:
        stop_processes([process], graceful=False)
        raise TimeoutError(f"process {index} did not end within timeout_s={timeout_s:g}")
    if process.exitcode != START_PROOF:
        raise TrialCheckFailed(f"process {index} (pid {process.pid}) exited with code "
                               f"{process.exitcode}, not {START_PROOF}: it did not run its "
                               f"target")
    process.close()
    return seconds


def _thread_start_join(index, timeout_s):
    """One threading.Thread started and joined; returns its seconds. The slot it fills, read
    after the clock, proves it ran its target."""
    slot = [None]
    thread = threading.Thread(target=slot.__setitem__, args=(0, index), daemon=True)
    start = time.perf_counter()
    thread.start()
    thread.join(timeout_s)
    seconds = time.perf_counter() - start
    if thread.is_alive():
        raise TimeoutError(f"thread {index} did not end within timeout_s={timeout_s:g}")
    if slot[0] != index:
        raise TrialCheckFailed(f"thread {index} did not run its target (slot {slot[0]!r})")
    return seconds


def interpreters_module():
    """concurrent.interpreters, or None on a Python before 3.14."""
    try:
        from concurrent import interpreters
    except ImportError:
        return None
    return interpreters


def _interpreter_start(interpreters, index):
    """One interpreter created, made to run a call, and closed; returns its seconds. The call
    is a builtin (abs): nothing of the lab's is imported inside the clock; its answer, read
    after the clock, proves the interpreter ran it."""
    start = time.perf_counter()
    interpreter = interpreters.create()
    answer = interpreter.call(abs, -index)
    interpreter.close()
    seconds = time.perf_counter() - start
    if answer != index:
        raise TrialCheckFailed(f"interpreter {index} answered {answer!r}, not {index}")
    return seconds


def _beside_processes(repeats, starts, timeout_s):
    """The start of a thread (`repeats` times) and of an interpreter (`starts` times: tens of
    ms each), each after one untimed warm-up:
    (metrics, check). An interpreter is 'not on this Python' before 3.14."""
    _thread_start_join(0, timeout_s)
    threads = [_thread_start_join(i, timeout_s) for i in range(1, repeats + 1)]
    metrics = {"thread_start_join_us": metric(median(threads) * 1e6, "us")}
    check = {"threads_ran": repeats}
    interpreters = interpreters_module()
    if interpreters is None:
        check["interpreters_ran"] = f"not on this Python ({platform.python_version()})"
        return metrics, check
    _interpreter_start(interpreters, 0)
    started = [_interpreter_start(interpreters, i) for i in range(1, starts + 1)]
    metrics["interpreter_start_us"] = metric(median(started) * 1e6, "us")
    check["interpreters_ran"] = starts
    return metrics, check


def _constructor_seconds(context, count):
    """Process() alone, as the tutorial timed it: nothing is started."""
    seconds = []
    for _ in range(count):
        start = time.perf_counter()
        context.Process(target=BARE_TARGET, args=(START_PROOF,))
        seconds.append(time.perf_counter() - start)
    return seconds


def _pool_first_task(context, token, timeout_s):
    """A fresh Pool(1) to its first result: pool start, worker start, one round trip."""
    start = time.perf_counter()
    pool = context.Pool(1)
    try:
        answer = pool.apply_async(pool_token, (token,)).get(timeout_s)
        seconds = time.perf_counter() - start
    finally:
        pool.terminate()
        pool.join()
    if answer[0] != token or answer[1] == os.getpid():
        raise TrialCheckFailed(f"Pool(1) answered {answer!r} to token {token}")
    return seconds


def run_start_cost(context, p, workers, cpus, variant):
    repeats = p["repeats"]
    first = _start_join(context, 0, p["timeout_s"])  # a fork server starts here
    constructor = _constructor_seconds(context, p["constructors"])
    cpu_before = _cpu_times()
    durations = [_start_join(context, i, p["timeout_s"]) for i in range(1, repeats + 1)]
    cpu = _cpu_times() - cpu_before
    pools = [_pool_first_task(context, k, p["timeout_s"]) for k in range(p["pools"])]
    beside, beside_check = _beside_processes(repeats, p["interpreter_starts"], p["timeout_s"])
    start_join_us = median(durations) * 1e6
    constructor_us = median(constructor) * 1e6
    metrics = {
        "constructor_us": metric(constructor_us, "us"),
        "start_join_us": metric(start_join_us, "us"),
        "start_join_p90_us": metric(quantile(durations, 0.9) * 1e6, "us"),
        "first_start_join_us": metric(first * 1e6, "us"),
        "pool_first_task_us": metric(median(pools) * 1e6, "us"),
        "start_join_over_constructor": metric(start_join_us / constructor_us, "ratio"),
        **beside,
    }
    check = {"processes_ran": repeats + 1, "exit_codes": f"all {START_PROOF}",
             "ran_target": repeats + 1,
             "arguments": "none to hand over (target sys.exit(42): a bare start)",
             "constructors": p["constructors"], "pools": p["pools"],
             "tutorial_constructor_us": TUTORIAL_CONSTRUCTOR_US,
             "cpu_seconds_covers": "this process and its reaped children (a fork server's "
                                   "children are the server's: not counted)",
             **beside_check}
    return {"seconds": sum(durations), "cpu_seconds": cpu, "metrics": metrics, "check": check}


# ---------------------------------------------------------------------------------------------
# pool_vs_process


def _pool_tasks(context, p, workers):
    size = pool_size(workers)
    barrier = context.Barrier(size)
    pool_start = time.perf_counter()
    pool = context.Pool(size, initializer=_pool_worker_init, initargs=(barrier,))
    pool_start = time.perf_counter() - pool_start
    chunksize = None if p["chunksize"] == "auto" else p["chunksize"]
    jobs = [(i, p["task_iterations"]) for i in range(p["tasks"])]
    try:
        warmed = pool.map_async(warm_task, range(size), chunksize=1).get(p["timeout_s"])
        if len(set(warmed)) != size:
            raise TrialCheckFailed(f"the warm-up reached {len(set(warmed))} of the {size} "
                                   f"pool workers")
        start = time.perf_counter()
        answers = pool.map_async(task_star, jobs, chunksize=chunksize).get(p["timeout_s"])
        seconds = time.perf_counter() - start
    finally:
        pool.terminate()
        pool.join()
    resolved = chunksize or _auto_chunksize(len(jobs), size)
    return answers, seconds, size, {"pool_start_us": metric(pool_start * 1e6, "us")}, \
        {"chunksize": resolved, "warmed_workers": size,
         "warm_up": "one task per worker behind a Barrier of all of them"}


def _auto_chunksize(tasks, workers):
    """Pool.map's own choice when chunksize is None (CPython's Pool._map_async)."""
    chunksize, extra = divmod(tasks, workers * 4)
    return chunksize + 1 if extra else chunksize


def _process_per_task(context, p, workers, timeout_s):
    """One Process per task, at most `workers` alive at once; answers come back in slots."""
    tasks, iterations = p["tasks"], p["task_iterations"]
    slots = context.RawArray("q", tasks)
    _start_join_warm(context, timeout_s)
    pending, running, failed = collections.deque(range(tasks)), {}, []
    deadline = time.monotonic() + timeout_s
    start = time.perf_counter()
    try:
        while pending or running:
            while pending and len(running) < workers:
                index = pending.popleft()
                process = context.Process(target=task_into_slot, args=(slots, index, iterations))
                process.start()
                running[process] = index
            if time.monotonic() > deadline:
                raise TimeoutError(f"process_per_task did not finish within "
                                   f"timeout_s={timeout_s:g}")
            for process in wait_any(list(running), 1.0):
                process.join()
                if process.exitcode != 0:
                    failed.append((running[process], process.exitcode))
                del running[process]
                process.close()
        seconds = time.perf_counter() - start
    finally:
        stop_processes(list(running), graceful=False)
    if failed:
        raise TrialCheckFailed(f"tasks {failed[:5]} (index, exit code) did not exit with 0")
    answers = [(i, slots[i]) for i in range(tasks)]
    return answers, seconds, workers, {}, {}


def _start_join_warm(context, timeout_s):
    """One untimed start: a fork server (or spawn's first import) is not charged to a task."""
    slots = context.RawArray("q", 1)
    process = context.Process(target=write_pid, args=(slots, 0))
    process.start()
    process.join(timeout_s)
    stop_processes([process], graceful=False)


def _seed_one_process(p):
    """The tutorial's In [16]: six tasks in this process, one after another."""
    start = time.perf_counter()
    answers = [task(i, p["seed_iterations"]) for i in range(SEED_TASKS)]
    return answers, time.perf_counter() - start, 1, {}, {"timing": "tutorial: the loop"}


def _seed_two_processes(context, p):
    """The tutorial's In [21]: two Processes of one task each, timed from creation to join."""
    slots, stamps = context.RawArray("q", 2), context.RawArray("d", 6)
    start = time.perf_counter()
    processes = [context.Process(target=task_into_slot,
                                 args=(slots, i, p["seed_iterations"], stamps))
                 for i in range(2)]
    try:
        for process in processes:
            process.start()
        for process in processes:
            process.join(p["timeout_s"])
        seconds = time.perf_counter() - start
    finally:
        stop_processes(processes, graceful=False)
    codes = [process.exitcode for process in processes]
    if codes != [0, 0]:
        raise TrialCheckFailed(f"the tutorial's two processes exited with {codes}")
    answers = [(i, slots[i], stamps[3 * i + 2]) for i in range(2)]
    work = max(stamps[1], stamps[4]) - min(stamps[0], stamps[3])
    return answers, seconds, 2, {}, {"timing": "tutorial: creation to join",
                                     "note": "the tutorial ran 2 tasks here against 6 serially",
                                     "section_seconds": work,
                                     "section": "the two tasks' work, first start to last end "
                                                "(their CPU time is judged against it)"}


def _seed_pool(context, p, workers):
    """The tutorial's Pool(processes=8).map(task, range(6)), pool start inside its clock."""
    size = workers or SEED_POOL_WORKERS
    jobs = [(i, p["seed_iterations"]) for i in range(SEED_TASKS)]
    start = time.perf_counter()
    with context.Pool(processes=size) as pool:
        ready = time.perf_counter()
        answers = pool.map_async(task_star, jobs).get(p["timeout_s"])
        seconds = time.perf_counter() - start
    return answers, seconds, size, {"pool_start_us": metric((ready - start) * 1e6, "us")}, \
        {"timing": "tutorial: pool creation to the last result"}


def run_pool_vs_process(context, p, workers, cpus, variant):
    runner = p["runner"]
    cpu_before = _cpu_times()
    if runner == "pool":
        answers, seconds, used, extra, facts = _pool_tasks(context, p, workers)
    elif runner == "process_per_task":
        size = workers or sysinfo.seen()["pool_default_workers"]
        answers, seconds, used, extra, facts = _process_per_task(context, p, size, p["timeout_s"])
    elif runner == "seed_one_process":
        answers, seconds, used, extra, facts = _seed_one_process(p)
    elif runner == "seed_two_processes":
        answers, seconds, used, extra, facts = _seed_two_processes(context, p)
    else:
        answers, seconds, used, extra, facts = _seed_pool(context, p, workers)
    short = runner in ("pool", "process_per_task")
    iterations = p["task_iterations"] if short else p["seed_iterations"]
    tasks = p["tasks"] if short else (2 if runner == "seed_two_processes" else SEED_TASKS)
    checksum = check_tasks(answers, tasks, iterations)  # the count asked for, not received
    task_cpu = [a[2] for a in answers if len(a) > 2]
    metrics = {"per_task_us": metric(seconds / tasks * 1e6, "us"),
               "tasks_per_second": metric(tasks / seconds, "1/s"),
               "workers_used": metric(used, "processes"), **extra}
    check = {"runner": runner, "tasks": tasks, "iterations_per_task": iterations,
             "checksum": checksum, "every_task_once": True, **facts}
    if task_cpu:  # the tasks' own CPU; else this process and its reaped children
        metrics["task_cpu_us"] = metric(sum(task_cpu) / len(task_cpu) * 1e6, "us")
        cpu = sum(task_cpu)
        check["cpu_seconds_covers"] = "the tasks' own CPU time"
    else:
        cpu = _cpu_times() - cpu_before
        check["cpu_seconds_covers"] = "this process and its reaped children, starts included " \
                                      "(a fork server's children are the server's: not counted)"
    if runner in ("pool", "seed_pool8"):
        check["worker_pids"] = len({a[3] for a in answers})
    return {"seconds": seconds, "cpu_seconds": cpu, "metrics": metrics, "check": check}

"""Lessons threads_vs_processes and queue_in_process: the GIL, which the tutorial never shows.

  threads_vs_processes  `iterations` loops of the tutorial's task split over `workers`, run
                        serial (this thread alone), on threads, on processes, or on
                        interpreters (3.14+: each its own GIL, each run by a thread of this
                        process, stamped inside, made before the clock); all kinds are
                        parked on a barrier and timed by their own stamps, from the first
                        worker's start after its release to the last worker's end; the
                        cgroup's CPU counters are read around that section (the workers
                        parked before, all of them reported after): section_counters, so a
                        trial that did not get its CPUs shows it (the analysis compares its
                        CPU time with its section x its CPUs)
  queue_in_process      `messages` small ints put, then got, by this one process: queue.Queue
                        (a deque under a lock) against multiprocessing.Queue (pickle, feeder
                        thread, pipe, unpickle) even where no second process exists
See lab/experiments/lessons.py for params and metrics. Importing this module starts nothing.
"""

import platform
import queue
import sys
import threading
import time

from lab import sysinfo
from lab.experiments import SpecError, TrialCheckFailed, split_evenly
from lab.experiments.lessons_kit import Crew, check_chunks, metric, span, spin

WAIT_S = 60.0


def spin_after(index, barrier, iterations):
    """A worker process: warm, park on the barrier, spin; its chunk and its own stamps (the
    parent may get a CPU only after the workers are done: its clock would read 0)."""
    spin(min(iterations, 1000))
    barrier.wait(WAIT_S)
    t0 = time.perf_counter()
    chunk = spin(iterations)
    return {"chunk": chunk, "t0": t0, "t1": time.perf_counter()}


def _threads(shares):
    barrier = threading.Barrier(len(shares) + 1, timeout=WAIT_S)
    chunks, stamps = [None] * len(shares), [None] * len(shares)

    def work(index):
        barrier.wait()
        t0 = time.perf_counter()  # the main thread may wait for the GIL: stamp here
        chunks[index] = spin(shares[index])
        stamps[index] = (t0, time.perf_counter())
    threads = [threading.Thread(target=work, args=(i,), daemon=True)
               for i in range(len(shares))]
    for thread in threads:
        thread.start()
    _parked(barrier, len(shares))
    before = sysinfo.trial_counters()
    cpu = time.process_time()  # the whole process: every thread's CPU
    barrier.wait()
    for thread in threads:
        thread.join(WAIT_S)
    if any(thread.is_alive() for thread in threads):
        raise TimeoutError("a spinning thread did not finish")
    cpu = time.process_time() - cpu
    counters = sysinfo.counters_delta(before, sysinfo.trial_counters())
    seconds = max(t1 for _, t1 in stamps) - min(t0 for t0, _ in stamps)
    return chunks, seconds, cpu, counters


def _parked(barrier, parties):
    """Wait until `parties` workers wait on `barrier` (their start-up is then behind them)."""
    deadline = time.monotonic() + WAIT_S
    while barrier.n_waiting < parties and time.monotonic() < deadline:
        time.sleep(0.001)


def _processes(context, shares, timeout_s):
    barrier = context.Barrier(len(shares) + 1, timeout=WAIT_S)
    with Crew(context, timeout_s) as crew:
        crew.start(spin_after, [(barrier, n) for n in shares])
        _parked(barrier, len(shares))
        before = sysinfo.trial_counters()
        barrier.wait()
        reports = crew.collect()
        counters = sysinfo.counters_delta(before, sysinfo.trial_counters())
    seconds = span(reports)
    chunks = [r["chunk"] for r in reports]
    return chunks, seconds, sum(c[2] for c in chunks), counters


def spin_stamped(iterations):
    """An interpreter's share: warm, then spin, stamped inside it (perf_counter is one clock
    for the whole process)."""
    spin(min(iterations, 1000))
    t0 = time.perf_counter()
    chunk = spin(iterations)
    return chunk, t0, time.perf_counter()


def _interpreters(shares):
    """Each share in its own interpreter (its own GIL), each run by a thread of this process;
    the interpreters are made (and the lab's modules imported there) before the clock."""
    from lab.experiments.lessons_start import interpreters_module
    interpreters = interpreters_module()
    if interpreters is None:
        raise SpecError(f"threads_vs_processes runner interpreters needs Python 3.14 or later "
                        f"(concurrent.interpreters); this is Python {platform.python_version()}")
    made = [interpreters.create() for _ in shares]
    answers = [None] * len(shares)
    try:
        for interpreter in made:
            interpreter.call(spin_stamped, 1)  # imports this module there, untimed

        def work(index):
            answers[index] = made[index].call(spin_stamped, shares[index])
        threads = [threading.Thread(target=work, args=(i,), daemon=True)
                   for i in range(len(shares))]
        before = sysinfo.trial_counters()
        cpu = time.process_time()  # the whole process: every interpreter's thread
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT_S)
        if any(thread.is_alive() for thread in threads):
            raise TimeoutError("a spinning interpreter did not finish")
        cpu = time.process_time() - cpu
        counters = sysinfo.counters_delta(before, sysinfo.trial_counters())
    finally:
        for interpreter in made:
            try:
                interpreter.close()
            except Exception:  # still running: the trial fails on its own account
                pass
    if any(answer is None for answer in answers):
        raise TrialCheckFailed("an interpreter returned no chunk")
    seconds = max(a[2] for a in answers) - min(a[1] for a in answers)
    return [a[0] for a in answers], seconds, cpu, counters


def run_threads_vs_processes(context, p, workers, cpus, variant):
    runner, iterations = p["runner"], p["iterations"]
    workers = 1 if runner == "serial" else (workers or len(cpus))
    shares = split_evenly(iterations, workers)
    if runner == "serial":
        spin(min(iterations, 1000))
        before = sysinfo.trial_counters()
        start = time.perf_counter()
        chunks = [spin(iterations)]
        seconds = time.perf_counter() - start
        counters = sysinfo.counters_delta(before, sysinfo.trial_counters())
        cpu = chunks[0][2]
    elif runner == "threads":
        chunks, seconds, cpu, counters = _threads(shares)
    elif runner == "interpreters":
        chunks, seconds, cpu, counters = _interpreters(shares)
    else:
        chunks, seconds, cpu, counters = _processes(context, shares, p["timeout_s"])
    check = check_chunks(chunks, iterations)
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    check.update({"runner": runner, "workers": workers, "gil_enabled": gil,
                  "section_counters": True})
    metrics = {"iterations_per_second": metric(iterations / seconds, "1/s"),
               "workers_used": metric(workers, "processes" if runner == "processes"
                                      else runner if runner != "serial" else "threads")}
    return {"seconds": seconds, "cpu_seconds": cpu, "metrics": metrics, "check": check,
            "section_counters": counters}


def run_queue_in_process(context, p, workers, cpus, variant):
    kind, messages = p["queue_kind"], p["messages"]
    channel = queue.Queue() if kind == "thread_queue" else context.Queue()
    try:
        for warm in range(min(1000, messages)):  # the feeder thread starts here, untimed
            channel.put(warm)
        for _ in range(min(1000, messages)):
            channel.get(timeout=WAIT_S)
        cpu = time.process_time()
        start = time.perf_counter()
        for item in range(messages):
            channel.put(item)
        got = [channel.get(timeout=WAIT_S) for _ in range(messages)]
        seconds = time.perf_counter() - start
        cpu = time.process_time() - cpu
    finally:
        if kind == "process_queue":
            channel.close()
            channel.join_thread()
    if got != list(range(messages)):
        wrong = next(i for i, item in enumerate(got) if item != i)
        raise TrialCheckFailed(f"item {wrong} came back as {got[wrong]!r}")
    metrics = {"put_get_us": metric(seconds / messages * 1e6, "us"),
               "items_per_second": metric(messages / seconds, "1/s")}
    return {"seconds": seconds, "cpu_seconds": cpu, "metrics": metrics,
            "check": {"queue_kind": kind, "messages": messages, "in_order": True,
                      "checksum": sum(got)}}

"""What the lessons' trials share: metrics, medians, a crew of worker processes that report back
on one queue, the tutorial's task, and the checks on stamped critical sections.

Standard library only; importing this module starts nothing.
"""

import math
import multiprocessing.connection
import os
import queue
import signal
import time
import traceback

from lab.experiments import TrialCheckFailed, stop_processes
from lab.experiments.scaling_task import exact_sum, tutorial_sum

SEED_TASKS = 6  # the tutorial's six tasks
TUTORIAL_CONSTRUCTOR_US = 12.2  # the tutorial's %time of `multiprocessing.Process()`
SEED_POOL_WORKERS = 8  # the tutorial's Pool(processes=8)

REPORT_GRACE_S = 1.0  # a dead worker's report would have arrived within this
STOP_GRACE_S = 2.0    # terminate, then kill, a worker still alive after this


def metric(value, unit):
    return {"value": value, "unit": unit}


def median(values):
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        return None
    middle = n // 2
    return ordered[middle] if n % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def quantile(values, q):
    """Nearest-rank quantile (q in 0..1) of a non-empty sequence."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def spin(iterations):
    """The tutorial's task (scaling_task.tutorial_sum, the one copy of its loop): `iterations`
    loops of math.sin(40) + math.cos(40).

    Returns (iterations, sum, this process's CPU seconds while spinning)."""
    cpu_start = time.process_time()
    total = tutorial_sum(iterations)
    return iterations, total, time.process_time() - cpu_start


def loops_done(iterations, total):
    """`iterations` when `total` is exactly what that many loops sum to (scaling.exact_sum, bit
    for bit: one loop short is caught), else -1."""
    return iterations if total == exact_sum(iterations) else -1


def hold(hold_s):
    """Stay inside a critical section for `hold_s` seconds (0: leave at once): the lessons' way
    to make a section long enough that overlaps, if the primitive allows any, show."""
    if hold_s:
        time.sleep(hold_s)


def task(index, iterations):
    """One task: (index, loops proven by its sum, this process's CPU seconds, pid): the loop
    count proves the work ran, the index that this task's answer came back."""
    _, total, cpu = spin(iterations)
    return index, loops_done(iterations, total), cpu, os.getpid()


def task_star(args):
    return task(*args)


def check_chunks(chunks, iterations):
    """Chunks (loops, sum, cpu) of split work: all loops ran, and their sums agree."""
    done = sum(c[0] for c in chunks)
    if done != iterations or any(loops_done(c[0], c[1]) < 0 for c in chunks):
        raise TrialCheckFailed(f"the chunks ran {done} loops of {iterations}, or their sums "
                               f"disagree with their counts")
    return {"iterations": done, "sum": sum(c[1] for c in chunks)}



def check_tasks(answers, tasks, iterations):
    """Every task's answer exactly once, each with its full loop count; returns the checksum.

    The checksum sum((index + 1) * loops) is an exact integer: a lost, repeated or short task
    changes it."""
    indexes = sorted(a[0] for a in answers)
    if indexes != list(range(tasks)):
        missing = sorted(set(range(tasks)) - set(indexes))
        raise TrialCheckFailed(f"{len(answers)} answers for {tasks} tasks; missing "
                               f"{missing[:5]}, repeated {len(indexes) - len(set(indexes))}")
    short = [a[0] for a in answers if a[1] != iterations]
    if short:
        raise TrialCheckFailed(f"tasks {short[:5]} ran a wrong number of loops")
    checksum = sum((a[0] + 1) * a[1] for a in answers)
    expected = iterations * tasks * (tasks + 1) // 2
    if checksum != expected:
        raise TrialCheckFailed(f"task checksum {checksum}, expected {expected}")
    return checksum


def pid_state(pid):
    """'gone', 'zombie' (dead, not yet reaped) or 'alive' for any pid, ours or not."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return "gone"
    return "zombie" if state in ("Z", "X") else "alive"


def wait_dead(pid, timeout_s):
    """Seconds until `pid` is dead (gone or a zombie), or None if still alive at the timeout."""
    start = time.perf_counter()
    while True:
        if pid_state(pid) != "alive":
            return time.perf_counter() - start
        if time.perf_counter() - start > timeout_s:
            return None
        time.sleep(0.002)


def kill_and_reap(pid):
    """Kill a stray pid (SIGKILL) and reap it if it became ours (PID 1 in a container adopts
    orphans)."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + STOP_GRACE_S
    while time.monotonic() < deadline and pid_state(pid) == "alive":
        time.sleep(0.005)
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass  # not our child: its own parent reaps it


# ---------------------------------------------------------------------------------------------
# A crew: worker processes that each put one report on a shared queue


def crew_member(work, results, index, args):
    """A worker process: runs work(index, *args) and puts ("ok" | "check" | "error", index,
    report or reason) on `results`; a wrong answer inside a worker stays a wrong answer."""
    try:
        results.put(("ok", index, work(index, *args)))
    except TrialCheckFailed as failure:
        results.put(("check", index, str(failure)))
    except BaseException:  # the reason travels to the parent, which fails the trial with it
        results.put(("error", index, traceback.format_exc(limit=6)))


class Crew:
    """Start worker processes, collect one report each within a deadline, leave no orphans.

    `with Crew(context, timeout_s) as crew: crew.start(work, [args...]); crew.collect()`."""

    def __init__(self, context, timeout_s):
        self.context = context
        self.timeout_s = timeout_s
        self.deadline = time.monotonic() + timeout_s
        self.results = context.Queue()
        self.processes = []
        self.collected = False

    def __enter__(self):
        return self

    def start(self, work, args_list, name="lesson"):
        """One process per item of `args_list`, indexed in order after those started before."""
        for args in args_list:
            index = len(self.processes)
            process = self.context.Process(target=crew_member, name=f"{name}-{index}",
                                           args=(work, self.results, index, tuple(args)),
                                           daemon=True)
            process.start()
            self.processes.append(process)

    def collect(self):
        """The reports in index order; raises TrialCheckFailed for a wrong answer in a worker,
        RuntimeError for a crash, TimeoutError past the deadline."""
        reports, dead_since = {}, {}
        while len(reports) < len(self.processes):
            now = time.monotonic()
            if now > self.deadline:
                waiting = sorted(set(range(len(self.processes))) - set(reports))
                raise TimeoutError(f"no report from workers {waiting} within "
                                   f"timeout_s={self.timeout_s:g}")
            try:
                status, index, report = self.results.get(timeout=0.1)
            except queue.Empty:
                self._notice_dead(reports, dead_since, now)
                continue
            if status == "check":
                raise TrialCheckFailed(f"worker {index}: {report}")
            if status == "error":
                raise RuntimeError(f"worker {index} failed:\n{report}")
            reports[index] = report
        self.collected = True
        return [reports[i] for i in range(len(self.processes))]

    def _notice_dead(self, reports, dead_since, now):
        for index, process in enumerate(self.processes):
            if index in reports or process.exitcode is None:
                continue
            dead_since.setdefault(index, now)
            if now - dead_since[index] > REPORT_GRACE_S:
                raise RuntimeError(f"worker {index} exited with code {process.exitcode} "
                                   f"without a report")

    def __exit__(self, *_exc):
        stop_processes(self.processes, graceful=self.collected)
        self.results.close()
        return False


def wait_any(processes, timeout_s):
    """The processes of `processes` that have ended, waiting at most `timeout_s` for one."""
    ready = multiprocessing.connection.wait([p.sentinel for p in processes], timeout_s)
    return [p for p in processes if p.sentinel in ready]


def span(reports):
    """The crew's timed section: first worker's start to last worker's end (one clock: Linux's
    CLOCK_MONOTONIC behind perf_counter is the same in every process)."""
    return max(r["t1"] for r in reports) - min(r["t0"] for r in reports)


# ---------------------------------------------------------------------------------------------
# After the clock: does a lock exclude another process?

PROBE_WAIT_S = 30.0


def try_acquire(lock):
    """A probe process: exit code 1 when it could acquire `lock` (held by its parent), else 0."""
    got = lock.acquire(False)
    if got:
        lock.release()
    raise SystemExit(1 if got else 0)


def excluded_elsewhere(context, lock):
    """After the clock: while this process holds `lock`, may another process acquire it? A
    lock that excludes answers no (True)."""
    with lock:
        probe = context.Process(target=try_acquire, args=(lock,), daemon=True)
        probe.start()
        probe.join(PROBE_WAIT_S)
    if probe.exitcode is None:
        probe.kill()
        probe.join()
        raise TimeoutError("the exclusion probe did not finish")
    return probe.exitcode == 0


# ---------------------------------------------------------------------------------------------
# Stamped critical sections


def most_inside(enters, exits):
    """The most sections open at one instant, and how often that count was reached, from the
    sections' enter and exit stamps (any order; an exit and an enter at the same instant do
    not overlap)."""
    enters, exits = sorted(enters), sorted(exits)
    inside = most = reached = 0
    j = 0
    for enter in enters:
        while j < len(exits) and exits[j] <= enter:
            inside -= 1
            j += 1
        inside += 1
        if inside > most:
            most, reached = inside, 1
        elif inside == most:
            reached += 1
    return most, reached

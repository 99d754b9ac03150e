"""Lesson lifecycle: how processes end, and what their ending leaves behind.

  terminate             a child sleeps; terminate() then join(): the exit code must be -15
                        (SIGTERM), `repeats` times; is_alive() right after terminate() is
                        recorded (the tutorial prints True there)
  daemon                a middle process starts a daemon child, reports its pid and returns:
                        multiprocessing's exit handler must have ended the daemon child; the
                        child's state right when the parent's exit code is seen shows the
                        order (daemon_dead_at_parent_exit: dead before the parent exited)
  daemon_parent_killed  the same, but the middle process is SIGKILLed: no exit handler runs;
                        whether the daemon child survives is a fact (it is then killed)
  kill_mid_put          a child puts `put_items` items of `item_bytes` on a Queue nobody reads
                        yet, and is SIGKILLed while its feeder thread writes (an item larger
                        than the pipe's 64 KiB cannot be written whole; many small ones fill the
                        pipe). Then an observer process drains the queue and tries a put and a
                        get of its own: what works is reported as facts, never as a failure
See lab/experiments/lessons.py for params and metrics. Importing this module starts nothing.
"""

import multiprocessing.connection
import os
import queue
import signal
import time

from lab.experiments import TrialCheckFailed, stop_processes
from lab.experiments.lessons_kit import (kill_and_reap, median, metric, pid_state,
                                         wait_dead)

SLEEP_S = 600.0  # a child that would outlive any trial unless something ends it
READY_S = 30.0
GONE_S = 5.0  # a daemon child must be gone this long after its parent's normal exit
ORPHAN_LOOK_S = 0.5  # after its parent's SIGKILL, a daemon child alive this long survived
SETTLE_S = 0.2  # the putter's feeder gets this long to write until the pipe is full
OBSERVE_GET_S = 0.3  # the observer's get() waits this long before calling the queue empty
OBSERVE_PUT_GET_S = 1.0  # its own put must come back through get() within this
QUIET_S = 2.0  # longer than any wait of the observer: a step this late is blocked for good


def sleeper(ready):
    ready.set()
    time.sleep(SLEEP_S)


def pipe_sleeper(started):
    started.send(True)
    started.close()
    time.sleep(SLEEP_S)


def daemon_parent(context_name, report, kill_self):
    """The middle process: a daemon child, its pid reported, then a normal return or SIGKILL.

    Its child signals through a pipe, not an Event: a SIGKILLed owner of named semaphores
    leaves them to the resource tracker, which warns on stderr."""
    import multiprocessing
    context = multiprocessing.get_context(context_name)
    started_in, started_out = context.Pipe(duplex=False)
    child = context.Process(target=pipe_sleeper, args=(started_out,), daemon=True)
    child.start()
    started_out.close()
    started_in.poll(READY_S)
    report.send(child.pid)
    report.close()
    if kill_self:
        os.kill(os.getpid(), signal.SIGKILL)


def payload(index, size):
    return bytes([index % 256]) * size


def putter(the_queue, count, items, size, ready):
    for index in range(items):
        the_queue.put(payload(index, size))  # returns at once: the feeder thread writes
        count.value = index + 1
    ready.set()
    time.sleep(SLEEP_S)


def observer(the_queue, size, verdict):
    """Drain what the dead putter left, then a put and a get of its own; each step reported as
    it finishes, so a step that blocks is known by the one that never arrives."""
    intact = 0
    verdict.send(("started", None))
    try:
        while True:
            item = the_queue.get(timeout=OBSERVE_GET_S)
            if item != payload(intact, size):
                verdict.send(("corrupt", intact))
                return
            intact += 1
            verdict.send(("intact", intact))
    except queue.Empty:
        verdict.send(("drained", intact))
    except Exception as error:  # a torn message: the fact is what it raised
        verdict.send(("get_error", f"{type(error).__name__}: {error}"))
        return
    the_queue.put("after")
    try:
        verdict.send(("put_get", the_queue.get(timeout=OBSERVE_PUT_GET_S) == "after"))
    except queue.Empty:
        verdict.send(("put_get", False))


# ---------------------------------------------------------------------------------------------
# Cases


def check_terminated(codes):
    """terminate() sends SIGTERM: every exit code must be -15."""
    wrong = [code for code in codes if code != -signal.SIGTERM]
    if wrong:
        raise TrialCheckFailed(f"terminate() gave exit codes {wrong[:5]}, expected -15")


def _terminate(context, p):
    ready = context.Event()
    durations, alive_after, codes = [], 0, []
    for _ in range(p["repeats"]):
        ready.clear()
        child = context.Process(target=sleeper, args=(ready,), daemon=True)
        child.start()
        try:
            if not ready.wait(READY_S):
                raise TimeoutError("the child to terminate never started")
            start = time.perf_counter()
            child.terminate()
            alive_after += child.is_alive()
            child.join(READY_S)
            durations.append(time.perf_counter() - start)
        finally:
            stop_processes([child], graceful=False)
        codes.append(child.exitcode)
    check_terminated(codes)
    metrics = {"terminate_join_us": metric(median(durations) * 1e6, "us"),
               "alive_after_terminate": metric(alive_after, "processes")}
    return sum(durations), metrics, {"terminated": len(codes), "exit_code": -signal.SIGTERM,
                                     "alive_right_after_terminate": alive_after}


def _wait_exit(process, timeout_s):
    """The exit code once `process` is dead, polled: join() waits on the sentinel pipe, which a
    forked grandchild inherits and keeps open while it lives."""
    deadline = time.monotonic() + timeout_s
    while process.exitcode is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the middle process did not end within {timeout_s:g} s")
        time.sleep(0.001)
    return process.exitcode


def _daemon(context, p, kill_parent):
    receive, send = context.Pipe(duplex=False)
    start = time.perf_counter()
    middle = context.Process(target=daemon_parent,
                             args=(context.get_start_method(), send, kill_parent))
    middle.start()
    send.close()
    child_pid = None
    try:
        if not receive.poll(READY_S):
            raise TimeoutError("the middle process never reported its daemon child")
        child_pid = receive.recv()
        code = _wait_exit(middle, READY_S)
        at_exit = pid_state(child_pid)  # right when the parent's exit code is seen
        sentinel_closed = bool(multiprocessing.connection.wait([middle.sentinel], 0.05))
        gone_after = wait_dead(child_pid, ORPHAN_LOOK_S if kill_parent else GONE_S)
        seconds = time.perf_counter() - start
    finally:
        if child_pid is not None and pid_state(child_pid) == "alive":
            kill_and_reap(child_pid)
        stop_processes([middle], graceful=False)
        receive.close()
    expected_code = -signal.SIGKILL if kill_parent else 0
    if code != expected_code:
        raise RuntimeError(f"the middle process exited with {code}, expected {expected_code}")
    check = {"daemon_pid": child_pid, "parent_exit": "SIGKILL" if kill_parent else "normal",
             "parent_sentinel_closed_at_exit": sentinel_closed}
    if kill_parent:
        survived = gone_after is None
        check["fact"] = ("the daemon child survived its parent's SIGKILL (no exit handler ran)"
                         if survived else "the daemon child died with its SIGKILLed parent")
        if survived and not sentinel_closed:
            check["fact_join"] = ("join() on the dead parent would wait for the orphan: it "
                                  "inherited the parent's sentinel pipe")
        return seconds, {"daemon_survived": metric(int(survived), "bool")}, check
    if gone_after is None:
        raise TrialCheckFailed(f"the daemon child {child_pid} was alive {GONE_S:g} s after its "
                               f"parent's normal exit")
    # The parent's exit handler (multiprocessing's _exit_function) terminates and joins its
    # daemon children before the parent exits: the child is dead before the exit code exists.
    # What is measured is that order, not a delay after the exit (one /proc read's worth).
    dead_first = at_exit != "alive"
    check.update({"daemon_gone": True, "state_at_parent_exit": at_exit,
                  "order": ("the daemon child died before its parent's exit (the parent's exit "
                            "handler terminated and joined it)" if dead_first else
                            "the daemon child outlived its parent's exit code")})
    return seconds, {"daemon_dead_at_parent_exit": metric(int(dead_first), "bool")}, check


def _kill_mid_put(context, p):
    size, items = p["item_bytes"], p["put_items"]
    the_queue, count = context.Queue(), context.RawValue("q", 0)
    ready = context.Event()
    child = context.Process(target=putter, args=(the_queue, count, items, size, ready),
                            daemon=True)
    verdict_in, verdict_out = context.Pipe(duplex=False)
    watcher = context.Process(target=observer, args=(the_queue, size, verdict_out), daemon=True)
    facts = {}
    try:
        child.start()
        if not ready.wait(p["timeout_s"]):
            raise TimeoutError("the putter never finished its put() calls")
        time.sleep(SETTLE_S)
        os.kill(child.pid, signal.SIGKILL)
        child.join(READY_S)
        start = time.perf_counter()
        watcher.start()
        verdict_out.close()
        facts = _observe(verdict_in, READY_S)
        seconds = time.perf_counter() - start
    finally:
        stop_processes([child, watcher], graceful=False)
        verdict_in.close()
        the_queue.close()
    return seconds, _put_metrics(count.value, facts), {
        "items_put": count.value, "item_bytes": size, **facts,
        "putter_exit_code": child.exitcode}


def _observe(verdict, start_timeout_s):
    """The observer's steps until its verdict, or the step where it blocked (no word from it
    for QUIET_S, longer than any of its own waits)."""
    intact, facts = 0, {"get_after_kill": "blocked (a torn message: get() waits for bytes "
                                          "that never come)",
                        "put_get_after_kill": "not tried"}
    quiet = start_timeout_s  # its start may be slow (spawn); after that, QUIET_S
    while verdict.poll(quiet):
        quiet = QUIET_S
        try:
            step, value = verdict.recv()
        except EOFError:
            facts["get_after_kill"] = "the observer died"
            break
        if step == "intact":
            intact = value
        elif step == "drained":
            facts["get_after_kill"] = "ok: every whole item came out, then empty"
            facts["put_get_after_kill"] = "blocked (the dead putter's write lock is never " \
                                          "released: a new put never reaches the pipe)"
        elif step in ("corrupt", "get_error"):
            facts["get_after_kill"] = f"{step}: {value}"
            break
        elif step == "put_get":
            facts["put_get_after_kill"] = "ok" if value else facts["put_get_after_kill"]
            break
    facts["items_intact"] = intact
    return facts


def _put_metrics(items_put, facts):
    return {"items_put": metric(items_put, "items"),
            "items_intact": metric(facts.get("items_intact", 0), "items"),
            "get_blocked": metric(int(facts["get_after_kill"].startswith("blocked")), "bool"),
            "put_get_ok": metric(int(facts["put_get_after_kill"] == "ok"), "bool")}


def run_lifecycle(context, p, workers, cpus, variant):
    case = p["case"]
    cpu = os.times()
    if case == "terminate":
        seconds, metrics, check = _terminate(context, p)
    elif case in ("daemon", "daemon_parent_killed"):
        seconds, metrics, check = _daemon(context, p, case == "daemon_parent_killed")
    else:
        seconds, metrics, check = _kill_mid_put(context, p)
    after = os.times()
    check["case"] = case
    return {"seconds": seconds,
            "cpu_seconds": (after.user + after.system) - (cpu.user + cpu.system),
            "metrics": metrics, "check": check}

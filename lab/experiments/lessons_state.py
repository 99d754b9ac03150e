"""Lesson shared_state: increments per second, and whether they all land, for each way the
tutorial (and the docs) share a counter between processes.

Every worker waits on a Barrier, then does `increments` read-modify-writes of the shared counter
(with `hold_us` of sleep between the read and the write when asked), and reports its first and
last perf_counter stamps. The tutorial's alternatives to shared memory, a Queue and a Pipe,
share the counter the way message passing does: every worker sends each increment, and a
holder (a thread of the trial's process) adds them up; the section ends when the holder has
every one. Locked states must end at exactly workers x increments; value_unlocked
counts its lost updates as the lesson. See lab/experiments/lessons.py for params and metrics.
"""

import multiprocessing.connection
import sys
import threading
import time
from multiprocessing import shared_memory

from lab.experiments import TrialCheckFailed
from lab.experiments.lessons_kit import Crew, excluded_elsewhere, hold as _hold, metric, span

BARRIER_TIMEOUT_S = 60.0


class NoopLock:
    """The test double's lock: has the interface, excludes nobody."""

    def acquire(self, *_args, **_kwargs):
        return True

    def release(self):
        pass

    def __enter__(self):
        return True

    def __exit__(self, *_exc):
        return False


def _attach(name):
    """Attach to the trial's segment; on 3.13+ without registering it with the resource tracker
    (only the creator unlinks it)."""
    if sys.version_info >= (3, 13):
        return shared_memory.SharedMemory(name=name, track=False)
    return shared_memory.SharedMemory(name=name)


def _counted(index, start, increments, step):
    """Run `step()` `increments` times after the start barrier; the worker's report."""
    start.wait(BARRIER_TIMEOUT_S)
    cpu = time.process_time()
    t0 = time.perf_counter()
    for _ in range(increments):
        step()
    t1 = time.perf_counter()
    return {"t0": t0, "t1": t1, "cpu_seconds": time.process_time() - cpu}


def value_worker(index, start, value, increments, hold_s, locked):
    def step():
        if locked:
            with value.get_lock():
                current = value.value
                _hold(hold_s)
                value.value = current + 1
        else:  # each access takes the lock alone: the read and the write can interleave
            current = value.value
            _hold(hold_s)
            value.value = current + 1
    return _counted(index, start, increments, step)


def array_worker(index, start, array, increments, hold_s):
    slots = len(array)
    counter = iter(range(increments))

    def step():
        slot = next(counter) % slots
        with array.get_lock():
            current = array[slot]
            _hold(hold_s)
            array[slot] = current + 1
    return _counted(index, start, increments, step)


def manager_worker(index, start, dictionary, lock, increments, hold_s):
    def step():
        with lock:  # d["count"] += 1 is two round trips to the manager: it needs a lock
            current = dictionary["count"]
            _hold(hold_s)
            dictionary["count"] = current + 1
    return _counted(index, start, increments, step)


def shm_worker(index, start, name, lock, increments, hold_s):
    segment = _attach(name)
    view = segment.buf.cast("q")
    try:
        def step():
            with lock:
                current = view[0]
                _hold(hold_s)
                view[0] = current + 1
        return _counted(index, start, increments, step)
    finally:
        view.release()
        segment.close()


def message_worker(index, start, channel, increments, hold_s):
    """Send each increment (1) through a Queue or this worker's end of a Pipe."""
    send = channel.put if hasattr(channel, "put") else channel.send

    def step():
        _hold(hold_s)
        send(1)
    report = _counted(index, start, increments, step)
    if hasattr(channel, "join_thread"):
        channel.close()
        channel.join_thread()  # every increment is in the pipe before the report
    return report


class Holder(threading.Thread):
    """The counter behind a Queue or Pipes: adds every increment received until `expected`."""

    def __init__(self, receive, expected, timeout_s):
        super().__init__(daemon=True)
        self.receive, self.expected, self.timeout_s = receive, expected, timeout_s
        self.total, self.t1, self.error = 0, None, None

    def run(self):
        deadline = time.monotonic() + self.timeout_s
        try:
            if isinstance(self.receive, list):  # Pipes: one receiving end per worker
                open_ends = list(self.receive)
                while (self.total < self.expected and open_ends
                       and time.monotonic() < deadline):
                    for conn in multiprocessing.connection.wait(open_ends, 1.0):
                        try:
                            self.total += conn.recv()
                        except EOFError:  # that worker is done and its end closed
                            open_ends.remove(conn)
            else:
                while self.total < self.expected:
                    self.total += self.receive.get(timeout=max(0.01, deadline
                                                               - time.monotonic()))
        except Exception as error:  # the trial fails with it: an error, never a number
            self.error = error
        self.t1 = time.perf_counter()


def _message_state(context, crew, state, start, workers, increments, hold_s, timeout_s):
    if state == "queue":
        channel = context.Queue()
        holder = Holder(channel, workers * increments, timeout_s)
        crew.start(message_worker, [(start, channel, increments, hold_s)] * workers)
    else:
        pipes = [context.Pipe(duplex=False) for _ in range(workers)]
        holder = Holder([r for r, _ in pipes], workers * increments, timeout_s)
        crew.start(message_worker, [(start, w, increments, hold_s) for _, w in pipes])
    holder.start()
    return holder


def _final(state, shared):
    """The counter as the workers left it (read after all of them reported)."""
    if state == "array_locked":
        return list(shared[:])
    if state == "manager_dict":
        return shared["count"]
    if state == "shared_memory":
        return int.from_bytes(shared.buf[:8], sys.byteorder, signed=True)
    if state in ("queue", "pipe"):
        return shared.total
    return shared.value


def _expected_slots(increments, slots, workers):
    """What each Array slot must hold: worker-local counters go round the slots."""
    base, extra = divmod(increments, slots)
    return [workers * (base + (1 if s < extra else 0)) for s in range(slots)]


def run_shared_state(context, p, workers, cpus, variant):
    state = p["state"]
    workers = workers or max(2, len(cpus))
    increments, hold_s = p["increments"], p["hold_us"] / 1e6
    expected = workers * increments
    start = context.Barrier(workers, timeout=BARRIER_TIMEOUT_S)
    manager = segment = None
    try:
        with Crew(context, p["timeout_s"]) as crew:
            if state in ("value_locked", "value_unlocked"):
                lock = NoopLock() if variant == "test_value_noop_lock" else True
                shared = context.Value("q", 0, lock=lock)
                crew.start(value_worker, [(start, shared, increments, hold_s,
                                           state == "value_locked")] * workers)
            elif state == "array_locked":
                shared = context.Array("q", p["array_slots"])
                crew.start(array_worker, [(start, shared, increments, hold_s)] * workers)
            elif state == "manager_dict":
                manager = context.Manager()
                shared = manager.dict({"count": 0})
                lock = context.Lock()  # held here: under spawn a lock dies with its last owner
                crew.start(manager_worker, [(start, shared, lock, increments, hold_s)] * workers)
            elif state in ("queue", "pipe"):
                shared = _message_state(context, crew, state, start, workers, increments,
                                        hold_s, p["timeout_s"])
            else:
                segment = shared = shared_memory.SharedMemory(create=True, size=8)
                segment.buf[:8] = bytes(8)
                lock = context.Lock()
                crew.start(shm_worker, [(start, segment.name, lock, increments, hold_s)]
                           * workers)
            reports = crew.collect()
            if state in ("queue", "pipe"):
                shared.join(p["timeout_s"])
                if shared.error is not None or shared.is_alive():
                    raise TimeoutError(f"the {state}'s holder got {shared.total} of "
                                       f"{expected} increments: {shared.error!r}")
                # the section ends when the holder has every increment
                reports = reports + [{"t0": min(r["t0"] for r in reports), "t1": shared.t1,
                                      "cpu_seconds": 0.0}]
            result = _final(state, shared)
    finally:
        if manager is not None:
            manager.shutdown()
        if segment is not None:
            segment.close()
            segment.unlink()
    outcome = _outcome(p, state, variant, workers, expected, result, reports)
    if state == "value_locked":  # the count may come out exact by luck: the lock must exclude
        if not excluded_elsewhere(context, shared.get_lock()):
            raise TrialCheckFailed("another process acquired the Value's lock while this one "
                                   "held it (the probe after the clock)")
        outcome["check"]["probe"] = "its lock, held here, refused another process"
    return outcome


def _outcome(p, state, variant, workers, expected, result, reports):
    check = {"state": state, "workers": workers, "increments_per_worker": p["increments"],
             "expected": expected, "hold_us": p["hold_us"]}
    if state == "array_locked":
        want = _expected_slots(p["increments"], p["array_slots"], workers)
        if result != want:
            raise TrialCheckFailed(f"Array slots hold {result[:8]}, expected {want[:8]}")
        total = sum(result)
    else:
        total = result
    lost = expected - total
    check["final"] = total
    # Unlocked, one worker's stale write can erase any number of the others' increments: the
    # count may end far below one worker's share (in theory as low as 2), never below 1.
    if total > expected or total < 1:
        raise TrialCheckFailed(f"the counter ended at {total}: impossible for {workers} "
                               f"workers x {p['increments']} increments")
    if state == "value_unlocked":
        check["lesson"] = "lost updates seen" if lost else "no lost updates seen this time " \
                                                           "(the race is still there)"
    elif lost:
        raise TrialCheckFailed(f"{state} ended at {total}, expected {expected}: {lost} "
                               f"increments lost under its lock")
    seconds = span(reports)
    metrics = {"increments_per_second": metric(expected / seconds, "1/s"),
               "increment_us": metric(seconds / expected * 1e6, "us"),
               "lost_updates": metric(lost, "increments")}
    return {"seconds": seconds, "cpu_seconds": sum(r["cpu_seconds"] for r in reports),
            "metrics": metrics, "check": check}

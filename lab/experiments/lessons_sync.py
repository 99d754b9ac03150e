"""Lesson sync: what each synchronization primitive costs across processes, and whether it does
what the tutorial says, judged from perf_counter stamps taken inside the critical sections.

  lock, rlock, semaphore  `workers` processes x `ops` acquire/stamp/stamp/release; the stamped
                          sections of different processes never overlap (semaphore: never more
                          than `semaphore_value` at once). rlock re-enters each time, and before
                          the clock a release by a process that does not own it must raise
  semaphore_one           Semaphore(1) under the Lock's contention (a mutex against a
                          semaphore: in CPython both are the same SemLock code)
  event                   worker 0 sets, the others wait, `ops` rounds: every waiter wakes every
                          round, none before the set() stamp. A round is set, wake and two
                          Barrier waits (clear only when all woke): wake_us is the Event's own
  (event, barrier, and the sections start together behind a start Barrier: no worker's
  start-up is inside the timed section)
  condition               worker 0 produces `ops` items into a one-slot buffer, the others
                          consume; replayed in stamp order the buffer never goes below 0 or
                          above 1, and every item is consumed once
  barrier                 `workers` parties x `ops` rounds: nobody leaves before the last
                          arrives, all leave within `barrier_bound_ms` of the last arrival
See lab/experiments/lessons.py for params and metrics. Importing this module starts nothing.
"""

import array
import threading
import time

from lab.experiments import SpecError, TrialCheckFailed
from lab.experiments.lessons_kit import (Crew, excluded_elsewhere, hold as _hold, median, metric,
                                         most_inside, span)
from lab.experiments.lessons_state import NoopLock

WAIT_S = 30.0  # any single wait inside a worker: a hang becomes an error, never a stuck trial
CONDITION_CAPACITY = 1
PROBE_S = 0.01  # after the clock: how long a probe waits on what must not let it through


# ---------------------------------------------------------------------------------------------
# The test doubles' broken primitives (module level: spawn and forkserver children import them)


class EarlyEvent:
    """test_event_wakes_early: an Event whose wait() never waits."""

    def __init__(self, event):
        self.event = event

    def set(self):
        self.event.set()

    def clear(self):
        self.event.clear()

    def is_set(self):
        return self.event.is_set()

    def wait(self, timeout=None):
        return True


class LooseCondition(NoopLock):
    """test_condition_does_not_lock: a Condition that neither locks (NoopLock's acquire and
    release) nor is notified (its wait() returns after a moment, as a spurious wake-up may)."""

    def wait(self, timeout=None):
        time.sleep(0)
        return True

    def notify_all(self):
        pass


class OpenBarrier:
    """test_barrier_does_not_wait: a Barrier whose wait() lets everyone through at once."""

    def __init__(self, parties):
        self.parties = parties

    def wait(self, timeout=None):
        return 0


# ---------------------------------------------------------------------------------------------
# Workers (module level: spawn and forkserver children import them)


def section_worker(index, start, lock, ops, hold_s, reenter):
    """acquire (and re-acquire for an RLock), stamp, [hold], stamp, release; `ops` times."""
    start.wait(WAIT_S)
    enters, exits = array.array("d"), array.array("d")  # compact: 8 bytes a stamp
    stamp = time.perf_counter
    cpu = time.process_time()
    t0 = stamp()
    for _ in range(ops):
        lock.acquire()
        if reenter and not lock.acquire(timeout=WAIT_S):
            raise TrialCheckFailed("the RLock did not let its owner acquire it again")
        enters.append(stamp())
        _hold(hold_s)
        exits.append(stamp())
        if reenter:
            lock.release()
        lock.release()
    t1 = stamp()
    return {"t0": t0, "t1": t1, "cpu_seconds": time.process_time() - cpu, "enters": enters,
            "exits": exits}


def event_setter(index, start, event, woke, rounds):
    start.wait(WAIT_S)  # every worker started: no start-up inside the section
    cpu = time.process_time()
    t0 = time.perf_counter()
    set_at = []
    for _ in range(rounds):
        set_at.append(time.perf_counter())
        event.set()
        woke.wait(WAIT_S)  # every waiter is past wait(): now clear
        event.clear()
        woke.wait(WAIT_S)  # cleared: the waiters may wait again
    t1 = time.perf_counter()
    return {"t0": t0, "t1": t1, "cpu_seconds": time.process_time() - cpu, "set_at": set_at}


def event_waiter(index, start, event, woke, rounds):
    start.wait(WAIT_S)
    cpu = time.process_time()
    t0 = time.perf_counter()
    woke_at = []
    for round_ in range(rounds):
        if not event.wait(WAIT_S):
            raise TrialCheckFailed(f"waiter {index} was not woken in round {round_}")
        woke_at.append(time.perf_counter())
        woke.wait(WAIT_S)
        woke.wait(WAIT_S)
    t1 = time.perf_counter()
    return {"t0": t0, "t1": t1, "cpu_seconds": time.process_time() - cpu, "woke_at": woke_at}


def _wait_for(condition, predicate):
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        if not condition.wait(max(0.0, deadline - time.monotonic())):
            if not predicate():
                raise TimeoutError("a Condition waiter was never notified")


def condition_producer(index, start, condition, items, done, count):
    start.wait(WAIT_S)
    cpu = time.process_time()
    t0 = time.perf_counter()
    produced = []
    for _ in range(count):
        with condition:
            _wait_for(condition, lambda: items.value < CONDITION_CAPACITY)
            items.value += 1
            produced.append(time.perf_counter())
            condition.notify_all()  # one condition for "not full" and "not empty": wake all
    with condition:
        done.value = 1
        condition.notify_all()
    t1 = time.perf_counter()
    return {"t0": t0, "t1": t1, "cpu_seconds": time.process_time() - cpu, "produced": produced}


def condition_consumer(index, start, condition, items, done):
    start.wait(WAIT_S)
    cpu = time.process_time()
    t0 = time.perf_counter()
    consumed = []
    while True:
        with condition:
            _wait_for(condition, lambda: items.value > 0 or done.value)
            if items.value == 0:
                break  # done, and nothing left
            items.value -= 1
            consumed.append(time.perf_counter())
            condition.notify_all()
    t1 = time.perf_counter()
    return {"t0": t0, "t1": t1, "cpu_seconds": time.process_time() - cpu, "consumed": consumed}


def barrier_party(index, start, barrier, rounds):
    start.wait(WAIT_S)  # every party started: the first round is not a start-up race
    cpu = time.process_time()
    t0 = time.perf_counter()
    arrived, left = [], []
    for _ in range(rounds):
        arrived.append(time.perf_counter())
        barrier.wait(WAIT_S)
        left.append(time.perf_counter())
    t1 = time.perf_counter()
    return {"t0": t0, "t1": t1, "cpu_seconds": time.process_time() - cpu, "arrived": arrived,
            "left": left}


def probe_admits(lock, limit, primitive):
    """After the clock: `limit` acquires fill it; one more acquire(block=False) must fail."""
    held = 0
    try:
        for _ in range(limit):
            if not lock.acquire(timeout=WAIT_S):
                raise TimeoutError(f"the {primitive} probe could not acquire it {limit} times")
            held += 1
        extra = lock.acquire(False)
        if extra:
            held += 1
    finally:
        for _ in range(held):
            lock.release()
    if extra:
        raise TrialCheckFailed(f"{limit + 1} acquires got inside a {primitive} admitting "
                               f"{limit} (the probe after the clock: acquire(block=False) "
                               f"succeeded)")


def hold_then_release(lock, held, done, release_after):
    """Holds `lock` until `done`; releases it then only if asked (an RLock must be released by
    its owner; a Lock another process released must not be released twice)."""
    lock.acquire()
    held.set()
    done.wait(WAIT_S)
    if release_after:
        lock.release()


# ---------------------------------------------------------------------------------------------
# Before the clock: who may release


def release_by_other(context, lock, is_rlock):
    """A process holds `lock`; this process tries to release it. An RLock must refuse."""
    held, done = context.Event(), context.Event()
    holder = context.Process(target=hold_then_release, args=(lock, held, done, is_rlock),
                             daemon=True)
    holder.start()
    try:
        if not held.wait(WAIT_S):
            raise TimeoutError("the lock holder never acquired the lock")
        try:
            lock.release()
            outcome = "allowed"
        except (AssertionError, ValueError) as refused:
            outcome = f"refused: {type(refused).__name__}: {refused}"
    finally:
        done.set()
        holder.join(WAIT_S)
        if holder.is_alive():
            holder.kill()
            holder.join()
    if is_rlock and outcome == "allowed":
        raise TrialCheckFailed("an RLock held by another process was released by this one")
    return outcome


# ---------------------------------------------------------------------------------------------
# Judging the stamps (pure functions: the tests forge broken stamps against them)


def check_sections(enters, exits, limit, primitive):
    """(most inside at once, how often reached); more than `limit` inside is a failed check."""
    inside, reached = most_inside(enters, exits)
    if inside > limit:
        raise TrialCheckFailed(f"{inside} processes were inside a {primitive} admitting "
                               f"{limit} at once")
    return inside, reached


def check_event_rounds(set_at, woke_at):
    """Per round, the last waiter's wake latency; a waiter short of a round, or awake before
    the set() stamp, is a failed check. `woke_at`: one list of stamps per waiter."""
    latencies = []
    for index, stamps in enumerate(woke_at):
        if len(stamps) != len(set_at):
            raise TrialCheckFailed(f"waiter {index} woke {len(stamps)} times in "
                                   f"{len(set_at)} rounds")
    for round_, set_time in enumerate(set_at):
        woken = [stamps[round_] for stamps in woke_at]
        if min(woken) < set_time:
            raise TrialCheckFailed(f"a waiter passed wait() before set() in round {round_}")
        latencies.append(max(woken) - set_time)
    return latencies


def check_buffer(produced, consumed, count, capacity):
    """Replayed in stamp order, the buffer stays within 0 .. capacity and every item produced
    is consumed once. `consumed`: one list of stamps per consumer."""
    taken = sum(len(stamps) for stamps in consumed)
    if len(produced) != count or taken != count:
        raise TrialCheckFailed(f"{len(produced)} items produced, {taken} consumed, "
                               f"expected {count}")
    events = [(t, 1) for t in produced] + [(t, -1) for stamps in consumed for t in stamps]
    level = 0
    for when, step in sorted(events):
        level += step
        if not 0 <= level <= capacity:
            raise TrialCheckFailed(f"the {capacity}-slot buffer held {level} items at {when}")


def check_barrier_rounds(arrived, left, bound_s):
    """Per round, how long after the last arrival the last party left; a party out before
    the last arrival, or a release slower than `bound_s`, is a failed check."""
    spreads = []
    for round_ in range(len(arrived[0])):
        last_arrival = max(stamps[round_] for stamps in arrived)
        out = [stamps[round_] for stamps in left]
        if min(out) < last_arrival:
            raise TrialCheckFailed(f"a party left round {round_} before the last arrived")
        spreads.append(max(out) - last_arrival)
    if max(spreads) > bound_s:
        raise TrialCheckFailed(f"the barrier took {max(spreads) * 1e3:.1f} ms to release all "
                               f"parties, over the bound of {bound_s * 1e3:g} ms")
    return spreads


# ---------------------------------------------------------------------------------------------
# The trial


def _op_metrics(seconds, ops):
    return {"op_us": metric(seconds / ops * 1e6, "us"),
            "ops_per_second": metric(ops / seconds, "1/s")}


def _sections(context, p, workers, variant):
    primitive, ops, hold_s = p["primitive"], p["ops"], p["hold_us"] / 1e6
    check = {}
    if variant == "test_lock_does_not_lock":
        lock, limit = NoopLock(), 1
        check["release_by_other_process"] = "allowed"
    elif primitive == "semaphore_one":  # Semaphore(1): the Lock's contention, the same code
        lock, limit = context.Semaphore(1), 1
    elif primitive == "semaphore":
        admits = p["semaphore_value"] + (1 if variant == "test_semaphore_admits_three" else 0)
        lock, limit = context.Semaphore(admits), p["semaphore_value"]
        if workers <= limit:
            raise SpecError(f"lessons sync semaphore({limit}) needs more than {limit} workers "
                            f"to be tested, got {workers}")
    else:
        lock, limit = (context.RLock() if primitive == "rlock" else context.Lock()), 1
        check["release_by_other_process"] = release_by_other(context, lock, primitive == "rlock")
    start = context.Barrier(workers, timeout=WAIT_S)
    with Crew(context, p["timeout_s"]) as crew:
        crew.start(section_worker, [(start, lock, ops, hold_s, primitive == "rlock")] * workers)
        reports = crew.collect()
    enters = [t for r in reports for t in r["enters"]]
    inside, reached = check_sections(enters, [t for r in reports for t in r["exits"]], limit,
                                     primitive)
    if primitive != "rlock":  # an RLock lets its owner in again: the stamps judge it
        probe_admits(lock, limit, "lock" if primitive == "lock" else "semaphore")
        check["probe"] = f"{limit} acquires filled it; one more was refused"
    check.update({"sections": len(enters), "limit": limit, "most_inside": inside,
                  "times_at_most": reached})
    if primitive == "rlock":
        check["reentered"] = len(enters)
    seconds = span(reports)
    metrics = {**_op_metrics(seconds, len(enters)), "most_inside": metric(inside, "processes")}
    return seconds, reports, metrics, check


def _event(context, p, workers, variant):
    if workers < 2:
        raise SpecError("lessons sync event needs 2 or more workers (a setter and a waiter)")
    rounds = p["ops"]
    event, woke = context.Event(), context.Barrier(workers, timeout=WAIT_S)
    if variant == "test_event_wakes_early":
        event = EarlyEvent(event)
    start = context.Barrier(workers, timeout=WAIT_S)
    with Crew(context, p["timeout_s"]) as crew:
        crew.start(event_setter, [(start, event, woke, rounds)])
        crew.start(event_waiter, [(start, event, woke, rounds)] * (workers - 1))
        reports = crew.collect()
    latencies = check_event_rounds(reports[0]["set_at"], [r["woke_at"] for r in reports[1:]])
    event.clear()
    if event.wait(PROBE_S):
        raise TrialCheckFailed("a waiter woke on an Event that was not set (the probe after "
                               "the clock)")
    seconds = span(reports)
    metrics = {**_op_metrics(seconds, rounds),
               "wake_us": metric(median(latencies) * 1e6, "us")}
    return seconds, reports, metrics, {"rounds": rounds, "waiters": workers - 1,
                                       "every_waiter_woke_every_round": True}


def _condition(context, p, workers, variant):
    if workers < 2:
        raise SpecError("lessons sync condition needs 2 or more workers (producer, consumers)")
    count = p["ops"]
    condition = LooseCondition() if variant == "test_condition_does_not_lock" \
        else context.Condition()
    items, done = context.RawValue("q", 0), context.RawValue("b", 0)
    start = context.Barrier(workers, timeout=WAIT_S)
    with Crew(context, p["timeout_s"]) as crew:
        crew.start(condition_producer, [(start, condition, items, done, count)])
        crew.start(condition_consumer, [(start, condition, items, done)] * (workers - 1))
        reports = crew.collect()
    check_buffer(reports[0]["produced"], [r["consumed"] for r in reports[1:]], count,
                 CONDITION_CAPACITY)
    if not excluded_elsewhere(context, condition):
        raise TrialCheckFailed("another process acquired a Condition this one held (the probe "
                               "after the clock)")
    seconds = span(reports)
    return seconds, reports, _op_metrics(seconds, count), {
        "items": count, "consumers": workers - 1, "capacity": CONDITION_CAPACITY,
        "consumed_per_consumer": [len(r["consumed"]) for r in reports[1:]]}


def _barrier(context, p, workers, variant):
    if workers < 2:
        raise SpecError("lessons sync barrier needs 2 or more workers (parties)")
    rounds, bound_s = p["ops"], p["barrier_bound_ms"] / 1e3
    barrier = context.Barrier(workers, timeout=WAIT_S)
    if variant == "test_barrier_does_not_wait":
        barrier = OpenBarrier(workers)
    start = context.Barrier(workers, timeout=WAIT_S)
    with Crew(context, p["timeout_s"]) as crew:
        crew.start(barrier_party, [(start, barrier, rounds)] * workers)
        reports = crew.collect()
    spreads = check_barrier_rounds([r["arrived"] for r in reports],
                                   [r["left"] for r in reports], bound_s)
    _probe_barrier(barrier)
    seconds = span(reports)
    metrics = {**_op_metrics(seconds, rounds),
               "release_spread_us": metric(median(spreads) * 1e6, "us"),
               "release_spread_max_us": metric(max(spreads) * 1e6, "us")}
    return seconds, reports, metrics, {"rounds": rounds, "parties": workers}


def _probe_barrier(barrier):
    """After the clock: one party alone must not get through a Barrier of several."""
    try:
        barrier.wait(PROBE_S)
    except threading.BrokenBarrierError:
        return
    raise TrialCheckFailed(f"one party got through a Barrier of {barrier.parties} alone (the "
                           f"probe after the clock)")


def run_sync(context, p, workers, cpus, variant):
    workers = workers or max(4, len(cpus))
    primitive = p["primitive"]
    if primitive in ("lock", "rlock", "semaphore", "semaphore_one"):
        seconds, reports, metrics, check = _sections(context, p, workers, variant)
    elif primitive == "event":
        seconds, reports, metrics, check = _event(context, p, workers, variant)
    elif primitive == "condition":
        seconds, reports, metrics, check = _condition(context, p, workers, variant)
    else:
        seconds, reports, metrics, check = _barrier(context, p, workers, variant)
    check.update({"primitive": primitive, "workers": workers, "ops": p["ops"],
                  "hold_us": p["hold_us"]})
    if primitive == "semaphore":
        check["semaphore_value"] = p["semaphore_value"]
    return {"seconds": seconds, "cpu_seconds": sum(r["cpu_seconds"] for r in reports),
            "metrics": metrics, "check": check}

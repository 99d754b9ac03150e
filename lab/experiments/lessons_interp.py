"""Lesson interpreter_boundary: what crosses between interpreters, and what it costs (3.14+).

  crossing queue             `objects` objects of each kind in KINDS put on a
                             concurrent.interpreters queue here and taken by a second
                             interpreter, which compares each with what it must be (rebuilt
                             there from its index): the shareable kinds (None, bool, int,
                             float, str, bytes, a tuple of those) cross as they are, a list and
                             a dict are pickled (is_shareable says which, recorded). The clock
                             is the puts here plus the gets there, per object
  crossing interpreter_pool  `objects` lists and then `objects` dicts sent to an
                             InterpreterPoolExecutor(workers).map (its pickle fallback), each
                             answered with a checksum; warmed first (every worker started)
  crossing process_pool      the same through a ProcessPoolExecutor(workers) of this start method

Published figure the pools are held against: cpython issue #148072 (2026) found lists and dicts
2-17x slower through InterpreterPoolExecutor than through ProcessPoolExecutor.

A Python before 3.14 has no concurrent.interpreters: the trial refuses in one line (the host
leaves the lesson out there with a note). Test double test_crossing_loses_one: the queue
crossing with one object left out by the sender: the receiving interpreter's check must fail.
Importing this module starts nothing; what the second interpreter runs is module-level.
"""

import platform
import time

from lab.experiments import SpecError, TrialCheckFailed

CROSSINGS = ("queue", "interpreter_pool", "process_pool")
SHAREABLE_KINDS = ("none", "bool", "int", "float", "str", "bytes", "tuple")
PICKLED_KINDS = ("list", "dict")
KINDS = SHAREABLE_KINDS + PICKLED_KINDS
POOL_KINDS = PICKLED_KINDS
OBJECTS = 5_000  # per kind: a queue crossing is ~1-10 us, a pool's ~10-100 us
WARM_OBJECTS = 100


def payload(kind, i):
    """Object `i` of `kind`: the same in every interpreter, so a receiver can rebuild it."""
    if kind == "none":
        return None
    if kind == "bool":
        return i % 2 == 0
    if kind == "int":
        return i
    if kind == "float":
        return i + 0.5
    if kind == "str":
        return f"item {i}"
    if kind == "bytes":
        return b"item %d" % i
    fields = (i, i + 0.5, f"item {i}", b"b")
    if kind == "tuple":
        return fields
    if kind == "list":
        return list(fields)
    return {"i": fields[0], "f": fields[1], "s": fields[2], "b": fields[3]}


def take_all(queue, kind, count):
    """In the receiving interpreter: take `count` objects, each compared with what it must be;
    returns (taken, index of the first wrong one or -1, seconds of the gets)."""
    from concurrent.interpreters import QueueEmpty
    wrong = -1
    taken = 0
    start = time.perf_counter()
    for i in range(count):
        try:
            got = queue.get_nowait()  # everything was put before: no wait, no 10 ms poll
        except QueueEmpty:
            break
        taken += 1
        if wrong < 0 and got != payload(kind, i):
            wrong = i
    return taken, wrong, time.perf_counter() - start


def checksum(obj):
    """A pool task: what a list or a dict of payload() adds up to."""
    fields = list(obj.values()) if isinstance(obj, dict) else obj
    return fields[0] + int(fields[1]) + len(fields[2]) + len(fields[3])


def expected_checksum(kind, count):
    return sum(checksum(payload(kind, i)) for i in range(count))


def _interpreters():
    try:
        from concurrent import interpreters
    except ImportError:
        raise SpecError(f"lesson interpreter_boundary needs Python 3.14 or later "
                        f"(concurrent.interpreters); this is Python "
                        f"{platform.python_version()}") from None
    return interpreters


def _queue_crossing(interpreters, count, lose_one):
    receiver = interpreters.create()
    metrics, shareable = {}, {}
    total = 0.0
    try:
        channel = interpreters.create_queue()
        receiver.call(take_all, channel, "int", 0)  # imports this module there, untimed
        for kind in KINDS:
            for i in range(WARM_OBJECTS):
                channel.put(payload(kind, i))
            receiver.call(take_all, channel, kind, WARM_OBJECTS)
            objects = [payload(kind, i) for i in range(count)]
            if lose_one:
                del objects[count // 2]
            start = time.perf_counter()
            for obj in objects:
                channel.put(obj)
            put_s = time.perf_counter() - start
            taken, wrong, get_s = receiver.call(take_all, channel, kind, count)
            if taken != count or wrong >= 0:
                raise TrialCheckFailed(f"{kind}: the second interpreter took {taken} of {count} "
                                       f"objects" + (f", object {wrong} not what was put"
                                                     if wrong >= 0 else ""))
            metrics[f"queue_{kind}_us"] = {"value": (put_s + get_s) / count * 1e6, "unit": "us"}
            shareable[kind] = bool(interpreters.is_shareable(payload(kind, 1)))
            total += put_s + get_s
    finally:
        receiver.close()
    return total, metrics, {
        "shareable_kinds": ", ".join(k for k, ok in shareable.items() if ok),
        "pickled_kinds": ", ".join(k for k, ok in shareable.items() if not ok),
        "objects_per_kind": count, "crossed_intact": True}


def _pool_crossing(executor, count, workers):
    metrics = {}
    total = 0.0
    with executor as pool:
        warmed = list(pool.map(checksum, [payload("list", i) for i in range(workers * 4)]))
        if len(warmed) != workers * 4:
            raise TrialCheckFailed("the pool's warm-up lost a task")
        for kind in POOL_KINDS:
            objects = [payload(kind, i) for i in range(count)]
            start = time.perf_counter()
            got = sum(pool.map(checksum, objects))
            seconds = time.perf_counter() - start
            if got != expected_checksum(kind, count):
                raise TrialCheckFailed(f"{kind}: the pool's answers sum to {got}, expected "
                                       f"{expected_checksum(kind, count)}")
            metrics[f"pool_{kind}_us"] = {"value": seconds / count * 1e6, "unit": "us"}
            total += seconds
    return total, metrics, {"objects_per_kind": count, "crossed_intact": True,
                            "workers": workers}


def run_interpreter_boundary(context, p, workers, cpus, variant):
    interpreters = _interpreters()
    count, crossing = p["objects"], p["crossing"]
    cpu = time.process_time()
    if crossing == "queue":
        seconds, metrics, check = _queue_crossing(interpreters, count,
                                                  variant == "test_crossing_loses_one")
    else:
        workers = workers or len(cpus)
        if crossing == "interpreter_pool":
            from concurrent.futures import InterpreterPoolExecutor
            executor = InterpreterPoolExecutor(workers)
        else:
            from concurrent.futures import ProcessPoolExecutor
            executor = ProcessPoolExecutor(workers, mp_context=context)
        seconds, metrics, check = _pool_crossing(executor, count, workers)
    check["crossing"] = crossing
    return {"seconds": seconds, "cpu_seconds": time.process_time() - cpu, "metrics": metrics,
            "check": check}

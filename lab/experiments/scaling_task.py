"""IN THE TRIAL (standard library only): the task a scaling trial runs, and its chunk record.

The seam between the work and the executors (lab.experiments.scaling_processes and
scaling_threads): an executor is given a `Task` (a work function and its check) and the units of
work of each chunk; it calls `run_chunk(task.work, units)` in its workers and hands the chunk
records back for `task.check(chunks, asked)`. Another task (a user's function) is another `Task`:
the executors do not change. A work function must be a module-level function (pool processes
and interpreters receive it pickled by reference) returning something picklable.

The tutorial's task: `units` loops of math.sin(40) + math.cos(40), returning their sum. Adding
one fixed float n times in order gives one exact float, which `exact_sum(n)` computes in a few
dozen steps (see there); each chunk's sum must equal it bit for bit (its IEEE 754 bits, an
integer, are the chunk's checksum), so one iteration skipped or repeated anywhere, in any worker,
fails the trial (each iteration moves the sum by at least one ulp up to ~10^15 iterations), and
so does a wrong value that moves the sum. The check costs nothing in the loop: the loop already
adds each iteration's value. IEEE 754 doubles with round-to-nearest are assumed (every CPython on
x86-64 and aarch64).

A chunk record: the work's result, who ran it (pid, thread ident, interpreter id), whether the
GIL was enabled there and whether the build is free-threaded (read in the worker: an extension
module can switch the GIL back on in one process), perf_counter stamps at the start and end of
the work, and the CPU seconds of the running thread between them (thread_time: threads and
interpreters share one process, whose process_time would count the others' work; a pool
process's single thread gives the same figure as its process_time).
"""

import functools
import math
import os
import struct
import threading
import time
from typing import Callable, NamedTuple

from lab.experiments import TrialCheckFailed
from lab.experiments.gil import free_threaded, gil_enabled

UNIT_VALUE = math.sin(40) + math.cos(40)  # what one iteration adds to the sum
MOST_WORK = 10**12  # units a trial may be given (--work's bound, and --target's calibration's)
_BITS = struct.Struct("<Q")
_DOUBLE = struct.Struct("<d")


class Task(NamedTuple):
    """What the executors run: `work(units) -> result` in a worker, `check(chunks, asked) ->
    dict` on the chunk records (raises TrialCheckFailed on a wrong answer)."""
    name: str
    work: Callable
    check: Callable


# ---------------------------------------------------------------------------------------------
# The chunk record, made in the worker


_interpreters = None  # concurrent.interpreters, looked up on first use (False: none here)


def interpreter_id():
    """This interpreter's id (0: the main one, or a Python without concurrent.interpreters).
    Imported on first use, not with this module (the lessons' spawned children import it): an
    import statement waits for a module another thread is still making, sys.modules does not."""
    global _interpreters
    if _interpreters is None:
        try:
            from concurrent import interpreters as module
        except ImportError:  # before Python 3.14
            module = False
        _interpreters = module
    return int(_interpreters.get_current().id) if _interpreters else 0


def echo(value):
    """The smallest task: what a task's trip through an executor costs without its work."""
    return value


def run_chunk(work, units):
    """Run `work(units)` in this worker and return its chunk record (see the module's words)."""
    t_start = time.perf_counter()
    cpu_start = time.thread_time()
    result = work(units)
    cpu_seconds = time.thread_time() - cpu_start  # inside the stamps: never more than them
    t_end = time.perf_counter()
    return {"result": result, "pid": os.getpid(), "thread": threading.get_ident(),
            "interpreter": interpreter_id(), "gil_enabled": gil_enabled(),
            "free_threaded": free_threaded(), "cpu_seconds": cpu_seconds,
            "t_start": t_start, "t_end": t_end}


def warm_and_wait(work, units, arrive, release, timeout_s, who):
    """One worker's warm-up, as the barrier-like scheme of the thread and interpreter pools:
    say `who` arrived (its id on `arrive`), wait until the trial has seen every worker arrive
    (a token on `release`), so no worker can take two warm-up tasks, then run a small piece of
    the work. Returns the id. `who` is "thread" or "interpreter"."""
    identity = threading.get_ident() if who == "thread" else interpreter_id()
    arrive.put(identity)
    release.get(timeout=timeout_s)
    work(units)
    return identity


# ---------------------------------------------------------------------------------------------
# The tutorial's task and its exact check


def tutorial_sum(iterations):
    """The tutorial's work: `iterations` loops of math.sin(40) + math.cos(40); their sum."""
    total = 0.0
    for _ in range(iterations):
        total += math.sin(40) + math.cos(40)
    return total


def sum_skipping_one(iterations):
    """Test double: tutorial_sum, but leave out the middle iteration (one unit of work lost)."""
    total = 0.0
    skipped = iterations // 2
    for i in range(iterations):
        if i == skipped:
            continue
        total += math.sin(40) + math.cos(40)
    return total


def spin(iterations):
    """The tutorial's work in this thread, as a chunk record (`result` is the sum)."""
    return run_chunk(tutorial_sum, iterations)


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
        if float_bits(chunk["result"]) != float_bits(expected):
            raise TrialCheckFailed(
                f"chunk {index} (pid {chunk['pid']}) summed {chunk['result']!r}, but "
                f"{iterations} iterations sum to {expected!r}: "
                f"about {round(chunk['result'] / UNIT_VALUE)} iterations ran, not {iterations}")
    return {"iterations": sum(asked), "chunks": len(asked),
            "checksum": "every chunk's sum equals exact_sum(its iterations) bit for bit"}


TUTORIAL = Task("the tutorial's sin+cos loop", tutorial_sum, check_chunks)
SKIPPING_ONE = Task("the tutorial's loop, one iteration left out per chunk (test double)",
                    sum_skipping_one, check_chunks)

"""Lessons: the rest of the tutorial (seed/) measured, one thing per trial.

The tutorial times `Process()` alone and calls it the cost of a process, says a Pool saves start
time, shares state through a Manager, shows Lock, RLock, Semaphore, Event, Condition and Barrier
by printing, kills and daemonizes processes, and never shows the GIL. Each variant measures one
of those claims and checks the behaviour it relies on; a wrong answer is a failed trial.

Variants (`params` pick the item inside a variant; `workers` and `start_method` come from the
spec, None = the variant's default and the Python's default start method, recorded in
check["start_method"]):
  start_cost            start()+join() of one argument-free Process at a time, `repeats` times,
                        against the Process() constructor alone (`constructors` times; the
                        tutorial's "12.2 us") and against a fresh Pool(1)'s first result
                        (`pools` times). Each child exits with START_PROOF (42) from its
                        target, read after the clock: nothing is handed to it (a shared array
                        would go through the resource sharer under forkserver and spawn)
  pool_vs_process       `runner`: pool (`tasks` short tasks of `task_iterations` loops through
                        one reused Pool(workers), `chunksize` 1.. or "auto"), process_per_task
                        (a Process per task, at most `workers` alive), and the tutorial's
                        reconstructions, timed as it timed them (creation to join):
                        seed_one_process (6 tasks in this process), seed_two_processes (two
                        Processes, one task each: the tutorial's 2 tasks, not 6), seed_pool8
                        (Pool(workers or 8).map over 6 tasks). `seed_iterations` loops per task
  shared_state          `state`: manager_dict (Manager().dict() under a Lock), value_locked
                        (Value under get_lock()), value_unlocked (Value, += without get_lock():
                        lost updates are the lesson, counted, never a failure), array_locked
                        (Array under get_lock(), `array_slots` counters), shared_memory
                        (SharedMemory counter under a Lock), queue and pipe (the tutorial's
                        alternatives: each increment sent through a Queue or a Pipe per
                        worker to a holder thread that adds them up). `workers` x
                        `increments` each,
                        released together by a Barrier; locked ones must be exact
  sync                  `primitive`: lock, rlock, semaphore (Semaphore(`semaphore_value`)),
                        semaphore_one (Semaphore(1): the Lock's contention),
                        event, condition, barrier. Cost per operation across `workers`
                        processes, behaviour checked from perf_counter stamps taken inside:
                        a Lock's sections never overlap, a Semaphore never admits more than its
                        value, an RLock re-enters and refuses a release by another process, an
                        Event wakes every waiter and none before set(), a Condition's consumers
                        never take what was not produced, a Barrier lets nobody out before the
                        last arrives and releases all within `barrier_bound_ms`
  lifecycle             `case`: terminate (exit code must be -15; `repeats` times), daemon (a
                        parent exits normally: its daemon child must be gone), daemon_parent_killed
                        (the parent is SIGKILLed: does its daemon child survive? a fact),
                        kill_mid_put (a process SIGKILLed while its Queue feeder writes
                        `put_items` items of `item_bytes`: can the queue still be read and used?
                        facts, never a failure)
  threads_vs_processes  `runner`: serial, threads, processes, interpreters (3.14+);
                        `iterations` loops of the tutorial's task split over `workers` (the
                        GIL lesson)
  queue_in_process      `queue_kind`: thread_queue (queue.Queue) or process_queue
                        (multiprocessing.Queue), `messages` small ints put then got in one process
  interpreter_boundary  `crossing`: queue (each kind of object through an interpreters queue
                        to a second interpreter: shareable ones as they are, lists and dicts
                        pickled), interpreter_pool, process_pool (lists and dicts through
                        InterpreterPoolExecutor / ProcessPoolExecutor); `objects` per kind;
                        Python 3.14+ (lab.experiments.lessons_interp)

Test doubles (in VARIANTS, not in USER_VARIANTS; their trials must fail with TrialCheckFailed):
  test_value_noop_lock         shared_state value_locked with a lock that does nothing
  test_lock_does_not_lock      sync lock with a lock that does nothing
  test_semaphore_admits_three  sync semaphore that admits semaphore_value + 1
  test_event_wakes_early       sync event whose wait() never waits
  test_condition_does_not_lock sync condition that neither locks nor is notified
  test_barrier_does_not_wait   sync barrier that lets every party through at once
  test_crossing_loses_one      interpreter_boundary queue whose sender leaves one object out
They run at the real trials' settings (hold 0 unless given, the real counts and workers): the
stamps catch them, and a probe after the clock (one acquire more than the limit, an Event not
set, a Condition held by another process, a Barrier with one party) catches them every time.

Params (`PARAMS` holds the defaults; None = the variant's default):
  repeats, constructors, pools          start_cost counts (repeats also: lifecycle terminate)
  runner, tasks, task_iterations, chunksize, seed_iterations      pool_vs_process
  state, increments, array_slots        shared_state (increments per worker; None:
                                        STATE_INCREMENTS)
  primitive, ops, semaphore_value, barrier_bound_ms                sync (ops: per worker for
                                        lock/rlock/semaphore, rounds for event/barrier, items
                                        for condition; None: PRIMITIVE_OPS)
  hold_us                               shared_state and sync: sleep inside each critical
                                        section (0: none)
  case, item_bytes, put_items           lifecycle
  runner, iterations                    threads_vs_processes
  queue_kind, messages                  queue_in_process (None: QUEUE_MESSAGES)
  crossing, objects                     interpreter_boundary
  interpreter_starts                    start_cost: interpreters started (3.14+)
  timeout_s                             give up (a failed trial) after this long

Metrics (name: unit):
  start_cost            constructor_us, start_join_us, start_join_p90_us, first_start_join_us
                        (the untimed first start: a fork server starts there),
                        pool_first_task_us, start_join_over_constructor (ratio),
                        thread_start_join_us, interpreter_start_us (3.14+: create, call, close)
  pool_vs_process       per_task_us, tasks_per_second, task_cpu_us, workers_used;
                        pool_start_us (pool, seed_pool8)
  shared_state          increments_per_second, increment_us, lost_updates
  sync                  op_us, ops_per_second; wake_us (event), release_spread_us and
                        release_spread_max_us (barrier), most_inside (lock, rlock, semaphore)
  lifecycle             terminate_join_us, alive_after_terminate (terminate);
                        daemon_dead_at_parent_exit (daemon); daemon_survived (daemon_parent_killed); items_put,
                        items_intact, get_blocked, put_get_ok (kill_mid_put)
  threads_vs_processes  iterations_per_second, workers_used
  queue_in_process      put_get_us, items_per_second
  interpreter_boundary  queue_<kind>_us (every kind), pool_list_us, pool_dict_us: per object
Units: *_us "us", *_ms "ms", *_per_second "1/s", start_join_over_constructor "ratio", counts in
what they count ("processes", "threads", "increments", "items"), 0/1 facts "bool".

`workers` None: pool and process_per_task Pool()'s default size, seed_pool8 8 (seed_two_processes
is always 2, seed_one_process 1); shared_state max(2, CPUs); sync max(4, CPUs);
threads_vs_processes the CPUs of the affinity; unused elsewhere.

seconds (perf_counter), the timed section: start_cost the sum of the start()+join() times;
pool the map over a warmed pool; process_per_task first start to last join; seed_* the
tutorial's own clock; shared_state, sync and threads_vs_processes the workers' own stamps, from
the first start after the release to the last end; lifecycle terminate the sum of the
terminate()+join() times, daemon cases end to end, kill_mid_put the observer's start to its
verdict; queue_in_process all puts then all gets. cpu_seconds: the CPU time of the processes
that worked in it, where they report it. Importing this module starts nothing.
"""

import importlib
import multiprocessing
import os

from lab.experiments import SpecError, choice_param, number_param, whole_param
from lab.experiments.lessons_interp import CROSSINGS, OBJECTS as CROSSING_OBJECTS
from lab.experiments.lessons_kit import SEED_POOL_WORKERS, SEED_TASKS  # noqa: F401 (part of the shape)

NAME = "lessons"
USER_VARIANTS = ("start_cost", "pool_vs_process", "shared_state", "sync", "lifecycle",
                 "threads_vs_processes", "queue_in_process", "interpreter_boundary")
# The test doubles, one map: variant -> (the lesson it breaks, the item it breaks there).
DOUBLES = {"test_value_noop_lock": ("shared_state", "value_locked"),
           "test_lock_does_not_lock": ("sync", "lock"),
           "test_semaphore_admits_three": ("sync", "semaphore"),
           "test_event_wakes_early": ("sync", "event"),
           "test_condition_does_not_lock": ("sync", "condition"),
           "test_barrier_does_not_wait": ("sync", "barrier"),
           "test_crossing_loses_one": ("interpreter_boundary", "queue")}
TEST_DOUBLES = tuple(DOUBLES)
VARIANTS = USER_VARIANTS + TEST_DOUBLES
DOUBLE_OF = {variant: lesson for variant, (lesson, _) in DOUBLES.items()}
DOUBLE_PRIMITIVE = {variant: item for variant, (lesson, item) in DOUBLES.items()
                    if lesson == "sync"}
DOUBLE_HOLD_US = 200  # a hold a test may ask for, to make a race certain (doubles default to 0)

RUNNERS = {"pool_vs_process": ("pool", "process_per_task", "seed_one_process",
                               "seed_two_processes", "seed_pool8"),
           "threads_vs_processes": ("serial", "threads", "processes", "interpreters")}
DEFAULT_RUNNER = {"pool_vs_process": "pool", "threads_vs_processes": "threads"}
STATES = ("manager_dict", "value_locked", "value_unlocked", "array_locked", "shared_memory",
          "queue", "pipe")
PRIMITIVES = ("lock", "rlock", "semaphore", "semaphore_one", "event", "condition", "barrier")
# Defaults sized so a trial's timed section lasts >= ~0.2 s on 2 CPUs (fork, 3.11).
PRIMITIVE_OPS = {"lock": 100_000, "rlock": 50_000, "semaphore": 100_000,
                 "semaphore_one": 100_000, "event": 1_000,
                 "condition": 4_000, "barrier": 2_000}
STATE_INCREMENTS = {"manager_dict": 1_000, "value_locked": 150_000, "value_unlocked": 200_000,
                    "array_locked": 100_000, "shared_memory": 200_000, "queue": 10_000,
                    "pipe": 20_000}
QUEUE_MESSAGES = {"thread_queue": 100_000, "process_queue": 20_000}
CASES = ("terminate", "daemon", "daemon_parent_killed", "kill_mid_put")
QUEUE_KINDS = ("thread_queue", "process_queue")
MiB = 1 << 20

PARAMS = {
    "repeats": 100,
    "interpreter_starts": 10,
    "constructors": 20_000,
    "pools": 10,
    "runner": None,
    "tasks": 1000,
    "task_iterations": 4000,
    "chunksize": 1,
    "seed_iterations": 1_000_000,
    "state": "value_locked",
    "increments": None,
    "array_slots": 8,
    "primitive": "lock",
    "ops": None,
    "semaphore_value": 2,
    "barrier_bound_ms": 1000.0,
    "hold_us": 0.0,
    "case": "terminate",
    "item_bytes": MiB,
    "put_items": 4,
    "iterations": 3_000_000,
    "queue_kind": "process_queue",
    "messages": None,
    "crossing": "queue",
    "objects": CROSSING_OBJECTS,
    "timeout_s": 120.0,
}
LIMITS = {  # whole-number params: (low, high)
    "repeats": (1, 100_000), "interpreter_starts": (1, 10_000), "constructors": (1, 10_000_000), "pools": (1, 10_000),
    "tasks": (1, 10_000_000), "task_iterations": (1, 10 ** 9), "seed_iterations": (1, 10 ** 9),
    "increments": (1, 10 ** 9), "array_slots": (1, 1 << 20), "ops": (1, 10 ** 9),
    "semaphore_value": (1, 1000), "item_bytes": (1, 64 * MiB), "put_items": (1, 10 ** 7),
    "iterations": (1, 10 ** 11), "messages": (1, 10 ** 9), "objects": (1, 10 ** 7),
}


# ---------------------------------------------------------------------------------------------
# Params


def _whole(p, key):
    return whole_param("lessons", key, p[key], *LIMITS[key])


def _number(p, key, low, high):
    return float(number_param("lessons", key, p[key], low, high))


def _choice(p, key, choices):
    return choice_param("lessons", key, p[key], choices)


def normalize(variant, params):
    """The params with defaults filled in, or SpecError (one line) naming what is wrong."""
    if variant not in VARIANTS:
        raise SpecError(f"unknown lessons variant {variant!r}; known: {', '.join(VARIANTS)}")
    if not isinstance(params, dict):
        raise SpecError(f"lessons params must be a mapping, got {type(params).__name__}")
    unknown = sorted(set(params) - set(PARAMS))
    if unknown:
        raise SpecError(f"unknown lessons params {', '.join(unknown)}; known: "
                        f"{', '.join(PARAMS)}")
    p = dict(PARAMS)
    p.update({key: value for key, value in params.items() if value is not None})
    for key in LIMITS:
        if p[key] is not None:
            p[key] = _whole(p, key)
    family = DOUBLE_OF.get(variant, variant)
    if p["runner"] is None:
        p["runner"] = DEFAULT_RUNNER.get(family)
    if family in RUNNERS:
        _choice(p, "runner", RUNNERS[family])
    if p["chunksize"] != "auto":
        p["chunksize"] = _chunksize(p["chunksize"])
    _choice(p, "state", STATES)
    _choice(p, "primitive", PRIMITIVES)
    _choice(p, "case", CASES)
    _choice(p, "queue_kind", QUEUE_KINDS)
    _choice(p, "crossing", CROSSINGS)
    p["barrier_bound_ms"] = _number(p, "barrier_bound_ms", 0.001, 600_000)
    p["hold_us"] = _number(p, "hold_us", 0, 1_000_000)
    p["timeout_s"] = _number(p, "timeout_s", 0.1, 86_400)
    _fix_double(variant, p)
    if p["ops"] is None:
        p["ops"] = PRIMITIVE_OPS[p["primitive"]]
    if p["increments"] is None:
        p["increments"] = STATE_INCREMENTS[p["state"]]
    if p["messages"] is None:
        p["messages"] = QUEUE_MESSAGES[p["queue_kind"]]
    return p


def _chunksize(value):
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10 ** 7:
        raise SpecError(f"lessons param chunksize must be a whole number in 1 .. 10000000 or "
                        f"'auto', got {value!r}")
    return value


DOUBLE_ITEM_PARAM = {"shared_state": "state", "sync": "primitive",
                     "interpreter_boundary": "crossing"}


def _fix_double(variant, p):
    """A test double measures one fixed thing, its item, at the real trial's settings: the
    same hold (0 unless given), counts and workers, so the checks that catch it are the ones
    that guard the real trials."""
    if variant in DOUBLES:
        lesson, item = DOUBLES[variant]
        p[DOUBLE_ITEM_PARAM[lesson]] = item
    if variant == "test_semaphore_admits_three":
        p["semaphore_value"] = 2


# ---------------------------------------------------------------------------------------------
# The trial


def run_trial(spec):
    """Run one lessons trial (see the module docstring); returns the result dict."""
    variant = spec.get("variant")
    p = normalize(variant, spec.get("params") or {})
    context = multiprocessing.get_context(spec.get("start_method") or None)
    workers = spec.get("workers")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise SpecError(f"lessons workers must be a whole number >= 1 or null, got {workers!r}")
    cpus = sorted(os.sched_getaffinity(0))
    family = DOUBLE_OF.get(variant, variant)
    outcome = _runner(family)(context, p, workers, cpus, variant)
    outcome["check"].update({"variant": variant, "start_method": context.get_start_method(),
                             "affinity": cpus})
    return outcome


# lesson -> the module of its trial (lab/experiments/<module>.py holds run_<lesson>)
TRIAL_MODULES = {"start_cost": "lessons_start", "pool_vs_process": "lessons_start",
                 "shared_state": "lessons_state", "sync": "lessons_sync",
                 "lifecycle": "lessons_life", "threads_vs_processes": "lessons_gil",
                 "queue_in_process": "lessons_gil", "interpreter_boundary": "lessons_interp"}


def _runner(family):
    """The function running `family`, imported only when a trial needs it."""
    module = importlib.import_module(f"lab.experiments.{TRIAL_MODULES[family]}")
    return getattr(module, f"run_{family}")

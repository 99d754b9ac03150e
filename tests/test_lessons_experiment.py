"""The lessons experiment through the lab's real entry point, as the local backend runs a trial:
`python -m lab.experiments '<spec>'` pinned to CPUs 0 and 1, the last stdout line parsed.

Every behaviour check is shown failing on a deliberately broken variant (the test doubles) or on
forged broken stamps; counts are sized down so the file runs in well under a minute on 2 busy
CPUs. Nothing here asserts a wall-clock time: figures are benchmarks, not tests.
"""

import json
import multiprocessing
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from lab.experiments import EXPERIMENTS, SpecError, TrialCheckFailed, lessons
from lab.experiments import lessons_kit, lessons_life, lessons_start, lessons_sync

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CPUS = [0, 1]
TRIAL_TIMEOUT_S = 120


def trial(variant, params=None, start_method="fork", workers=None, cpus=CPUS):
    """One trial through `python -m lab.experiments`, pinned to `cpus`: (exit status, record)."""
    spec = {"experiment": "lessons", "variant": variant, "params": params or {},
            "workers": workers, "start_method": start_method, "expect_affinity": cpus}
    done = subprocess.run([sys.executable, "-m", "lab.experiments", json.dumps(spec)],
                          cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=TRIAL_TIMEOUT_S,
                          preexec_fn=lambda: os.sched_setaffinity(0, set(cpus)))
    lines = done.stdout.strip().splitlines()
    assert lines, f"no result line; stderr:\n{done.stderr[-2000:]}"
    return done.returncode, json.loads(lines[-1])


def passed(variant, params=None, start_method="fork", workers=None):
    code, record = trial(variant, params, start_method, workers)
    assert code == 0 and record["ok"], record.get("error")
    assert record["seconds"] > 0
    for name, value in record["metrics"].items():
        assert set(value) == {"value", "unit"} and value["unit"], name
    return record


def failed_check(variant, params=None, start_method="fork", workers=None, cpus=CPUS):
    code, record = trial(variant, params, start_method, workers, cpus)
    assert code == 1 and record["ok"] is False
    assert record["error"].startswith("check failed: "), record["error"]
    return record["error"]


def value(record, name):
    return record["metrics"][name]["value"]


# ---------------------------------------------------------------------------------------------
# Shape


def test_the_lab_knows_the_lessons_experiment():
    assert EXPERIMENTS.get("lessons") == "lab.experiments.lessons", \
        "register lessons in lab.experiments.EXPERIMENTS"


def test_the_module_has_the_experiment_shape_and_importing_starts_nothing():
    threads = threading.active_count()
    code = ("import multiprocessing, threading; import lab.experiments.lessons as l, "
            "lab.experiments.lessons_kit, lab.experiments.lessons_start, "
            "lab.experiments.lessons_state, lab.experiments.lessons_sync, "
            "lab.experiments.lessons_life, lab.experiments.lessons_gil; "
            "print(len(multiprocessing.active_children()), threading.active_count())")
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["0", "1"]
    assert threading.active_count() == threads
    assert lessons.NAME == "lessons"
    assert lessons.VARIANTS == lessons.USER_VARIANTS + lessons.TEST_DOUBLES
    assert not set(lessons.USER_VARIANTS) & set(lessons.TEST_DOUBLES)
    assert all(v.startswith("test_") for v in lessons.TEST_DOUBLES)
    defaults = lessons.normalize("sync", {})
    assert set(defaults) == set(lessons.PARAMS)
    assert defaults["ops"] == lessons.PRIMITIVE_OPS["lock"]


@pytest.mark.parametrize("variant, params, words", [
    ("sync", {"primitve": "lock"}, "unknown lessons params primitve"),
    ("sync", {"primitive": "mutex"}, "primitive='mutex' is not one of"),
    ("start_cost", {"repeats": 0}, "repeats must be a whole number"),
    ("start_cost", {"repeats": True}, "repeats must be a whole number"),
    ("pool_vs_process", {"runner": "threads"}, "runner='threads' is not one of"),
    ("pool_vs_process", {"chunksize": 0}, "chunksize must be"),
    ("shared_state", {"hold_us": -1}, "hold_us must be a number"),
    ("lifecycle", {"case": "zombie"}, "case='zombie'"),
    ("nothing", {}, "unknown lessons variant"),
])
def test_bad_params_are_refused_in_one_line(variant, params, words):
    with pytest.raises(SpecError) as refused:
        lessons.normalize(variant, params)
    assert words in str(refused.value) and "\n" not in str(refused.value)


def test_a_bad_spec_exits_2_before_anything_runs():
    code, record = trial("sync", {"primitive": "mutex"})
    assert code == 2 and record["error"].startswith("bad trial spec")


# ---------------------------------------------------------------------------------------------
# start_cost and pool_vs_process


def test_start_cost_every_child_ran_its_target():
    """The children take no argument (a shared array would be handed over by the resource
    sharer under forkserver and spawn, inside the clock): the proof that each ran its target
    is its exit code, read after the clock. (It used to write its pid into a RawArray.)"""
    record = passed("start_cost", {"repeats": 4, "constructors": 50, "pools": 2}, "forkserver")
    check = record["check"]
    assert check["start_method"] == "forkserver"
    assert check["processes_ran"] == check["ran_target"] == 5
    assert check["exit_codes"] == f"all {lessons_start.START_PROOF}"
    assert check["arguments"].startswith("none to hand over")
    assert check["affinity"] == CPUS
    for name in ("constructor_us", "start_join_us", "pool_first_task_us",
                 "first_start_join_us", "start_join_over_constructor"):
        assert value(record, name) > 0


def test_the_default_start_method_is_recorded_as_resolved():
    record = passed("start_cost", {"repeats": 1, "constructors": 1, "pools": 1}, None)
    default = subprocess.run([sys.executable, "-c", "import multiprocessing as m; "
                              "print(m.get_start_method())"], capture_output=True, text=True,
                             check=True).stdout.strip()
    assert record["check"]["start_method"] == default


@pytest.mark.parametrize("runner, params, start_method, tasks", [
    ("pool", {"tasks": 40, "task_iterations": 200}, "fork", 40),
    ("pool", {"tasks": 40, "task_iterations": 200, "chunksize": "auto"}, "forkserver", 40),
    ("process_per_task", {"tasks": 4, "task_iterations": 200}, "spawn", 4),
    ("seed_one_process", {"seed_iterations": 2000}, "fork", 6),
    ("seed_two_processes", {"seed_iterations": 2000}, "fork", 2),
    ("seed_pool8", {"seed_iterations": 2000}, "fork", 6),
])
def test_pool_vs_process_gets_every_task_back_exactly_once(runner, params, start_method, tasks):
    record = passed("pool_vs_process", {"runner": runner, **params}, start_method)
    check = record["check"]
    iterations = params.get("task_iterations") or params["seed_iterations"]
    assert check["tasks"] == tasks and check["every_task_once"]
    assert check["checksum"] == iterations * tasks * (tasks + 1) // 2
    assert value(record, "per_task_us") > 0
    if runner == "pool":
        assert check["chunksize"] == (5 if "chunksize" in params else 1)  # auto: 40 / (4 x 2)
    if runner == "seed_pool8":
        assert value(record, "workers_used") == 8


def test_the_task_check_catches_a_lost_a_repeated_and_a_short_task():
    answers = [lessons_kit.task(i, 10) for i in range(3)]
    assert lessons_kit.check_tasks(answers, 3, 10) == 10 * 6
    with pytest.raises(TrialCheckFailed, match=r"missing \[2\]"):
        lessons_kit.check_tasks(answers[:2], 3, 10)  # the last one lost
    with pytest.raises(TrialCheckFailed):
        lessons_kit.check_tasks(answers[:2] + answers[1:2], 3, 10)
    short = (2, lessons_kit.loops_done(10, lessons_kit.spin(9)[1]), 0.0, 0)
    with pytest.raises(TrialCheckFailed, match="wrong number of loops"):
        lessons_kit.check_tasks(answers[:2] + [short], 3, 10)


# ---------------------------------------------------------------------------------------------
# shared_state


@pytest.mark.parametrize("state, start_method", [
    ("manager_dict", "forkserver"), ("value_locked", "fork"), ("array_locked", "spawn"),
    ("shared_memory", "fork"), ("queue", "spawn"), ("pipe", "forkserver"), ("pipe", "fork"),
])
def test_locked_shared_state_is_exact(state, start_method):
    record = passed("shared_state", {"state": state, "increments": 300}, start_method, 2)
    assert record["check"]["final"] == record["check"]["expected"] == 600
    assert value(record, "lost_updates") == 0
    assert "lesson" not in record["check"]


def test_an_unlocked_value_loses_updates_and_that_is_the_lesson_not_a_failure():
    record = passed("shared_state", {"state": "value_unlocked", "increments": 200,
                                     "hold_us": 100}, "fork", 2)
    assert value(record, "lost_updates") > 0
    assert record["check"]["lesson"] == "lost updates seen"


def test_a_value_whose_lock_does_nothing_fails_and_the_real_lock_passes_the_same_race():
    params = {"increments": 200, "hold_us": lessons.DOUBLE_HOLD_US}
    assert "lost under its lock" in failed_check("test_value_noop_lock", params, "fork", 2)
    record = passed("shared_state", {"state": "value_locked", **params}, "fork", 2)
    assert record["check"]["final"] == 400


# ---------------------------------------------------------------------------------------------
# sync


@pytest.mark.parametrize("primitive, start_method", [
    ("lock", "fork"), ("rlock", "spawn"), ("semaphore", "forkserver"), ("event", "fork"),
    ("condition", "fork"), ("barrier", "fork"), ("semaphore_one", "fork"),
])
def test_each_primitive_behaves_as_the_tutorial_says(primitive, start_method):
    record = passed("sync", {"primitive": primitive, "ops": 100}, start_method, 3)
    check = record["check"]
    assert value(record, "op_us") > 0
    if primitive in ("lock", "rlock", "semaphore_one"):
        assert check["most_inside"] == 1 and check["sections"] == 300
    if primitive == "lock":
        assert check["release_by_other_process"] == "allowed"
    if primitive == "rlock":
        assert check["reentered"] == 300
        assert check["release_by_other_process"].startswith("refused: AssertionError")
    if primitive == "semaphore":
        assert check["most_inside"] <= 2
    if primitive == "event":
        assert check["every_waiter_woke_every_round"] and check["waiters"] == 2
    if primitive == "condition":
        assert sum(check["consumed_per_consumer"]) == 100


def test_a_lock_that_does_not_lock_fails_and_a_real_lock_holds_the_same_sections():
    params = {"ops": 30, "hold_us": lessons.DOUBLE_HOLD_US}
    assert "inside a lock admitting 1" in failed_check("test_lock_does_not_lock", params,
                                                       "fork", 3)
    assert passed("sync", {"primitive": "lock", **params}, "fork", 3)["check"]["most_inside"] == 1


def test_a_semaphore_admitting_three_fails_and_semaphore_2_never_admits_a_third():
    params = {"ops": 30, "hold_us": lessons.DOUBLE_HOLD_US}
    assert "3 processes were inside a semaphore admitting 2" in failed_check(
        "test_semaphore_admits_three", params, "spawn", 4)
    record = passed("sync", {"primitive": "semaphore", **params}, "fork", 4)
    assert record["check"]["most_inside"] == 2  # the hold makes two at once certain


DOUBLES_CAUGHT = {  # the double -> what its failure says (the stamps' words, or the probe's)
    "test_value_noop_lock": ("lost under its lock", "the Value's lock"),
    "test_lock_does_not_lock": ("inside a lock admitting 1",),
    "test_semaphore_admits_three": ("inside a semaphore admitting 2",),
    "test_event_wakes_early": ("before", "not set"),
    "test_condition_does_not_lock": ("buffer", "consumed", "Condition"),
    "test_barrier_does_not_wait": ("before the last", "alone"),
}


@pytest.mark.parametrize("cpus", [[0], [0, 1]], ids=["1 CPU", "2 CPUs"])
@pytest.mark.parametrize("double", sorted(DOUBLES_CAUGHT))
def test_every_double_is_caught_at_the_real_trials_settings(double, cpus):
    """Hold 0, the real counts (normalize's defaults) and the family's workers (2 for shared
    state, 4 for sync), on 1 CPU and on 2: the settings the real trials run at."""
    assert lessons.normalize(double, {})["hold_us"] == 0
    workers = 2 if lessons.DOUBLE_OF[double] == "shared_state" else 4
    error = failed_check(double, {}, "fork", workers, cpus)
    assert any(words in error for words in DOUBLES_CAUGHT[double]), error


def test_the_section_check_counts_overlaps_exactly():
    assert lessons_kit.most_inside([0, 2, 4], [1, 3, 5]) == (1, 3)
    assert lessons_kit.most_inside([0, 1], [1, 2]) == (1, 2)  # exit then enter: no overlap
    assert lessons_kit.most_inside([0, 1, 2], [5, 3, 4]) == (3, 1)
    with pytest.raises(TrialCheckFailed, match="2 processes were inside a lock"):
        lessons_sync.check_sections([0, 1], [2, 3], 1, "lock")


def test_the_event_check_catches_a_waiter_woken_early_or_not_at_all():
    assert lessons_sync.check_event_rounds([1.0, 2.0], [[1.5, 2.5], [1.25, 2.25]]) == [0.5, 0.5]
    with pytest.raises(TrialCheckFailed, match="before set"):
        lessons_sync.check_event_rounds([1.0, 2.0], [[1.5, 1.75], [1.25, 2.25]])
    with pytest.raises(TrialCheckFailed, match="woke 1 times in 2 rounds"):
        lessons_sync.check_event_rounds([1.0, 2.0], [[1.5], [1.25, 2.25]])


def test_the_condition_check_catches_a_consumer_taking_what_was_not_produced():
    lessons_sync.check_buffer([1, 3], [[2], [4]], 2, 1)
    with pytest.raises(TrialCheckFailed, match="held -1 items"):
        lessons_sync.check_buffer([1, 3], [[0.5], [4]], 2, 1)
    with pytest.raises(TrialCheckFailed, match="held 2 items"):
        lessons_sync.check_buffer([1, 2], [[3], [4]], 2, 1)
    with pytest.raises(TrialCheckFailed, match="1 consumed"):
        lessons_sync.check_buffer([1, 3], [[2], []], 2, 1)


def test_the_barrier_check_catches_an_early_leaver_and_a_slow_release():
    assert lessons_sync.check_barrier_rounds([[0, 10], [1, 11]], [[2, 12], [3, 13]], 5) == [2, 2]
    with pytest.raises(TrialCheckFailed, match="before the last arrived"):
        lessons_sync.check_barrier_rounds([[0], [1]], [[0.5], [3]], 5)
    with pytest.raises(TrialCheckFailed, match="to release all parties"):
        lessons_sync.check_barrier_rounds([[0], [1]], [[2], [9]], 5)


# ---------------------------------------------------------------------------------------------
# lifecycle


def test_terminate_gives_exit_code_minus_15():
    record = passed("lifecycle", {"case": "terminate", "repeats": 3}, "spawn")
    assert record["check"]["terminated"] == 3 and record["check"]["exit_code"] == -15
    lessons_life.check_terminated([-15, -15])
    with pytest.raises(TrialCheckFailed, match="expected -15"):
        lessons_life.check_terminated([-15, 0])  # a child that ignored SIGTERM


@pytest.mark.parametrize("start_method", ["fork", "forkserver"])
def test_a_daemon_child_dies_with_its_parents_normal_exit(start_method):
    record = passed("lifecycle", {"case": "daemon"}, start_method)
    assert record["check"]["daemon_gone"] is True
    # the parent's exit handler terminates and joins its daemon children before it exits: the
    # child is dead before the exit code exists (not "gone some µs after" it)
    assert value(record, "daemon_dead_at_parent_exit") == 1
    assert record["check"]["state_at_parent_exit"] in ("gone", "zombie")
    assert lessons_kit.pid_state(record["check"]["daemon_pid"]) != "alive"


def test_a_daemon_child_outlives_a_sigkilled_parent_and_the_trial_cleans_it_up():
    record = passed("lifecycle", {"case": "daemon_parent_killed"}, "fork")
    assert value(record, "daemon_survived") == 1  # no exit handler ran in the killed parent
    assert "survived" in record["check"]["fact"]
    assert lessons_kit.pid_state(record["check"]["daemon_pid"]) != "alive"


def test_the_death_check_tells_a_live_pid_from_a_dead_one():
    child = multiprocessing.get_context("fork").Process(target=lessons_life.sleeper,
                                                        args=(multiprocessing.Event(),))
    child.start()
    try:
        assert lessons_kit.pid_state(child.pid) == "alive"
        assert lessons_kit.wait_dead(child.pid, 0.05) is None
        child.kill()
        assert lessons_kit.wait_dead(child.pid, 5) is not None  # a zombie counts as dead
    finally:
        child.kill()
        child.join()


@pytest.mark.parametrize("params, blocked, intact, put_get_ok", [
    ({"item_bytes": 1 << 20, "put_items": 2}, 1, 0, 0),  # torn mid-item: get() hangs
    ({"item_bytes": 100, "put_items": 5000}, 0, None, 0),  # pipe full: put() never lands
    ({"item_bytes": 100, "put_items": 3}, 0, 3, 1),  # the feeder was idle: all fine
])
def test_a_queue_after_a_kill_mid_put_is_reported_never_failed(params, blocked, intact,
                                                                put_get_ok):
    record = passed("lifecycle", {"case": "kill_mid_put", **params}, "fork")
    assert value(record, "get_blocked") == blocked
    assert value(record, "put_get_ok") == put_get_ok
    assert value(record, "items_put") == params["put_items"]
    if intact is not None:
        assert value(record, "items_intact") == intact
    else:
        assert 0 < value(record, "items_intact") < params["put_items"]


# ---------------------------------------------------------------------------------------------
# threads_vs_processes and queue_in_process


@pytest.mark.parametrize("runner, start_method", [
    ("serial", "fork"), ("threads", "fork"), ("processes", "forkserver"),
])
def test_the_task_on_threads_and_processes_does_all_its_loops(runner, start_method):
    record = passed("threads_vs_processes", {"runner": runner, "iterations": 20_000},
                    start_method, 2)
    assert record["check"]["iterations"] == 20_000
    assert record["check"]["workers"] == (1 if runner == "serial" else 2)
    assert isinstance(record["check"]["gil_enabled"], bool)
    assert value(record, "iterations_per_second") > 0


def test_the_chunk_check_catches_a_short_chunk():
    chunks = [lessons_kit.spin(100), lessons_kit.spin(100)]
    assert lessons_kit.check_chunks(chunks, 200)["iterations"] == 200
    lying = (100, lessons_kit.spin(99)[1], 0.0)  # claims 100 loops, summed 99
    with pytest.raises(TrialCheckFailed):
        lessons_kit.check_chunks([chunks[0], lying], 200)


@pytest.mark.parametrize("kind", ["thread_queue", "process_queue"])
def test_queues_in_one_process_return_every_item_in_order(kind):
    record = passed("queue_in_process", {"queue_kind": kind, "messages": 2000}, "fork")
    assert record["check"]["in_order"] and record["check"]["checksum"] == 2000 * 1999 // 2
    assert value(record, "put_get_us") > 0

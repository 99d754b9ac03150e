"""`invoke lessons` with threads and interpreters beside processes: the start of a thread and of
an interpreter in start_cost, interpreters in threads_vs_processes, and the interpreter_boundary
lesson (what crosses as it is, what is pickled; InterpreterPoolExecutor against
ProcessPoolExecutor) run on the 3.14 base and are left out, said so, on 3.13; a lost object
fails its check; and every new claim comes out each way on made-up trials."""

import json
import os

import pytest

from lab.analysis import lessons
from lab.analysis.lessons import interpreter_boundary, start_cost, threads_vs_processes
from lab.analysis.lessons import judge as v
from tests.conftest import invoke
from tests.test_lessons_verdicts import trials_of

SID, TRIXIE = "multicore-lab-base:sid", "multicore-lab-base:trixie"
HOST_CPUS = len(os.sched_getaffinity(0))


def _records(folder):
    return [json.loads(line) for line in (folder / "raw.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def interpreters_run(engine, trial_image, tmp_path_factory):
    if HOST_CPUS < 2:
        pytest.skip("needs 2 CPUs")
    results = tmp_path_factory.mktemp("lessons_interpreters")
    done = invoke("lessons", "--lessons", "start_cost,threads_vs_processes,interpreter_boundary",
                  "--start-methods", "fork", "--base-image", f"{TRIXIE},{SID}", "--cpus", "2",
                  "--size", "0.05", "--repeat", "2", "--seed", "5", "--backend", "docker",
                  "--results-dir", str(results))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return results / "latest", done


def test_threads_and_interpreters_start_beside_processes(interpreters_run):
    folder, _ = interpreters_run
    starts = [r for r in _records(folder) if r["variant"] == "start_cost"]
    assert {r["python"][:4] for r in starts} == {"3.13", "3.14"}
    for record in starts:
        assert record["ok"], record["error"]
        assert record["check"]["threads_ran"] == record["params"]["repeats"]
        assert record["metrics"]["thread_start_join_us"]["value"] > 0
        if record["python"].startswith("3.14"):
            assert record["check"]["interpreters_ran"] == record["params"]["interpreter_starts"]
            assert record["metrics"]["interpreter_start_us"]["value"] > 0
        else:
            assert record["check"]["interpreters_ran"].startswith("not on this Python (3.13")
            assert "interpreter_start_us" not in record["metrics"]


def test_interpreters_run_the_task_and_cross_the_boundary_on_3_14_only(interpreters_run):
    folder, done = interpreters_run
    records = _records(folder)
    interpreters = [r for r in records if r["params"].get("runner") == "interpreters"]
    crossings = [r for r in records if r["variant"] == "interpreter_boundary"]
    assert interpreters and crossings
    assert {r["python"][:4] for r in interpreters + crossings} == {"3.14"}
    for record in interpreters:
        assert record["ok"] and record["check"]["iterations"] == record["params"]["iterations"]
    assert {r["params"]["crossing"] for r in crossings} == {"queue", "interpreter_pool",
                                                            "process_pool"}
    for record in crossings:
        assert record["ok"] and record["check"]["crossed_intact"] is True
        if record["params"]["crossing"] == "queue":
            assert record["check"]["shareable_kinds"] == "none, bool, int, float, str, bytes, tuple"
            assert record["check"]["pickled_kinds"] == "list, dict"
    assert ("interpreter_boundary queue needs Python 3.14 or later (concurrent.interpreters): "
            f"not on this Python, left out on {TRIXIE}") in done.stdout
    for claim in (start_cost.CLAIM_BETWEEN, threads_vs_processes.CLAIM_INTERPRETERS,
                  interpreter_boundary.CLAIM_SHAREABLE, interpreter_boundary.CLAIM_POOL):
        assert f"] {claim}: " in done.stdout  # each claim said with its verdict and figures


def test_the_lesson_alone_on_an_older_python_is_refused_in_one_line(engine, tmp_path):
    results = tmp_path / "results"
    done = invoke("lessons", "--lessons", "interpreter_boundary", "--cpus", "1",
                  "--results-dir", str(results))
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: nothing to run: interpreter_boundary"), \
        done.stderr
    assert "needs Python 3.14 or later" in lines[0] and "Python 3.13" in lines[0]
    assert not results.exists()


def test_an_object_lost_on_the_way_fails_the_check(engine, trial_image, tmp_path):
    done = invoke("lessons", "--lessons", "test_crossing_loses_one", "--base-image", SID,
                  "--cpus", "1", "--size", "0.05", "--repeat", "1", "--backend", "docker",
                  "--results-dir", str(tmp_path), env={"LAB_TEST_DOUBLES": "1"})
    records = _records(tmp_path / "latest")
    assert records and all(not r["ok"] for r in records)
    assert all("check failed" in r["error"] and "took 249 of 250 objects" in r["error"]
               for r in records)
    assert done.returncode != 0
    assert "FAIL   interpreter_boundary test_crossing_loses_one" in done.stdout


# --- every new claim, each way, on made-up trials ---------------------------------------------

HELD, NOT, CANT = [3.0, 3.1, 3.2], [0.5, 0.55, 0.6], [0.7, 1.0, 1.4]  # over [1, 1, 1]
PY314 = {"python": "3.14.0"}


def _table(trials, claim):
    table = lessons.verdicts(trials, lessons.summary(trials))
    return table[table["claim"] == claim]


def _said(trials, claim):
    summary = lessons.summary(trials)
    table = lessons.verdicts(trials, summary)
    said = [c for c in lessons.claims(summary, lessons.behaviour_checks(trials), table)
            if c[0] == claim]
    return said[0] if said else None


@pytest.mark.parametrize("process, thread, verdict", [
    (100.0, 1.0, v.HELD),      # interpreter 10: below the process's 100, above the thread's 1
    (5.0, 1.0, v.NOT_HELD),    # interpreter 10: slower than the process
    (100.0, 20.0, v.NOT_HELD),  # interpreter 10: faster than the thread
])
def test_an_interpreter_starts_between_a_thread_and_a_process_either_way(process, thread,
                                                                          verdict):
    trials = trials_of(("start_cost", {}, "interpreter_start_us", [9.0, 10.0, 11.0], PY314))
    trials["metric.start_join_us"] = [process * f for f in (0.95, 1.0, 1.05)]
    trials["metric.thread_start_join_us"] = [thread * f for f in (0.95, 1.0, 1.05)]
    trials["metric.constructor_us"] = 0.5
    said = _said(trials, start_cost.CLAIM_BETWEEN)
    assert said[1] == verdict
    assert "discuss.python.org thread 53251" in said[2]


def test_the_start_claim_cannot_tell_and_is_a_fact_without_interpreters():
    trials = trials_of(("start_cost", {}, "interpreter_start_us", [5.0, 10.0, 20.0], PY314))
    trials["metric.start_join_us"] = [9.0, 11.0, 14.0]  # straddles the interpreter's
    trials["metric.thread_start_join_us"] = 1.0
    trials["metric.constructor_us"] = 0.5
    assert _said(trials, start_cost.CLAIM_BETWEEN)[1] == v.CANT_TELL
    old = trials_of(("start_cost", {}, "thread_start_join_us", [1.0, 1.1, 1.2], {}))
    old["metric.start_join_us"], old["metric.constructor_us"] = 100.0, 0.5
    rows = _table(old, start_cost.CLAIM_BETWEEN)
    assert rows["verdict"].tolist() == [v.FACT] and rows["note"].tolist() == [start_cost.NOT_HERE]
    assert "an interpreter not on this Python" in _said(old, start_cost.CLAIM_BETWEEN)[2]


@pytest.mark.parametrize("interpreters, verdict", [(HELD, v.HELD), (NOT, v.NOT_HELD),
                                                   (CANT, v.CANT_TELL)])
def test_interpreters_run_in_parallel_either_way(interpreters, verdict):
    trials = trials_of(
        ("threads_vs_processes", {"runner": "interpreters"}, "iterations_per_second",
         [x * 1e6 for x in interpreters], PY314),
        ("threads_vs_processes", {"runner": "threads"}, "iterations_per_second",
         [1e6, 1e6, 1e6], PY314))
    rows = _table(trials, threads_vs_processes.CLAIM_INTERPRETERS)
    assert rows["verdict"].tolist() == [verdict]


def test_interpreters_that_did_not_get_their_cpus_give_no_verdict():
    busy = {**PY314, "cpu_seconds": 0.5, "workers": 2}  # 0.5 s of CPU in a 1 s section x 2 CPUs
    trials = trials_of(
        ("threads_vs_processes", {"runner": "interpreters"}, "iterations_per_second",
         [3e6, 3.1e6, 3.2e6], busy),
        ("threads_vs_processes", {"runner": "threads"}, "iterations_per_second",
         [1e6, 1e6, 1e6], busy))
    rows = _table(trials, threads_vs_processes.CLAIM_INTERPRETERS)
    assert rows["verdict"].tolist() == [v.BUSY]


def _crossing(queue_list, queue_tuple):
    trials = trials_of(("interpreter_boundary", {"crossing": "queue"}, "queue_list_us",
                        queue_list, PY314))
    trials["metric.queue_dict_us"] = trials["metric.queue_list_us"]
    trials["metric.queue_tuple_us"] = queue_tuple
    return trials


@pytest.mark.parametrize("pickled, verdict", [(HELD, v.HELD), (NOT, v.NOT_HELD),
                                              (CANT, v.CANT_TELL)])
def test_pickled_objects_cost_more_than_shareable_ones_either_way(pickled, verdict):
    trials = _crossing(pickled, 1.0)
    rows = _table(trials, interpreter_boundary.CLAIM_SHAREABLE)
    assert rows["verdict"].tolist() == [verdict, verdict]  # list / tuple, dict / tuple
    assert _said(trials, interpreter_boundary.CLAIM_SHAREABLE)[1] == verdict


@pytest.mark.parametrize("interpreter_pool, verdict", [(HELD, v.HELD), (NOT, v.NOT_HELD),
                                                       (CANT, v.CANT_TELL)])
def test_the_interpreter_pool_against_the_process_pool_either_way(interpreter_pool, verdict):
    trials = trials_of(
        ("interpreter_boundary", {"crossing": "interpreter_pool"}, "pool_list_us",
         interpreter_pool, PY314),
        ("interpreter_boundary", {"crossing": "process_pool"}, "pool_list_us", [1.0] * 3, PY314))
    trials["metric.pool_dict_us"] = trials["metric.pool_list_us"]
    rows = _table(trials, interpreter_boundary.CLAIM_POOL)
    assert rows["verdict"].tolist() == [verdict, verdict]
    said = _said(trials, interpreter_boundary.CLAIM_POOL)
    assert said[1] == verdict and "2-17x" in said[2]


def test_a_lost_crossing_is_a_failed_behaviour_check():
    trials = _crossing(HELD, 1.0)
    trials.loc[0, "ok"] = False
    trials.loc[0, "error"] = "check failed: none: the second interpreter took 9 of 10 objects"
    checks = lessons.behaviour_checks(trials)
    assert checks["result"].tolist() == ["FAIL"]
    assert _crossing(HELD, 1.0).pipe(lessons.behaviour_checks)["result"].tolist() == ["PASS"]


def test_held_against_one_start_method_and_not_another_is_partly():
    spawn = {**PY314, "start_method": "spawn", "check.start_method": "spawn"}
    trials = trials_of(("start_cost", {}, "interpreter_start_us", [9.0, 10.0, 11.0], PY314),
                       ("start_cost", {}, "interpreter_start_us", [9.0, 10.0, 11.0], spawn))
    trials["metric.start_join_us"] = [5.0] * 3 + [100.0, 101.0, 102.0]  # fork 5, spawn 100
    trials["metric.thread_start_join_us"] = 1.0
    trials["metric.constructor_us"] = 0.5
    assert _said(trials, start_cost.CLAIM_BETWEEN)[1] == v.PARTLY


def test_the_charts_draw_threads_and_interpreters_beside_processes(tmp_path):
    from lab.present import lessons_charts
    trials = trials_of(("start_cost", {}, "interpreter_start_us", [9.0, 10.0, 11.0], PY314),
                       ("threads_vs_processes", {"runner": "interpreters"},
                        "iterations_per_second", [3e6, 3.1e6, 3.2e6], PY314))
    starts = trials["variant"] == "start_cost"
    trials.loc[starts, "metric.start_join_us"] = 100.0
    trials.loc[starts, "metric.thread_start_join_us"] = 1.0
    trials.loc[starts, "metric.constructor_us"] = 0.5
    trials.loc[starts, "metric.pool_first_task_us"] = 200.0
    summary = lessons.summary(trials)
    drawn = lessons_charts.start_cost_chart(summary, tmp_path)
    drawn += lessons_charts.threads_chart(summary, tmp_path)
    assert {p.name for p in drawn} >= {"lessons_start_cost.png", "lessons_threads.png"}
    svg = (tmp_path / "lessons_start_cost.svg").read_text()
    assert "an interpreter" in svg and "a thread" in svg
    assert "interpreters" in (tmp_path / "lessons_threads.svg").read_text()

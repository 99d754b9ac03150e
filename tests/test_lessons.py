"""`invoke lessons` end to end: the family's flags, points, trials on the real engine and on the
local backend, its behaviour checks (a lock that does not lock is caught through the family's
own path), the report's claim sentences, and three Pythons (3.11, 3.13, 3.14) in one run.

Counts are cut to a few percent of the defaults (--size) so the file stays short; the first run
on a machine also builds the sid base offline (debootstrap, 40-90 s, once per machine).
"""

import csv
import json
import os

import pytest

from lab import commands
from lab.families import lessons as family
from lab.run.options import BadInput
from tests.conftest import BASE_IMAGE, invoke

SMALL = {  # every lesson, the slow items left out: about 30 points per CPU count
    "lessons": "all", "start_methods": "fork,forkserver", "task_sizes": "1000,10000",
    "chunksizes": "1", "runners": "pool,process_per_task,seed_one_process,seed_two_processes",
    "cases": "terminate,daemon,daemon_parent_killed", "size": "0.02", "repeat": "1",
    "seed": "11", "cpus": "1,2",
}
CLAIMS = ("Creating a process costs 12.2 µs", "A pool saves the time of starting processes",
          "Shared memory performs best",
          "Without its lock a Value loses updates",
          "A Lock (mutex) lets one process at a time", "Semaphore(n) admits n at a time",
          "terminate() kills a process: exit code -15",
          "A daemon process ends when the main process exits",
          "Threads cannot run the CPU-bound task in parallel")


def config(results):
    return {"lab": {"results_dir": str(results), "backend": "auto", "base_image": BASE_IMAGE,
                    "placement": "spread", "start_method": "fork", "repeat": "5",
                    "seed": "random", "trial_time_limit_s": "120",
                    "docker": {"memory_limit": "512m", "shm_size": "64m", "pids_limit": "256"}},
            "lessons": {"cpus": "1,2", "lessons": "all", "start_method": "default",
                        "start_methods": "fork,spawn,forkserver", "runners": "all",
                        "task_sizes": "1000,10000,100000", "chunksizes": "1,auto",
                        "states": "all", "primitives": "all", "cases": "all", "size": "1",
                        "repeat": "3"}}


def run_lessons(results, **flags):
    said = []
    code = commands.run_family("lessons", {"results_dir": str(results), **flags},
                               config(results), say=said.append)
    return code, (results / "latest").resolve(), "\n".join(map(str, said))


def records_of(folder):
    return [json.loads(line) for line in (folder / "raw.jsonl").read_text().splitlines()]


def check_complete_run(folder, said, backend):
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["task"] == "lessons" and meta["status"] == "complete"
    records = records_of(folder)
    assert records and all(r["ok"] for r in records), [r["error"] for r in records
                                                        if not r["ok"]][:3]
    assert {r["backend"] for r in records} == {backend}
    assert {r["cpus"] for r in records} == {1, 2}
    # every lesson this Python has (3.13 and the host's 3.11: interpreter_boundary needs 3.14)
    assert {r["variant"] for r in records} == set(family.LESSONS) - {"interpreter_boundary"}
    assert "interpreter_boundary queue needs Python 3.14 or later" in said
    # `default` is recorded as the point's method and resolved by the trial
    assert {r["check"]["start_method"] for r in records if r["start_method"] == "default"} \
        == {"fork"}
    with open(folder / "summary.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len({r["point_id"] for r in records})  # one row per point
    report = (folder / "report.md").read_text()
    for claim in CLAIMS:
        assert claim in report, claim
    assert ": Process() alone took" in report  # the 12.2 µs claim, with its figure
    assert "Every verdict per Python and CPU count" in report  # the verdict table
    assert "| claim | Python | CPUs | figure [95% interval] | verdict | note |" in report
    assert '<td class="l v-' in (folder / "report.html").read_text()  # coloured verdict cells
    assert "| FAIL |" not in report and "| PASS |" in report
    assert "| lesson | shared_state value_unlocked |" in report  # a lesson, never a failure
    for chart in ("lessons_start_cost", "lessons_pool_break_even", "lessons_shared_state",
                  "lessons_sync", "lessons_threads"):
        assert (folder / f"{chart}.png").stat().st_size > 5000
        assert (folder / f"{chart}.svg").exists()
    assert "of" in said and "behaviour checks hold" in said


def test_lessons_end_to_end_on_the_real_engine(engine, trial_image, tmp_path):
    code, folder, said = run_lessons(tmp_path, backend="docker", **SMALL)
    assert code == 0, said[-3000:]
    check_complete_run(folder, said, "docker")


def test_lessons_end_to_end_on_the_local_backend(tmp_path):
    code, folder, said = run_lessons(tmp_path, backend="local", **SMALL)
    assert code == 0, said[-3000:]
    check_complete_run(folder, said, "local")


def test_a_lock_that_does_not_lock_is_caught_through_the_family(tmp_path, monkeypatch):
    """Every test double through the family's own path, on 1 and 2 CPUs, at the real trials'
    hold (0) and workers: each fails its check; the real lock beside them holds."""
    from lab.experiments import lessons as trial
    monkeypatch.setenv("LAB_TEST_DOUBLES", "1")
    code, folder, said = run_lessons(
        tmp_path, backend="local", lessons=",".join(trial.TEST_DOUBLES + ("sync",)),
        primitives="lock", cpus="1,2", size="0.2", repeat="1", seed="3")
    assert code == 3, said[-2000:]  # complete, but measured trials failed
    records = records_of(folder)
    # test_crossing_loses_one needs Python 3.14 (left out here, caught in
    # test_lessons_interpreters on the sid base)
    for double in [d for d in trial.TEST_DOUBLES if trial.DOUBLE_OF[d] != "interpreter_boundary"]:
        doubles = [r for r in records if r["variant"] == double]
        assert {r["cpus"] for r in doubles} == {1, 2}, double
        assert not any(r["ok"] for r in doubles), double
        assert all(r["error"].startswith("check failed") for r in doubles), double
        assert all(r["params"].get("hold_us", 0) == 0 for r in doubles), double
    locks = [r for r in records if r["variant"] == "test_lock_does_not_lock"]
    assert all("inside a lock admitting 1" in r["error"] for r in locks)
    assert all(r["ok"] for r in records if r["variant"] == "sync")  # the real lock holds
    report = (folder / "report.md").read_text()
    assert "| FAIL | sync test_lock_does_not_lock |" in report
    assert "| FAIL | sync test_barrier_does_not_wait |" in report
    assert "| PASS | sync lock |" in report
    assert "FAILED: " in said and "sync test_lock_does_not_lock" in said


@pytest.mark.parametrize("flags, words", [
    ({"lessons": "start_cost,gil"}, "--lessons 'gil': unknown; allowed: start_cost"),
    ({"lessons": "test_lock_does_not_lock"}, "--lessons 'test_lock_does_not_lock': unknown"),
    ({"start_methods": "fork,vfork"}, "--start-methods 'vfork': unknown"),
    ({"chunksizes": "1,0"}, "--chunksizes '0': not allowed"),
    ({"size": "none"}, "--size 'none': not allowed"),
    ({"primitives": "mutex"}, "--primitives 'mutex': unknown"),
    ({"task_sizes": "1000,-5"}, "--task-sizes '-5': not allowed"),
])
def test_bad_flags_are_refused_in_one_line_before_anything_runs(tmp_path, monkeypatch, flags,
                                                                 words):
    monkeypatch.delenv("LAB_TEST_DOUBLES", raising=False)
    with pytest.raises(BadInput) as refused:
        run_lessons(tmp_path / "results", backend="local", **flags)
    assert words in str(refused.value) and "\n" not in str(refused.value)
    assert not (tmp_path / "results").exists()


def test_the_command_line_refuses_an_unknown_lesson_with_exit_2_and_one_line(tmp_path):
    done = invoke("lessons", "--lessons", "start_cost,threads", "--backend", "local",
                  "--results-dir", str(tmp_path / "r"), timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "Traceback" not in done.stderr
    assert "--lessons 'threads': unknown" in done.stderr
    assert not (tmp_path / "r").exists()


def test_the_dry_run_prints_the_plan_with_sized_counts(tmp_path):
    said = []
    code = commands.run_family("lessons", {"results_dir": str(tmp_path), "backend": "local",
                                           "dry_run": True, "cpus": "1"},
                               config(tmp_path), say=said.append)
    assert code == 0
    text = "\n".join(said)
    assert "start_cost spawn" in text and "'repeats': 5" in text  # 5 spawns ~ 0.3 s
    assert "sync lock, default" in text and "'ops': 100000" in text
    assert not any(tmp_path.iterdir())


def test_three_pythons_side_by_side(engine, tmp_path):
    """bookworm (3.11), trixie (3.13) and sid (3.14), all built offline, in one run; the report
    says what changed between them, with the figures."""
    bases = ",".join(f"multicore-lab-base:{s}" for s in ("bookworm", "trixie", "sid"))
    code, folder, said = run_lessons(
        tmp_path, backend="docker", base_image=bases, lessons="start_cost",
        start_methods="default,fork", cpus="1", size="0.05", repeat="1", seed="5")
    assert code == 0, said[-3000:]
    records = records_of(folder)
    pythons = {r["python"][:4] for r in records}
    assert pythons == {"3.11", "3.13", "3.14"}
    resolved = {r["python"][:4]: r["check"]["start_method"] for r in records
                if r["start_method"] == "default"}
    assert resolved == {"3.11": "fork", "3.13": "fork", "3.14": "forkserver"}
    report = (folder / "report.md").read_text()
    assert "What changed between Pythons:" in report
    assert "Default start method (the trials' `default`, as resolved): fork on 3.11, 3.13; " \
           "forkserver on 3.14" in report
    assert (f"Pool()'s default size (workers): 3.11: 1-CPU cpuset {os.cpu_count()}; 3.13: "
            f"1-CPU cpuset 1; 3.14: 1-CPU cpuset 1") in report
    assert "under each Python's default: 3.11 fork" in report and "3.14 forkserver" in report


def test_the_claim_sentences_are_computed_from_the_data():
    """The same claim, held or not, follows the figures: no sentence is a constant."""
    import pandas as pd

    from lab.analysis import lessons as analysis

    def summary(start_join_us):
        return pd.DataFrame([{"lesson": "start_cost", "item": "fork", "variant": "start_cost",
                              "python": "3.13.5", "cpus": 1, "n": 3,
                              "resolved_start_method": "fork", "metric.constructor_us": 2.0,
                              "metric.start_join_us": start_join_us,
                              "metric.pool_first_task_us": 9000.0}])
    # The claim is that a started process costs far more than Process() alone (> 10x): the
    # tutorial's 12.2 µs timed only the constructor. (It used to be "held" only below 24.4 µs,
    # 2 x 12.2, which no start()+join() reaches.)
    (claim, verdict, sentence), = analysis.claims(summary(2050.0), None)
    assert verdict == "held" and "fork 2.05 ms" in sentence
    assert "Process() alone took 2.0 µs" in sentence
    (claim, verdict, sentence), = analysis.claims(summary(11.0), None)
    assert verdict == "not held" and sentence.startswith("Not held") and "fork 11 µs" in sentence


def test_size_auto_sizes_each_point_from_its_warm_up(tmp_path):
    """--size auto: the warm-up runs the default count, the measured trials the count that
    makes the section last --min-seconds (1.5x over, as ipc's auto counts); single operations
    and the tutorial's fixed tasks keep theirs."""
    said = []
    code = commands.run_family("lessons", {"results_dir": str(tmp_path), "backend": "local",
                                           "dry_run": True, "cpus": "1", "size": "auto",
                                           "lessons": "start_cost,lifecycle",
                                           "start_methods": "fork"},
                               config(tmp_path), say=said.append)
    assert code == 0 and "'sizing': 'auto'" in "\n".join(said)
    from lab.run.plan import make_point
    lessons_family = family.LessonsFamily()

    def point(variant, **params):
        return make_point(experiment="lessons", variant=variant, limit="cpuset", cpus=1,
                          cpuset="0", quota=None, placement="spread", workers=None,
                          start_method="fork", image="img",
                          params={**params, "sizing": "auto", "min_seconds": 0.2})
    start = point("start_cost", repeats=100, constructors=20000, pools=10)
    first = lessons_family.trial_params(start, None)
    assert "sizing" not in first and first["repeats"] == 100
    warm = {"ok": True, "seconds": 0.1, "params": first}
    assert lessons_family.trial_params(start, warm)["repeats"] == 300  # 100 x 0.2 / 0.1 x 1.5
    assert lessons_family.trial_params(start, {"ok": False, "seconds": None}) is None
    assert family.count_key("lifecycle", {"case": "daemon"}) is None  # a single operation
    assert family.count_key("pool_vs_process", {"runner": "seed_two_processes"}) is None

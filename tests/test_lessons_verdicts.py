"""Every lessons verdict can come out either way: made-up trials (no process starts) for each
claim give held, not held and can't tell (a ratio whose interval straddles its threshold), and
the gates give no verdict (errored trials) and 'machine busy: no verdict' (a parallelism trial
that did not get its CPUs). A check claim has no interval: held, not held, no verdict."""

import itertools

import pandas as pd
import pytest

from lab.analysis import lessons
from lab.analysis.lessons import judge as v

_ids = itertools.count()


def trials_of(*groups):
    """groups: (variant, params, metric, values, extra) -> one point each, a trial per value;
    extra: columns for every trial of the point (cpus, python, cpu_seconds, ok, error...)."""
    rows = []
    for variant, params, metric, found, extra in groups:
        point = f"p{next(_ids)}"
        for value in found:
            row = {"point_id": point, "experiment": "lessons", "variant": variant,
                   "limit": "cpuset", "cpus": 2, "quota": None, "placement": "spread",
                   "workers": None, "start_method": "fork", "backend": "local",
                   "python": "3.13.5", "image": "i", "host": "h", "ok": True, "warmup": False,
                   "error": None, "seconds": 1.0, "check.start_method": "fork",
                   "metric.task_cpu_us": 50.0,
                   f"metric.{metric}": value}
            row.update({f"param.{k}": val for k, val in params.items()})
            row.update(extra)
            if row["ok"] is False:
                row[f"metric.{metric}"] = None
            rows.append(row)
    return pd.DataFrame(rows)


def verdict_of(claim, *groups):
    trials = trials_of(*groups)
    summary = lessons.summary(trials)
    table = lessons.verdicts(trials, summary)
    mine = table[table["claim"].str.startswith(claim)]
    assert len(mine) == 1, table[["claim", "verdict"]]
    checks = lessons.behaviour_checks(trials)
    said = [c for c in lessons.claims(summary, checks, table) if c[0].startswith(claim)]
    assert said and said[0][1] == mine["verdict"].iloc[0]  # the claim says what its row says
    return mine.iloc[0]


HELD, NOT, CANT = [2000, 2100, 2200], [10, 11, 12], [15, 25, 35]  # over [2, 2, 2]: 10x


@pytest.mark.parametrize("start, verdict", [(HELD, v.HELD), (NOT, v.NOT_HELD), (CANT, v.CANT_TELL)])
def test_start_cost_over_the_constructor(start, verdict):
    trials = trials_of(("start_cost", {}, "start_join_us", start, {}))
    trials["metric.constructor_us"] = 2.0
    table = lessons.verdicts(trials, lessons.summary(trials))
    assert table["verdict"].tolist() == [verdict]
    assert table["threshold"].iloc[0] == 10


RATIOS = [([300, 310, 320], [100, 101, 102], v.HELD),  # about 3x
          ([90, 95, 99], [100, 101, 102], v.NOT_HELD),  # below 1
          ([80, 100, 130], [100, 101, 102], v.CANT_TELL)]  # straddles 1


@pytest.mark.parametrize("top, bottom, verdict", RATIOS)
def test_a_pool_saves_start_time(top, bottom, verdict):
    size = {"task_iterations": 1000}
    row = verdict_of("A pool saves",
                     ("pool_vs_process", {"runner": "process_per_task", **size}, "per_task_us",
                      top, {}),
                     ("pool_vs_process", {"runner": "pool", "chunksize": 1, **size},
                      "per_task_us", bottom, {}))
    assert row["verdict"] == verdict and row["low"] <= row["ratio"] <= row["high"]


def test_the_pool_verdict_takes_a_fixed_chunksize_not_the_best():
    size = {"task_iterations": 1000}
    row = verdict_of("A pool saves",
                     ("pool_vs_process", {"runner": "process_per_task", **size}, "per_task_us",
                      [100, 101, 102], {}),
                     ("pool_vs_process", {"runner": "pool", "chunksize": 1, **size},
                      "per_task_us", [10, 11, 12], {}),
                     ("pool_vs_process", {"runner": "pool", "chunksize": "auto", **size},
                      "per_task_us", [300, 301, 302], {}))
    assert "chunksize auto" in row["figure"] and row["verdict"] == v.NOT_HELD


def _scaled(values, factor):
    return [x * factor for x in values]


@pytest.mark.parametrize("top, bottom, verdict", [
    ([130, 131, 132], [100, 101, 102], v.HELD), *RATIOS[1:],
    ([300, 310, 320], [100, 101, 102], v.HELD)])
def test_two_processes_against_one(top, bottom, verdict):
    fed = {"cpu_seconds": 2.0}
    row = verdict_of("The tutorial's reconstructions",
                     ("pool_vs_process", {"runner": "seed_one_process"}, "per_task_us",
                      _scaled(top, 1.2), {"cpu_seconds": 1.0}),
                     ("pool_vs_process", {"runner": "seed_two_processes"}, "per_task_us",
                      bottom, fed))
    assert row["verdict"] == verdict


def test_two_processes_that_waited_for_their_cpus_give_no_verdict():
    row = verdict_of("The tutorial's reconstructions",
                     ("pool_vs_process", {"runner": "seed_one_process"}, "per_task_us",
                      [300, 310, 320], {"cpu_seconds": 1.0}),
                     ("pool_vs_process", {"runner": "seed_two_processes"}, "per_task_us",
                      [100, 101, 102], {"cpu_seconds": 1.2}))  # 1.2 of 2 CPU-seconds
    assert row["verdict"] == v.BUSY and "40% less CPU" in row["note"]


@pytest.mark.parametrize("top, bottom, verdict", RATIOS)
def test_shared_memory_against_a_manager(top, bottom, verdict):
    row = verdict_of("Shared memory performs best",
                     ("shared_state", {"state": "shared_memory"}, "increments_per_second",
                      top, {}),
                     ("shared_state", {"state": "queue"}, "increments_per_second",
                      bottom, {}))
    assert row["verdict"] == verdict


@pytest.mark.parametrize("lost, verdict", [([5, 9, 1], v.HELD), ([0, 0, 0], v.NOT_HELD),
                                           ([0, 3, 0], v.CANT_TELL)])
def test_an_unlocked_value_loses_updates(lost, verdict):
    row = verdict_of("Without its lock", ("shared_state", {"state": "value_unlocked"},
                                          "lost_updates", lost, {"check.expected": 100}))
    assert row["verdict"] == verdict


@pytest.mark.parametrize("top, bottom, verdict", RATIOS)
def test_a_mutex_against_a_semaphore_of_one(top, bottom, verdict):
    row = verdict_of("A mutex is cheaper",
                     ("sync", {"primitive": "semaphore_one"}, "op_us", top, {}),
                     ("sync", {"primitive": "lock"}, "op_us", bottom, {}))
    assert row["verdict"] == verdict and "Semaphore(1) / Lock" in row["figure"]


SERIAL = ("threads_vs_processes", {"runner": "serial"}, "iterations_per_second",
          [100, 100, 100], {"cpu_seconds": 1.0, "workers": 1})


@pytest.mark.parametrize("top, bottom, verdict", [
    ([140, 141, 142], [100, 101, 102], v.HELD), ([100, 110, 120], [100, 101, 102], v.NOT_HELD),
    ([110, 130, 160], [100, 101, 102], v.CANT_TELL)])
def test_processes_against_threads(top, bottom, verdict):
    row = verdict_of("Threads cannot run", SERIAL,
                     ("threads_vs_processes", {"runner": "processes"}, "iterations_per_second",
                      top, {"cpu_seconds": 2.0, "workers": 2}),
                     ("threads_vs_processes", {"runner": "threads"}, "iterations_per_second",
                      bottom, {"cpu_seconds": 1.0, "workers": 2,
                               "check.gil_enabled": True}))
    assert row["verdict"] == verdict


def test_processes_that_did_not_get_their_cpus_give_machine_busy():
    row = verdict_of("Threads cannot run", SERIAL,
                     ("threads_vs_processes", {"runner": "processes"}, "iterations_per_second",
                      [140, 141, 142], {"cpu_seconds": 1.1, "workers": 2}),
                     ("threads_vs_processes", {"runner": "threads"}, "iterations_per_second",
                      [100, 101, 102], {"cpu_seconds": 1.0, "workers": 2,
                                        "check.gil_enabled": True}))
    assert row["verdict"] == v.BUSY


def test_against_a_manager_alone_the_row_says_it_can_hardly_fail():
    row = verdict_of("Shared memory performs best",
                     ("shared_state", {"state": "shared_memory"}, "increments_per_second",
                      [300, 310, 320], {}),
                     ("shared_state", {"state": "manager_dict"}, "increments_per_second",
                      [100, 101, 102], {}))
    assert row["verdict"] == v.HELD and "can hardly fail" in row["note"]


def test_errored_trials_give_no_verdict_never_not_held():
    row = verdict_of("Shared memory performs best",
                     ("shared_state", {"state": "shared_memory"}, "increments_per_second",
                      [1, 1], {"ok": False, "error": "timed out after 120 s"}),
                     ("shared_state", {"state": "queue"}, "increments_per_second",
                      [100, 101, 102], {}))
    assert row["verdict"] == v.NO_VERDICT and "2 trials errored" in row["note"]


@pytest.mark.parametrize("claim, variant, params", [
    ("A Lock (mutex)", "sync", {"primitive": "lock"}),
    ("Semaphore(n) admits", "sync", {"primitive": "semaphore"}),
    ("terminate() kills", "lifecycle", {"case": "terminate"}),
    ("A daemon process ends", "lifecycle", {"case": "daemon"})])
@pytest.mark.parametrize("extra, verdict", [
    ({}, v.HELD), ({"ok": False, "error": "check failed: 2 inside"}, v.NOT_HELD),
    ({"ok": False, "error": "trial timed out after 120 s"}, v.NO_VERDICT)])
def test_a_behaviour_claim_fails_only_on_a_failed_check(claim, variant, params, extra,
                                                        verdict):
    metric = {"sync": "op_us", "lifecycle": "terminate_join_us"}[variant]
    trials = trials_of((variant, params, metric, [1.0, 1.1], extra))
    table = lessons.verdicts(trials, lessons.summary(trials))
    assert table[table["claim"].str.startswith(claim)]["verdict"].tolist() == [verdict]


def test_claims_combine_their_rows():
    assert v.combine([v.HELD, v.HELD]) == v.HELD
    assert v.combine([v.HELD, v.NOT_HELD]) == v.PARTLY
    assert v.combine([v.HELD, v.CANT_TELL]) == v.CANT_TELL
    assert v.combine([v.HELD, v.BUSY]) == v.HELD
    assert v.combine([v.BUSY, v.NO_VERDICT]) == v.BUSY
    assert v.combine([v.FACT]) == v.FACT

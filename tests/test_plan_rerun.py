"""`--plan results/<run>/plan.json` reruns exactly that matrix: on another machine, or here."""

import json
import os
import time

import pytest

from tests.conftest import invoke

HOST_CPUS = len(os.sched_getaffinity(0))


def _keys(folder):
    records = [json.loads(line) for line in (folder / "raw.jsonl").read_text().splitlines()]
    return sorted((r["point_id"], r["round"]) for r in records), records


@pytest.fixture(scope="module")
def first_run(engine, trial_image, tmp_path_factory):
    results = tmp_path_factory.mktemp("first")
    cpus = "1,2" if HOST_CPUS >= 2 else "1"
    done = invoke("scale", "--cpus", cpus, "--work", "150000", "--repeat", "2", "--seed", "8",
                  "--variants", "strong", "--backend", "docker", "--results-dir", str(results))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return (results / "latest").resolve()


def test_plan_reruns_the_same_points_rounds_and_order(first_run, tmp_path):
    done = invoke("scale", "--plan", str(first_run / "plan.json"), "--backend", "docker",
                  "--results-dir", str(tmp_path))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    second = (tmp_path / "latest").resolve()
    assert second != first_run
    first_keys, first_records = _keys(first_run)
    second_keys, second_records = _keys(second)
    assert first_keys == second_keys
    # Same seed: the same shuffled order of trials, and the calibrated work is kept.
    assert [r["point_id"] for r in first_records] == [r["point_id"] for r in second_records]
    assert {r["params"]["work"] for r in second_records} == {150000}
    assert json.loads((second / "meta.json").read_text())["plan_source"].endswith("plan.json")


def test_plan_of_another_task_or_with_matrix_flags_is_refused(first_run, tmp_path):
    other = invoke("ipc", "--plan", str(first_run / "plan.json"), "--results-dir", str(tmp_path))
    assert other.returncode == 2 and "a plan of `invoke scale`, not of `invoke ipc`" in other.stderr
    mixed = invoke("scale", "--plan", str(first_run / "plan.json"), "--cpus", "1",
                   "--results-dir", str(tmp_path))
    assert mixed.returncode == 2 and "leave out --cpus" in mixed.stderr
    assert not any(tmp_path.iterdir())


def test_plan_needing_cpus_this_host_lacks_is_refused(first_run, tmp_path):
    plan = json.loads((first_run / "plan.json").read_text())
    plan["points"][0]["cpuset"] = [0, HOST_CPUS + 3]
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    done = invoke("scale", "--plan", str(path), "--results-dir", str(tmp_path / "r"))
    assert done.returncode == 2
    assert f"this host lacks {HOST_CPUS + 3}" in done.stderr
    assert not (tmp_path / "r").exists()


# A recorded point that needs concurrent.interpreters (Python 3.14) on a base with 3.13: refused
# in one line, as a new run with those flags is, before any trial or folder (made-up plans).
TRIXIE = "multicore-lab-base:trixie"
NEEDS_314 = {
    "scale": ("interpreters", {"work": 100000}, "InterpreterPoolExecutor"),
    "ipc": ("interpreter_queue", {"messages": 1000, "size_bytes": 0, "pattern": "stream",
                                  "producers": 1, "consumers": 1, "batch": 1,
                                  "placement": "free", "timing": "seed"}, "concurrent.interp"),
    "lessons": ("interpreter_boundary", {"objects": 100}, "concurrent.interpreters"),
}


@pytest.mark.parametrize("task", sorted(NEEDS_314))
def test_plan_needing_a_newer_python_than_its_image_is_refused(engine, task, tmp_path):
    from tests.conftest import PROJECT_ROOT, containers_started_by
    variant, params, what = NEEDS_314[task]
    point = {"cpus": 1, "cpuset": [0], "experiment": task if task != "scale" else "scaling",
             "host": "", "image": TRIXIE, "limit": "cpuset", "params": params,
             "placement": "spread", "quota": None, "start_method": "fork", "variant": variant,
             "workers": 1}
    path = tmp_path / "plan.json"
    path.write_text(json.dumps({"schema": 1, "task": task, "points": [point], "repeat": 2,
                                "seed": 1, "discard_first_round": True, "sizing": {}}))
    results = PROJECT_ROOT / "results"
    before, since = set(results.iterdir()), int(time.time())
    done = invoke(task, "--plan", str(path), "--backend", "docker")
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    line = done.stderr.strip().splitlines()[-1]
    assert f"--plan {path}: point " in line and f"needs Python 3.14 or later ({what}" in line
    assert f"{TRIXIE} has Python 3.13" in line and "Traceback" not in done.stderr
    assert set(results.iterdir()) == before  # nothing written
    assert not [e for e in containers_started_by(engine, done.pid, since)
                if "multicore-lab.run" in e.get("Actor", {}).get("Attributes", {})]

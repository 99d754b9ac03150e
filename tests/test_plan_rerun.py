"""`--plan results/<run>/plan.json` reruns exactly that matrix: on another machine, or here."""

import json
import os

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

"""What Python sees in a container: a quota against a cpuset, and the pool it sizes (real engine)."""

import json
import os

import pytest

from lab.run import plan as plans
from lab.run.runner import trial_spec
from tests.conftest import invoke

HOST_CPUS = len(os.sched_getaffinity(0))
needs_two_cpus = pytest.mark.skipif(HOST_CPUS < 2, reason="needs at least 2 CPUs")


def scaling_point(cpuset, quota=None, workers=None, work=3_000_000, variant="strong",
                  image=""):
    return plans.make_point(experiment="scaling", variant=variant,
                            limit="quota" if quota else "cpuset", cpus=len(cpuset),
                            cpuset=list(cpuset), quota=quota, placement="spread",
                            workers=workers, start_method="fork", params={"work": work},
                            image=image)


@needs_two_cpus
def test_one_cpu_quota_gives_effective_cpus_1_and_holds_a_default_pool_to_one_cpu(docker_backend):
    point = scaling_point(range(HOST_CPUS), quota=1.0, workers=None, work=10_000_000)
    outcome = docker_backend.run(trial_spec(point), point.cpuset, point.quota, 120)
    assert outcome.error is None, outcome.stderr_tail
    result = outcome.result
    seen = result["seen"]
    assert seen["quota_cpus"] == 1.0 and seen["effective_cpus"] == 1
    assert seen["os_cpu_count"] == os.cpu_count()           # the quota hides nothing from it
    assert seen["affinity"] == list(range(HOST_CPUS))        # nor from affinity
    assert result["metrics"]["workers_used"]["value"] == HOST_CPUS  # Pool() ignores the quota
    # The quota holds: the pool was throttled, or (on a machine busy enough that its workers
    # never got more than one CPU between them) it used no more than one CPU of the section.
    throttled = result["nr_throttled"] > 0 and result["throttled_seconds"] > 0
    assert throttled or result["cgroup_cpu_seconds"] <= 1.1 * result["seconds"], result


def test_one_cpu_cpuset_pins_affinity_to_cpu_0_without_a_quota(docker_backend):
    point = scaling_point([0], workers=1, work=100_000)
    outcome = docker_backend.run(trial_spec(point), point.cpuset, None, 60)
    assert outcome.error is None, outcome.stderr_tail
    seen = outcome.result["seen"]
    assert seen["affinity"] == [0] and seen["quota_cpus"] is None and seen["effective_cpus"] == 1


@needs_two_cpus
def test_pool_default_under_a_1_cpu_cpuset_is_hosts_count_on_311_and_1_on_313(
        docker_backend, bookworm_image, trial_image):
    docker_backend.images[bookworm_image.base] = bookworm_image
    seen_by_python = {}
    for image in (trial_image, bookworm_image):
        point = scaling_point([0], workers=None, work=50_000, image=image.base)
        outcome = docker_backend.run(trial_spec(point), point.cpuset, None, 60, image=image.base)
        assert outcome.error is None, outcome.stderr_tail
        seen_by_python[outcome.result["python"][:4]] = outcome.result
    assert set(seen_by_python) == {"3.11", "3.13"}
    old, new = seen_by_python["3.11"], seen_by_python["3.13"]
    assert old["seen"]["pool_default_workers"] == os.cpu_count()
    assert old["metrics"]["workers_used"]["value"] == os.cpu_count()
    assert old["seen"]["process_cpu_count"] is None
    assert new["seen"]["pool_default_workers"] == 1 and new["seen"]["process_cpu_count"] == 1
    assert new["metrics"]["workers_used"]["value"] == 1


@needs_two_cpus
def test_quota_run_on_two_pythons_draws_both_limits_and_says_what_to_size_by(
        engine, trial_image, bookworm_image, tmp_path):
    done = invoke("scale", "--cpus", "1,2", "--quota", "1", "--variants", "strong",
                  "--work", "300000", "--repeat", "1", "--seed", "4", "--backend", "docker",
                  "--base-image", f"{trial_image.base},{bookworm_image.base}",
                  "--results-dir", str(tmp_path))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    folder = tmp_path / "latest"
    records = [json.loads(line) for line in (folder / "raw.jsonl").read_text().splitlines()]
    assert {r["python"][:4] for r in records} == {"3.11", "3.13"}
    quota_records = [r for r in records if r["limit"] == "quota"]
    assert quota_records and all(r["quota"] == 1.0 and r["seen"]["effective_cpus"] == 1
                                 for r in quota_records)
    assert {r["workers"] for r in quota_records} == {1, None}  # effective CPUs and Pool() default
    assert (folder / "quota.png").stat().st_size > 1000
    report = (folder / "report.md").read_text()
    sentences = [line for line in report.splitlines() if line.startswith("- Python 3.1")]
    assert len(sentences) == 2
    assert "3.11" in sentences[0] + sentences[1] and "3.13" in sentences[0] + sentences[1]
    for sentence in sentences:
        assert "size pools by effective CPUs" in sentence

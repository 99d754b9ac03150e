"""The lab's ground on a real engine: offline image, pinned trials, failures, bad input, local pins."""

import json
import os

import pytest

from lab.run import plan as plans, session as runs
from lab.backends.local import LocalBackend
from lab.run.runner import trial_spec
from tests.conftest import BASE_IMAGE, invoke
from tests.probe_family import ProbeFamily

HOST_CPUS = len(os.sched_getaffinity(0))


def probe_point(variant="seen", cpuset=(0,), params=None):
    return plans.make_point(experiment="probe", variant=variant, limit="cpuset",
                            cpus=len(cpuset), cpuset=list(cpuset), quota=None,
                            placement="spread", workers=1, start_method="fork",
                            params=params or {})


def test_offline_base_and_image_are_built(engine, trial_image):
    assert trial_image.base == BASE_IMAGE
    assert trial_image.python.count(".") == 2  # x.y.z
    image = engine.images.get(trial_image.tag)
    assert image.id == trial_image.id
    assert image.attrs["Config"]["User"] == "10001:10001"
    assert image.attrs["Config"]["Entrypoint"] == ["python3", "-m", "lab.experiments"]


def test_image_is_reused_when_the_code_is_unchanged(engine, trial_image):
    from lab.backends.image import ensure_image
    again = ensure_image(engine, BASE_IMAGE, say=lambda *_: None)
    assert again.id == trial_image.id and again.built_seconds is None


def test_lab_experiments_import_in_the_image_with_the_standard_library_alone(engine, trial_image):
    # Foreign = loaded from an installed package's folder; the interpreter's own modules (Debian's
    # sitecustomize included) and the lab's are fine.
    script = ("import sys, lab.experiments.__main__, lab.sysinfo\n"
              "from lab.experiments import EXPERIMENTS, load\n"
              "[load(name) for name in EXPERIMENTS]\n"
              "foreign = sorted(name for name, m in list(sys.modules.items())\n"
              "    if any(p in (getattr(m, '__file__', None) or '')\n"
              "           for p in ('site-packages', 'dist-packages')))\n"
              "print(len(sys.modules) > 50, foreign)\n")
    output = engine.containers.run(trial_image.id, entrypoint=["python3", "-c", script],
                                   network_mode="none", remove=True).decode().strip()
    assert output == "True []"  # many modules loaded, none from an installed package
    missing = engine.containers.run(
        trial_image.id, entrypoint=["python3", "-c",
                                    "import importlib.util as u; print([m for m in "
                                    "('pandas','matplotlib','docker','invoke') if u.find_spec(m)])"],
        network_mode="none", remove=True).decode().strip()
    assert missing == "[]"


@pytest.mark.parametrize("cpuset", [(0,), (0, 1)])
def test_trial_sees_the_cpuset_it_asked_for(docker_backend, cpuset):
    if max(cpuset) >= HOST_CPUS:
        pytest.skip(f"needs CPU {max(cpuset)}")
    point = probe_point(cpuset=cpuset)
    outcome = docker_backend.run(trial_spec(point), point.cpuset, None, 60)
    assert outcome.error is None, outcome.stderr_tail
    seen = outcome.result["seen"]
    assert seen["affinity"] == list(cpuset)
    assert seen["os_cpu_count"] == os.cpu_count()  # the cpuset hides nothing from cpu_count()
    assert seen["cgroup"]["cpuset"] == ",".join(map(str, cpuset)).replace("0,1", "0-1")
    assert seen["effective_cpus"] == len(cpuset)


def test_trial_whose_affinity_differs_from_its_cpuset_fails_loudly(docker_backend):
    spec = trial_spec(probe_point(cpuset=(0,)))
    spec["expect_affinity"] = [0, 1]  # container pinned to {0}; the trial was told {0, 1}
    outcome = docker_backend.run(spec, [0], None, 60)
    assert outcome.error is not None and "affinity mismatch" in outcome.error


def test_timeout_crash_and_oom_are_recorded_while_the_others_finish(docker_backend, tmp_path):
    points = [probe_point("sleep", params={"seconds": 30}),
              probe_point("exit", params={"code": 3}),
              probe_point("allocate", params={"mib": 600}),
              probe_point("seen")]
    plan = plans.Plan(points, repeat=1, seed=5, discard_first_round=False)
    config = {"results_dir": str(tmp_path), "trial_time_limit_s": 5}
    folder, status = runs.perform(ProbeFamily(), plan, docker_backend, config, {},
                                  say=lambda *_: None)
    assert status == "complete"
    records = {r["variant"]: r for r in map(json.loads, folder.raw_path.read_text().splitlines())}
    assert set(records) == {"sleep", "exit", "allocate", "seen"}
    assert "timeout" in records["sleep"]["error"] and records["sleep"]["timed_out"]
    assert records["exit"]["error"] == "exited with status 3"
    assert records["allocate"]["oom_killed"] and "out of memory" in records["allocate"]["error"]
    assert records["seen"]["ok"] and records["seen"]["error"] is None
    assert all(r["ok"] is False and r["seconds"] is None
               for v, r in records.items() if v != "seen")
    leftover = docker_backend.client.containers.list(
        all=True, filters={"label": f"multicore-lab.run={folder.run_id}"})
    assert leftover == []  # every container removed after its status and logs were read
    meta = folder.read_meta()
    assert meta["status"] == "complete" and meta["image"]["id"] == docker_backend.images[BASE_IMAGE].id


def test_local_backend_pins_the_trial_process():
    backend = LocalBackend({})
    for cpuset in ([0], list(range(HOST_CPUS))):
        point = probe_point(cpuset=cpuset)
        outcome = backend.run(trial_spec(point), point.cpuset, None, 60)
        assert outcome.error is None, outcome.stderr_tail
        assert outcome.result["seen"]["affinity"] == cpuset


def test_explicit_docker_backend_that_does_not_answer_is_refused(tmp_path):
    done = invoke("scale", "--backend", "docker", "--results-dir", str(tmp_path / "r"),
                  env={"DOCKER_HOST": f"unix://{tmp_path}/nobody.sock"})
    assert done.returncode == 2
    assert "does not answer" in done.stderr and "--backend local" in done.stderr
    assert not (tmp_path / "r").exists()


def test_auto_backend_with_no_engine_runs_locally_and_says_so(tmp_path, monkeypatch):
    from lab import backends
    from lab.backends import docker as docker_backend_module
    def refuse(*_args, **_kwargs):
        raise backends.BackendUnavailable("the Docker engine does not answer: test")
    monkeypatch.setattr(docker_backend_module, "connect", refuse)
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    said = []
    backend = backends.choose_backend("auto", {}, say=said.append)
    assert backend.name == "local" and "WARNING" in said[0] and "local backend" in said[0]
    with pytest.raises(backends.BackendUnavailable):
        backends.choose_backend("docker", {}, say=said.append)


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path):
    done = invoke("scale", "--dry-run", "--cpus", "1", "--repeat", "2", "--seed", "3",
                  "--results-dir", str(tmp_path / "r"))
    assert done.returncode == 0, done.stderr
    assert "plan: 3 points x 3 rounds" in done.stdout and "seed 3" in done.stdout
    assert not (tmp_path / "r").exists()

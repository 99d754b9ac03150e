"""Processes, threads or interpreters (`invoke scale --variants strong,threads,interpreters`):
through the command a user types, on real locked-down containers of two Pythons (3.13 trixie,
3.14 sid); the refusal on a Python without InterpreterPoolExecutor; the warm-up and GIL checks
failing on their test doubles; the report's verdict sentence in each of its outcomes, from
made-up records. Small work sizes; no test asserts a duration.
"""

import io
import json
import platform
import re
import subprocess
import sys
import time

import pytest

from lab.analysis import executors, trials as trial_frames
from lab.analysis.scaling import off_cpu, scaling_summary
from lab.experiments import TrialCheckFailed, gil, scaling, scaling_task
from lab.present.executors_report import executors_section
from tests.conftest import PROJECT_ROOT, containers_started_by, invoke

pytestmark = pytest.mark.engine

SID = "multicore-lab-base:sid"
TRIXIE = "multicore-lab-base:trixie"
RESULTS = PROJECT_ROOT / "results"
SMALL = {"INVOKE_LAB_REPEAT": "3", "INVOKE_LAB_MIN_SECONDS": "0.01"}


def _runs():
    return set(RESULTS.iterdir()) if RESULTS.exists() else set()


@pytest.fixture(scope="module")
def two_pythons(engine):
    """One run on trixie (3.13) and sid (3.14) side by side, as a user types it."""
    done = invoke("scale", "--variants", "strong,threads,interpreters", "--base-image",
                  f"{TRIXIE},{SID}", "--cpus", "1,2", "--work", "200000", env=SMALL)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run = re.search(r"results in (results/\S+)", done.stdout)  # other engineers' runs beside
    return done, PROJECT_ROOT / run.group(1)


def _records(folder):
    return [json.loads(line) for line in (folder / "raw.jsonl").read_text().splitlines()]


def test_threads_and_interpreters_run_beside_the_pool_on_each_python(two_pythons):
    done, folder = two_pythons
    records = _records(folder)
    assert all(r["ok"] for r in records), [r["error"] for r in records if not r["ok"]]
    ran = {(r["variant"], r["python"][:4]) for r in records}
    assert {("threads", "3.13"), ("threads", "3.14"), ("strong", "3.13"),
            ("interpreters", "3.14"), ("serial", "3.13"), ("serial", "3.14")} <= ran
    assert ("interpreters", "3.13") not in ran  # skipped on the older base, with a note
    assert ("left out (1): interpreters on multicore-lab-base:trixie (Python 3.13"
            in done.stdout)
    for record in records:  # every worker warmed and proven, every chunk checked, GIL read
        assert record["check"]["all_workers_warmed"] is True
        assert "bit for bit" in record["check"]["checksum"]
        assert record["check"]["gil_enabled"] is True
        assert record["check"]["free_threaded"] is False
        if record["variant"] in ("threads", "interpreters"):
            assert record["check"]["warmed_workers"] == record["workers"]
            assert record["metrics"]["workers_used"]["unit"] == record["variant"]
            assert record["metrics"]["workers_ready_seconds"]["value"] > 0
        if record["variant"] == "strong":
            ready = record["metrics"]["workers_ready_seconds"]["value"]
            assert ready >= record["metrics"]["pool_start_seconds"]["value"]
        if record["variant"] in ("strong", "threads", "interpreters"):  # every pool's hand-off
            assert 0 < record["metrics"]["task_round_trip_seconds"]["value"] < 5


def test_the_report_has_the_executors_section_a_verdict_per_python_and_the_skip(two_pythons):
    done, folder = two_pythons
    report = (folder / "report.md").read_text()
    section = report.split("## processes, threads or interpreters", 1)[1]
    assert "interpreters skipped on multicore-lab-base:trixie (Python 3.13" in section
    for python in ("3.13", "3.14"):
        assert f"- Python {python}, 2 CPUs (speed against the serial run" in section
    assert "loremipsumpy/python-3.14-free-threading-benchmark" in section
    assert "909 ms" in section and "5-10%" in section
    assert "| 3.14." in section and "interpreters" in section
    table = [line for line in section.splitlines() if line.startswith("| 3.1")]
    assert table and all(re.search(r"\| \d+ \| (on|off) \|$", line) for line in table), table
    summary = (folder / "summary.csv").read_text()
    assert "threads" in summary and "interpreters" in summary
    assert (folder / "speedup.png").exists()
    assert 'id="executors"' in (folder / "report.html").read_text()
    assert "Processes, threads or interpreters:" in done.stdout


def test_interpreters_on_a_python_before_314_are_refused_in_one_line(engine):
    before, since = _runs(), int(time.time())
    done = invoke("scale", "--variants", "strong,interpreters", "--cpus", "1,2",
                  env=SMALL)  # --work auto: refused before its calibration trial runs
    assert done.returncode == 2
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert lines[-1].startswith("error: --variants interpreters: InterpreterPoolExecutor needs "
                                "Python 3.14 or later, and multicore-lab-base:trixie has Python "
                                "3.13"), lines
    assert "Traceback" not in done.stderr
    assert _runs() == before  # nothing written
    trials = [e for e in containers_started_by(engine, done.pid, since)
              if "multicore-lab.run" in e.get("Actor", {}).get("Attributes", {})]
    assert trials == []  # no trial, not even the calibration's


@pytest.fixture(scope="module")
def python_labelled(engine):
    """Two images on the 3.13 trial image: one labelled with its Python when built (as every
    image built now is), one built before the label existed (empty)."""
    from lab.backends.image import PYTHON_LABEL, ensure_image
    trial = ensure_image(engine, TRIXIE, say=lambda *_: None)
    tags = {"known": "multicore-lab-test:python-known",
            "unknown": "multicore-lab-test:python-unknown"}
    for which, tag in tags.items():
        engine.images.build(fileobj=io.BytesIO(f"FROM {trial.id}\n".encode()), tag=tag, rm=True,
                            labels={PYTHON_LABEL: trial.python if which == "known" else ""})
    yield tags, trial.python
    for tag in tags.values():
        engine.images.remove(tag)


@pytest.mark.parametrize("task, flags, refusal", [
    ("scale", ["--variants", "strong,interpreters", "--cpus", "1"],
     "--variants interpreters: InterpreterPoolExecutor needs Python 3.14 or later, and "),
    ("ipc", ["--channels", "interpreter_queue", "--cpus", "1"],
     "--channels interpreter_queue needs Python 3.14 or later (concurrent.interpreters); "),
])
def test_a_dry_run_refuses_interpreters_on_a_built_313_image_without_a_container(
        engine, python_labelled, task, flags, refusal):
    tags, python = python_labelled
    before, since = _runs(), int(time.time())
    known = invoke(task, *flags, "--image", tags["known"], "--dry-run")
    assert known.returncode == 2, known.stdout[-2000:] + known.stderr[-2000:]
    line = known.stderr.strip().splitlines()[-1]
    assert refusal in line and f"{tags['known']} has Python {python}" in line, line
    unknown = invoke(task, *flags, "--image", tags["unknown"], "--dry-run")
    assert unknown.returncode == 0, unknown.stdout[-2000:] + unknown.stderr[-2000:]
    assert (f"the Python of {tags['unknown']} is not known before its image is built"
            in unknown.stdout) and "plan: " in unknown.stdout
    assert _runs() == before
    for done in (known, unknown):  # the label is read; no probe container is started
        assert containers_started_by(engine, done.pid, since) == []


# ---------------------------------------------------------------------------------------------
# The checks fail on their doubles


def _trial(variant, workers=2, work=200_000):
    return scaling.run_trial({"experiment": "scaling", "variant": variant, "workers": workers,
                              "params": {"work": work}, "start_method": "fork"})


def test_a_thread_left_cold_fails_the_warm_up_check():
    assert _trial("threads")["check"]["warmed_workers"] == 2
    with pytest.raises(TrialCheckFailed, match="warm-up reached 1 of the 2 threads"):
        _trial("test_cold_thread")


@pytest.fixture(scope="module")
def sid_backend(engine):
    from lab.backends.docker import DockerBackend
    from lab.backends.image import ensure_image
    image = ensure_image(engine, SID, say=lambda *_: None)
    backend = DockerBackend(engine, {"memory_limit": "256m", "shm_size": "64m",
                                     "pids_limit": 256})
    backend.images = {SID: image}
    return backend


@pytest.mark.parametrize("variant, error", [
    ("interpreters", None),
    ("test_cold_interpreter", "check failed: the warm-up reached 1 of the 2 interpreters"),
    ("test_gil_back_on", "check failed: this free-threaded Python ran with the GIL enabled"),
])
def test_interpreter_and_gil_checks_in_a_locked_down_314_container(sid_backend, variant, error):
    spec = {"experiment": "scaling", "variant": variant, "workers": 2,
            "params": {"work": 200_000}, "start_method": "forkserver",
            "expect_affinity": [0, 1], "time_limit_s": 60}
    outcome = sid_backend.run(spec, [0, 1], None, 60, image=SID)
    if error is None:
        assert outcome.error is None, outcome.error
        assert outcome.result["check"]["warmed_workers"] == 2
        assert outcome.result["python"].startswith("3.14")
    else:
        assert outcome.error is not None and outcome.error.startswith(error), outcome.error


def test_a_free_threaded_build_with_the_gil_on_fails_and_with_it_off_passes():
    def chunks(free, on):
        return [{"free_threaded": free, "gil_enabled": g} for g in on]
    assert scaling.check_gil(chunks(True, [False, False])) == {"gil_enabled": False,
                                                              "free_threaded": True}
    assert scaling.check_gil(chunks(False, [True, True]))["gil_enabled"] is True
    with pytest.raises(TrialCheckFailed, match="GIL enabled in 1 of 2 workers"):
        scaling.check_gil(chunks(True, [False, True]))
    chunk = scaling_task.run_chunk(scaling_task.tutorial_sum, 10)
    assert chunk["gil_enabled"] is gil.gil_enabled() and chunk["free_threaded"] is False


def test_a_free_threaded_python_is_labelled_with_a_t(monkeypatch):
    assert not gil.python_label().endswith("t")
    monkeypatch.setattr(gil, "free_threaded", lambda: True)
    assert gil.python_label().endswith("t")
    assert executors.short_python("3.14.2t") == "3.14t"
    assert executors.short_python("3.13.5") == "3.13"


class _Engine:
    """A made-up engine whose 'container' runs the probe here, on a Python that may claim a
    free-threaded build (Py_GIL_DISABLED = 1)."""

    def __init__(self, free):
        self.containers, self.free = self, free

    def run(self, image, entrypoint, **_):
        fake = ("import sysconfig; real = sysconfig.get_config_var\n"
                "sysconfig.get_config_var = lambda n: 1 if n == 'Py_GIL_DISABLED' else real(n)\n")
        code = (fake if self.free else "") + entrypoint[-1]
        return subprocess.run([sys.executable, "-c", code], check=True,
                              capture_output=True).stdout


def test_the_image_line_labels_the_python_as_the_records_do():
    """The run's 'image ... (Python x)' line and its records use one label: 3.14.0t on a
    free-threaded build, the plain version otherwise."""
    from lab.backends.image import python_version
    assert python_version(_Engine(free=False), "any") == gil.python_label()
    assert python_version(_Engine(free=True), "any") == platform.python_version() + "t"



def test_the_local_backend_labels_its_python_as_the_records_do(monkeypatch):
    from lab.backends import local
    backend = local.LocalBackend({})
    assert backend.image_info()["python"] == gil.python_label()
    monkeypatch.setattr(local, "python_label", lambda: platform.python_version() + "t")
    assert backend.known_python(None) == platform.python_version() + "t"


# ---------------------------------------------------------------------------------------------
# The verdict, from made-up records


def _made_up(python, seconds_by_variant, rounds=5, gil_on=True, free=False):
    """Records of serial (1 CPU) and each executor at 1 and 2 CPUs: `seconds_by_variant`
    {variant: seconds at 2 CPUs}; every 1-CPU point takes 1.0 s; a small spread per round."""
    records = []
    points = [("serial", 1, 1.0)] + [(v, 1, 1.0) for v in seconds_by_variant] + [
        (v, 2, s) for v, s in seconds_by_variant.items()]
    for variant, cpus, seconds in points:
        for round_ in range(rounds):
            records.append({
                "run_id": "made-up", "point_id": f"{python}.{variant}.c{cpus}",
                "experiment": "scaling", "variant": variant, "python": python,
                "image": python, "start_method": "fork", "limit": "cpuset", "cpus": cpus,
                "cpuset": "0,1"[:2 * cpus - 1], "workers": cpus, "params": {"work": 1000},
                "round": round_, "repeat": round_, "warmup": False, "ok": True,
                "seconds": seconds * (1 + 0.01 * (round_ - 2)), "cpu_seconds": seconds,
                "metrics": {"pool_start_seconds": {"value": 0.01, "unit": "s"}},
                "check": {"gil_enabled": gil_on, "free_threaded": free}})
    return records


def _verdicts(*groups):
    trials = trial_frames.trials_frame([r for group in groups for r in group])
    summary = scaling_summary(trials)
    return executors.verdicts(executors.executor_rows(trials, summary)), trials, summary


def test_the_verdict_names_interpreters_processes_threads_or_cant_tell():
    said, trials, summary = _verdicts(
        _made_up("3.14.2", {"strong": 0.62, "threads": 1.02, "interpreters": 0.52}),
        _made_up("3.13.5", {"strong": 0.52, "threads": 1.01}),
        _made_up("3.14.2t", {"strong": 0.60, "threads": 0.515, "interpreters": 0.52},
                 gil_on=False, free=True))
    by_python = {s.split(",")[0]: s for s in said}
    assert by_python["Python 3.14"].split(": ")[1].startswith("use interpreters for CPU-bound")
    assert by_python["Python 3.13"].split(": ")[1].startswith("use processes (Pool) for")
    assert "threads 0.99x" in by_python["Python 3.13"] and "behind" in by_python["Python 3.13"]
    # 3.14t: threads and interpreters a hair apart, their intervals overlap; the Pool behind
    assert "can't tell threads or interpreters" in by_python["Python 3.14t"]
    assert "processes (Pool) 1.67x" in by_python["Python 3.14t"]
    assert len(said) == 3  # one sentence per Python
    section = executors_section(trials, summary, {"interpreters_skipped": {TRIXIE: "3.13.5"}},
                                say=lambda *_: None)
    table = section.blocks[0][1]
    assert any(row[0] == "3.14.2t (free-threaded)" and row[-1] == "off" for row in table.rows)


def test_threads_under_one_gil_are_not_warned_for_using_one_cpu():
    _, trials, _ = _verdicts(_made_up("3.13.5", {"strong": 0.52, "threads": 1.0}))
    trials["cgroup_cpu_seconds"] = trials["seconds"]  # threads: one CPU busy, of two
    assert off_cpu(trials[trials["variant"] == "threads"], lambda row, hosts=(): "x") is None
    strong = trials[(trials["variant"] == "strong") & (trials["cpus"] == 2)].copy()
    strong["cgroup_cpu_seconds"] = strong["seconds"]  # a Pool of two with one CPU's time: warned
    assert off_cpu(strong, lambda row, hosts=(): "x") is not None

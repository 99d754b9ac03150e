"""The slurm backend on a real cluster (scripts/setup --slurm: one node, partition `bench`, cores
pinned by task/affinity and cgroup v1 cpusets): `invoke scale` and `invoke ipc` with every trial
a job step of exactly its cores, checked inside the step; a trial past its time limit recorded
as Slurm's TIMEOUT; Ctrl-C cancels the run's jobs and no other, and --resume completes the run;
no Slurm, no controller, an unknown partition or more CPUs than a node has: one line, exit 2,
nothing written.

Without the test bed the cluster tests are skipped with the reason (under CI=true they fail);
the first tests need no cluster.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab import records
from lab.sysinfo import format_cpu_list
from lab.backends import slurm, slurm_commands
from tests.conftest import PROJECT_ROOT, invoke
from tests.test_testbed import STEP_CGROUP, facts_of, need

SMALL_SCALE = ["--cpus", "1,2", "--work", "200000", "--variants", "strong,weak"]
SMALL_IPC = ["--cpus", "1,2", "--channels", "pipe,queue", "--messages", "2000", "--sizes", "0",
             "--patterns", "stream"]


# --- without a cluster: what the backend reads from Slurm's words --------------------------------

def test_srun_verbose_lines_give_the_job_step_and_node():
    assert slurm_commands.JOB_LINE.match("srun: job 30 queued and waiting for resources").group(1) == "30"
    assert slurm_commands.JOB_LINE.match("srun: jobid 26: nodes(1):`vm', cpu counts: 1(x1)").group(1) == "26"
    assert slurm_commands.LAUNCH_LINE.match("srun: launching StepId=26.0 on host vm, 1 tasks: 0"
                                    ).groups() == ("26", "0", "vm")
    line = "slurmstepd-vm: error: *** STEP 26.0 ON vm CANCELLED AT 2026-11-27T18:50:09 DUE TO TIME LIMIT ***"
    assert slurm_commands.DUE_TO[slurm_commands.CANCELLED_LINE.search(line).group(3)] == "TIMEOUT"
    chatter = "srun: defined options\nsrun: error: vm: task 0: Terminated\nTraceback (most recent"
    assert slurm_commands.trial_stderr(chatter) == "srun: error: vm: task 0: Terminated\nTraceback (most recent"


def test_time_limits_are_whole_minutes_and_nodes_states_are_read():
    assert [slurm_commands.time_limit_minutes(s) for s in (1, 60, 61, 600)] == [1, 1, 2, 10]
    assert slurm_commands.node_usable("IDLE") and slurm_commands.node_usable("MIXED")
    assert not any(slurm_commands.node_usable(s) for s in ("DOWN*", "IDLE+DRAIN", "IDLE*", "DRAINED"))
    fields = slurm_commands.parse_fields("NodeName=vm CPUTot=2 CPUEfctv=2 State=IDLE OS=Linux 6.1 #1 SMP")
    assert fields["NodeName"] == "vm" and fields["CPUTot"] == "2" and fields["State"] == "IDLE"


def test_the_step_environment_leaves_out_the_labs_venv_and_an_enclosing_allocation():
    env = slurm_commands.minimal_env({"PATH": "/x/.venv/bin:/usr/bin:/bin", "VIRTUAL_ENV": "/x/.venv",
                             "SLURM_JOB_ID": "7", "SLURM_CPUS_PER_TASK": "4",
                             "SLURM_ACCOUNT": "course", "PYTHONPATH": "/elsewhere"})
    assert env["PATH"] == "/usr/bin:/bin"
    assert "SLURM_JOB_ID" not in env and "SLURM_CPUS_PER_TASK" not in env
    assert "PYTHONPATH" not in env and "VIRTUAL_ENV" not in env
    assert env["SLURM_ACCOUNT"] == "course"  # the user's own srun settings stay


def test_maxtime_words_and_the_telling_line_of_a_failed_step():
    minutes = slurm_commands.duration_minutes
    assert [minutes(t) for t in ("UNLIMITED", "00:01:00", "5", "1-00:00:00", "2-12")] == \
        [None, 1, 5, 1440, 3600]
    stderr = ("srun: defined options\nslurmstepd-vm: error: execve(): /x/python3: No such file or "
              "directory\nsrun: error: vm: task 0: Exited with exit code 2\n")
    assert slurm_commands.why_failed(stderr, 2).endswith("/x/python3: No such file or directory")


def test_the_check_and_a_trial_are_one_command_builder(tmp_path):
    """Same srun flags, environment (the lab's venv left out), working directory and Python."""
    backend = slurm.SlurmBackend({"results_dir": "results"}, "bench", {"vm": {}},
                                 {"CPUTot": "2"})
    backend.code_dir = backend.code_root / "abc"
    assert backend.code_root.is_absolute()  # a relative results/ is read on the node otherwise
    check = backend.step_command("multicore-lab-prepare", 1, 60, ["-c", "pass"])
    trial = backend.step_command("multicore-lab-run", 1, 60, ["-m", "lab.experiments", "{}"])
    assert check.env == trial.env and check.cwd == trial.cwd == str(backend.code_dir)
    assert check.env["PYTHONPATH"] == str(backend.code_dir)
    assert [a for a in check.argv if "job-name" not in a][:-2] == \
        [a for a in trial.argv if "job-name" not in a][:-3]
    assert f"--chdir={backend.code_dir}" in trial.argv


def test_a_backend_failing_after_it_connected_is_one_line():
    from lab.backends import BackendUnavailable
    from lab.commands import refusal
    error = BackendUnavailable("--python x: the pre-run check failed", hint="allowed: y")
    assert refusal(error) == (2, "error: --python x: the pre-run check failed; allowed: y")
    error.run_exists = True  # during --resume: the run is there, left unfinished
    assert refusal(error)[0] == 1


def test_the_trial_checks_a_count_and_its_cgroup_cpuset():
    from lab.experiments.__main__ import _count_error
    mine = sorted(os.sched_getaffinity(0))
    listed = ",".join(map(str, mine))
    assert _count_error({"expect_cpu_count": len(mine), "expect_cgroup_cpuset": True},
                        {"cgroup": {"cpuset": listed}}) is None
    wrong = _count_error({"expect_cpu_count": len(mine) + 1}, {})
    assert wrong.startswith(f"affinity mismatch: asked for {len(mine) + 1} CPU(s)")
    elsewhere = _count_error({"expect_cpu_count": len(mine), "expect_cgroup_cpuset": True},
                             {"cgroup": {"cpuset": str(max(mine) + 1000)}})
    assert "cgroup's cpuset is" in elsewhere
    unseen = _count_error({"expect_cpu_count": len(mine), "expect_cgroup_cpuset": True},
                          {"cgroup": {"cpuset": None}})
    assert unseen.startswith("affinity unchecked")


# --- on the cluster ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cluster():
    facts = facts_of("slurm", "--slurm")
    need(all(slurm.shutil.which(c) for c in slurm.COMMANDS),
         "Slurm's commands are not installed: run scripts/setup --slurm")
    need(slurm.controller_answers(), "slurmctld does not answer: run scripts/setup --slurm")
    return facts


def run_folder(results):
    return (results / "latest").resolve()


def lab_records(folder):
    return records.read_records(folder / "raw.jsonl", warn=pytest.fail)


def jobs_named(name):
    done = subprocess.run(["squeue", "-h", f"--name={name}", "-o", "%i"], capture_output=True,
                          text=True, timeout=30)
    return done.stdout.split()


def check_pinned(found, cluster):
    """Every trial a job step of exactly its point's CPUs on the node, as the step saw it."""
    assert found
    for record in found:
        assert record["ok"], (record["error"], record["stderr_tail"])
        assert record["backend"] == "slurm" and record["slurm_state"] == "COMPLETED"
        assert record["node"] == cluster["node"]
        assert record["host"].startswith(cluster["partition"] + "@")  # the run's host
        affinity = record["seen"]["affinity"]
        assert len(affinity) == record["cpus"]
        assert record["step_cpuset"] == format_cpu_list(affinity)  # affinity = step cpuset
        match = STEP_CGROUP.match(record["step_cgroup"])
        assert match, record["step_cgroup"]
        assert f"/job_{record['slurm_job_id']}/step_{record['slurm_step_id']}" in \
            record["step_cgroup"]
        assert record["queue_seconds"] >= 0 and record["overhead_seconds"] > 0
        assert re.fullmatch(r"\d+\.\d+\.\d+", record["python"])
    assert len({r["slurm_job_id"] for r in found}) == len(found)  # one job per trial


@pytest.mark.testbed
def test_scale_on_slurm_cancelled_by_ctrl_c_then_resumed(cluster, tmp_path):
    """A bystander job (held, another name) survives the run's Ctrl-C; the run's own jobs are
    gone from squeue; --resume completes the run with every trial pinned."""
    results = tmp_path / "results"
    held = subprocess.run(["sbatch", "--hold", "--parsable", "-p", cluster["partition"], "-n1",
                           "-c1", "-t", "1", "--job-name", "mcl-bystander", "-o", "/dev/null",
                           "--wrap", "true"], capture_output=True, text=True, timeout=30)
    assert held.returncode == 0, held.stderr
    bystander = held.stdout.strip().split(";")[0]
    try:
        command = [str(Path(sys.executable).with_name("invoke")), "scale", "--backend", "slurm",
                   *SMALL_SCALE, "--repeat", "2", "--seed", "11", "--results-dir", str(results)]
        lab = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 120
        raw = None
        while time.monotonic() < deadline and lab.poll() is None:
            runs = [p for p in results.glob("*-scale-*") if (p / "raw.jsonl").exists()]
            raw = runs[0] / "raw.jsonl" if runs else None
            if raw and len(raw.read_text().splitlines()) >= 2:
                break
            time.sleep(0.05)
        assert raw is not None and lab.poll() is None, lab.communicate()[0]
        time.sleep(0.3)  # into the next trial's step
        lab.send_signal(signal.SIGINT)
        said = lab.communicate(timeout=120)[0]
        assert lab.returncode == 130, said
        folder = raw.parent
        assert jobs_named(f"multicore-lab-{folder.name}") == []
        assert bystander in jobs_named("mcl-bystander")  # another job: untouched
        assert json.loads((folder / "meta.json").read_text())["status"] == "interrupted"
        assert f"invoke scale --resume {folder.name}" in said

        resumed = invoke("scale", "--resume", folder.name, "--results-dir", str(results))
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    finally:
        subprocess.run(["scancel", bystander], timeout=30)
    found = lab_records(folder)
    plan = json.loads((folder / "plan.json").read_text())
    planned = len(plan["points"]) * 3  # warm-up + 2 rounds
    assert len({records.trial_key(r) for r in found}) == planned == len(found)
    check_pinned(found, cluster)
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["status"] == "complete" and meta["resumes"]
    assert meta["backend"]["partition"] == cluster["partition"]
    assert meta["images"]["slurm"]["id"].startswith("slurm-code:")
    assert (folder / "report.html").stat().st_size > 1000
    assert "one trial per node at a time" in (folder / "report.md").read_text()


@pytest.mark.testbed
def test_ipc_on_slurm(cluster, tmp_path):
    done = invoke("ipc", "--backend", "slurm", *SMALL_IPC, "--repeat", "1",
                  "--partition", cluster["partition"], "--python", "python3",
                  "--results-dir", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    folder = run_folder(tmp_path)
    found = lab_records(folder)
    check_pinned(found, cluster)
    assert {r["variant"] for r in found} == {"pipe", "queue"}
    assert {r["cpus"] for r in found} == {1, 2}
    assert "Sending 2000 numbers to Pipe() took" in done.stdout
    assert (folder / "summary.csv").exists() and (folder / "report.html").exists()


@pytest.mark.testbed
def test_a_trial_past_its_time_limit_is_slurms_timeout(cluster, tmp_path):
    """Slurm counts limits in whole minutes and checks them every 30 s: about 60-90 s."""
    from lab.run.plan import make_point
    from lab.run.runner import make_record, trial_spec
    backend = slurm.SlurmBackend.connect({"results_dir": str(tmp_path), "backend_options": {
        "partition": cluster["partition"]}})
    backend.stage(lambda *_: None)
    point = make_point(experiment="probe", variant="sleep", limit="cpuset", cpus=1, cpuset=[0],
                       quota=None, placement="spread", workers=1, start_method="fork",
                       params={"seconds": 600}, image="slurm")
    outcome = backend.run(trial_spec(point, 5), point.cpuset, None, 5,
                          {slurm.RUN_LABEL: "timeout-test"}, "slurm")

    class Trial:
        round, repeat, warmup = 0, 0, False
    Trial.point = point
    record = records.validate_record(make_record("timeout-test", Trial, outcome, backend, "x"))
    assert record["ok"] is False and record["timed_out"] is True
    assert record["error"].startswith("TIMEOUT: Slurm ended the step at its time limit (--time 1 min")
    assert record["slurm_state"] == "TIMEOUT" and record["slurm_reason"] == "TimeLimit"
    assert record["node"] == cluster["node"] and record["slurm_job_id"]
    assert jobs_named("multicore-lab-timeout-test") == []


def refused(args, results, env=None):
    done = invoke("scale", "--backend", "slurm", *args, "--results-dir", str(results), env=env)
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert done.returncode == 2, done.stdout + done.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert not results.exists()  # nothing written
    return lines[0]


@pytest.mark.testbed
def test_no_usable_cluster_is_refused_in_one_line_before_anything_is_written(cluster, tmp_path):
    results = tmp_path / "results"
    assert "no Slurm here: sinfo" in refused([], results, env={"PATH": "/nonexistent"})
    assert "--partition nope: unknown partition; allowed: bench" in \
        refused(["--partition", "nope"], results)
    assert f"{cluster['cpus'] + 1} CPUs is outside this host; allowed: 1 to {cluster['cpus']}" in \
        refused(["--cpus", str(cluster["cpus"] + 1)], results)
    pid = int(Path(cluster["slurmctld_pid_file"]).read_text())
    os.kill(pid, signal.SIGTERM)  # the controller down, then up again whatever happens
    try:
        deadline = time.monotonic() + 30
        while slurm.controller_answers(timeout=5) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "the Slurm controller does not answer" in refused([], results)
    finally:
        up = subprocess.run([str(PROJECT_ROOT / "scripts" / "testbed" / "slurm"), "up"],
                            capture_output=True, text=True, timeout=300)
        assert up.returncode == 0, up.stdout + up.stderr
    assert slurm.controller_answers()

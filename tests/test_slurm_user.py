"""The slurm backend as a new user meets it: the README's commands typed in the root of a fresh
copy of the repository, with the default relative `results/` folder; the pre-run check built
and run as the trials are (a venv's python3 on PATH cannot pass it for an old node python3);
refusals in one line (a missing --python, a partition MaxTime shorter than the trial limit,
a results folder without file locks); lab.trial_time_limit_s reaching srun's --time.

`invoke` run in the copy finds the copy's tasks.py and puts its folder first on sys.path (the
venv's editable install of /work/main only answers after it), so the copy's own `lab` runs.
Sizes are kept small through INVOKE_* variables, as a user would.
"""

import errno
import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from lab import records
from lab.backends import slurm
from tests.conftest import PROJECT_ROOT, invoke
from tests.test_testbed import facts_of, need

pytestmark = pytest.mark.testbed

SMALL = {"INVOKE_LAB_REPEAT": "1", "INVOKE_SCALE_VARIANTS": "strong",
         "INVOKE_SCALE_WORK": "200000", "INVOKE_IPC_MESSAGES": "2000"}
ONE_CPU = {**SMALL, "INVOKE_SCALE_CPUS": "1"}


@pytest.fixture(scope="module")
def cluster():
    facts = facts_of("slurm", "--slurm")
    need(all(shutil.which(c) for c in slurm.COMMANDS),
         "Slurm's commands are not installed: run scripts/setup --slurm")
    need(slurm.controller_answers(), "slurmctld does not answer: run scripts/setup --slurm")
    return facts


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """The working tree as a fresh clone has it (tracked and new files, nothing ignored: no
    results, no venv), uncommitted changes included."""
    root = tmp_path_factory.mktemp("clone") / "multicore-lab"
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
    for name in filter(None, listed.stdout.split("\0")):
        source = PROJECT_ROOT / name
        if source.is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    return root


def one_line(done, code):
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert done.returncode == code, done.stdout + done.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def ends_in_one_line(done, code):
    """What was said before (the staged code) may stand; the refusal is the one last line."""
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert done.returncode == code, done.stdout + done.stderr
    assert lines[-1].startswith("error: ") and "Traceback" not in done.stderr, lines
    return lines[-1]


def listing(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def run_records(folder):
    return records.read_records(folder / "raw.jsonl", warn=pytest.fail)


def drop_last_trial(folder):
    """A run cut short: its last record gone, so --resume has a trial to run."""
    raw = folder / "raw.jsonl"
    lines = raw.read_text().splitlines(keepends=True)
    raw.write_text("".join(lines[:-1]))


def test_the_readme_commands_from_a_fresh_clone_with_the_default_results_folder(cluster, clone):
    """`invoke scale --backend slurm --partition bench` with results/ relative to the repo root:
    every trial ran (was: couldn't chdir to results/.code/<d>/results/.code/<d>, every trial
    failed); then the README's other commands as written."""
    results = clone / "results"
    done = invoke("scale", "--backend", "slurm", "--partition", cluster["partition"], cwd=clone,
                  env=SMALL)
    assert done.returncode == 0, done.stdout + done.stderr
    folder = (results / "latest").resolve()
    found = run_records(folder)
    assert found and all(r["ok"] for r in found), [(r["error"], r["stderr_tail"]) for r in found]
    assert {r["slurm_state"] for r in found} == {"COMPLETED"}
    meta = json.loads((folder / "meta.json").read_text())
    code_dir = Path(meta["backend"]["code_dir"])
    assert code_dir.is_absolute() and code_dir.parent == results / ".code"
    assert meta["status"] == "complete"

    before = listing(results)  # a Python the nodes lack: one line, exit 2, nothing written
    said = one_line(invoke("ipc", "--backend", "slurm", "--partition", cluster["partition"],
                           "--python", "/opt/python/3.13/bin/python3", cwd=clone, env=SMALL), 2)
    assert "--python /opt/python/3.13/bin/python3" in said and "No such file" in said
    assert listing(results) == before

    assert invoke("report", "latest", cwd=clone).returncode == 0

    drop_last_trial(folder)  # a run left unfinished: the backend failing now ends in exit 1
    said = one_line(invoke("scale", "--resume", "latest", "--python", "/nonexistent/python3",
                           cwd=clone), 1)
    assert "--python /nonexistent/python3" in said
    resumed = invoke("scale", "--resume", "latest", cwd=clone)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert len(run_records(folder)) == len(found) and all(r["ok"] for r in run_records(folder))


def test_a_python_the_nodes_lack_is_refused_in_one_line(cluster, tmp_path):
    """Raised after connecting (the pre-run check), so lab.commands.refusal says it: one line,
    exit 2 (was a BackendUnavailable traceback); the staged code is taken away again."""
    results = tmp_path / "results"
    said = one_line(invoke("ipc", "--backend", "slurm", "--partition", cluster["partition"],
                           "--python", "/nonexistent/python3", "--results-dir", str(results),
                           env=SMALL), 2)
    assert said.startswith("error: --python /nonexistent/python3: the pre-run check")
    assert "allowed: --python the nodes' interpreter" in said
    assert not results.exists()


def test_a_run_whose_every_trial_failed_exits_3_and_says_so(cluster, tmp_path):
    """An interpreter that passes the pre-run check but fails every trial (only a deliberately
    two-faced one can): the run is not a plain success."""
    python = tmp_path / "two-faced-python"
    python.write_text("#!/bin/sh\n# the check runs -c, a trial -m lab.experiments\n"
                      "if [ \"$1\" = \"-m\" ]; then echo 'broken on purpose' >&2; exit 1; fi\n"
                      "exec python3 \"$@\"\n")
    python.chmod(0o755)
    done = invoke("scale", "--backend", "slurm", "--partition", cluster["partition"],
                  "--python", str(python), "--results-dir", str(tmp_path / "results"),
                  env=ONE_CPU)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "measured trial(s) failed" in done.stdout
    found = run_records((tmp_path / "results" / "latest").resolve())
    assert found and not any(r["ok"] for r in found)


def test_the_pre_run_check_finds_the_python_the_trials_get(cluster, tmp_path):
    """The lab's own venv first on PATH, an old python3 behind it: the trials get the old one
    (the venv is not the nodes'), so the check must get it too and refuse the run."""
    venv, old = tmp_path / "venv" / "bin", tmp_path / "old" / "bin"
    venv.mkdir(parents=True)
    old.mkdir(parents=True)
    (venv / "python3").symlink_to(shutil.which("python3"))
    (old / "python3").write_text("#!/bin/sh\necho 'Python 3.6 stand-in: SyntaxError' >&2\n"
                                 "exit 1\n")
    (old / "python3").chmod(0o755)
    env = {**ONE_CPU, "VIRTUAL_ENV": str(venv.parent),
           "PATH": f"{venv}:{old}:{os.environ['PATH']}"}
    results = tmp_path / "results"
    said = one_line(invoke("scale", "--backend", "slurm", "--partition", cluster["partition"],
                           "--results-dir", str(results), env=env), 2)
    assert "pre-run check" in said and "Python 3.6 stand-in" in said
    assert not results.exists()  # nothing written: the staged code is taken away again


def test_the_trial_time_limit_setting_reaches_srun(cluster, tmp_path):
    """INVOKE_LAB_TRIAL_TIME_LIMIT_S=120: every trial's job asks --time=2 (was always 10)."""
    done = invoke("scale", "--backend", "slurm", "--partition", cluster["partition"],
                  "--results-dir", str(tmp_path), env={**ONE_CPU,
                                                       "INVOKE_LAB_TRIAL_TIME_LIMIT_S": "120"})
    assert done.returncode == 0, done.stdout + done.stderr
    folder = (tmp_path / "latest").resolve()
    assert json.loads((folder / "meta.json").read_text())["config"]["trial_time_limit_s"] == 120
    for record in run_records(folder):
        job = slurm.show("job", record["slurm_job_id"])
        assert job and job[0]["TimeLimit"] == "00:02:00", job
    bad = one_line(invoke("scale", "--backend", "slurm", "--results-dir", str(tmp_path / "x"),
                          env={"INVOKE_LAB_TRIAL_TIME_LIMIT_S": "ten"}), 2)
    assert "lab.trial_time_limit_s 'ten'" in bad and not (tmp_path / "x").exists()


@pytest.fixture
def short_partition(cluster):
    """A partition of the test bed's node whose MaxTime is one minute (taken away after)."""
    name = "mcl-short"
    subprocess.run(["scontrol", "delete", f"PartitionName={name}"], capture_output=True)
    made = subprocess.run(["scontrol", "create", f"PartitionName={name}",
                           f"Nodes={cluster['node']}", "MaxTime=1", "State=UP"],
                          capture_output=True, text=True, timeout=30)
    need(made.returncode == 0, f"cannot make a partition here: {made.stderr.strip()}")
    try:
        yield name
    finally:
        subprocess.run(["scontrol", "delete", f"PartitionName={name}"], capture_output=True,
                       timeout=30)


def test_a_partition_maxtime_below_the_trial_limit_is_refused(short_partition, tmp_path):
    results = tmp_path / "results"
    # a short pending limit: a job Slurm will never start (PartitionTimeLimit) is given up soon
    said = one_line(invoke("scale", "--backend", "slurm", "--partition", short_partition,
                           "--results-dir", str(results),
                           env={**ONE_CPU, "INVOKE_LAB_SLURM_PENDING_LIMIT_S": "15"}), 2)
    assert f"--partition {short_partition}: its MaxTime is 00:01:00" in said
    assert "INVOKE_LAB_TRIAL_TIME_LIMIT_S) up to 60 s" in said
    assert not results.exists()
    fits = invoke("scale", "--backend", "slurm", "--partition", short_partition, "--dry-run",
                  "--results-dir", str(results),
                  env={**ONE_CPU, "INVOKE_LAB_TRIAL_TIME_LIMIT_S": "60"})
    assert fits.returncode == 0, fits.stdout + fits.stderr


def test_results_without_file_locks_are_refused_in_one_line(cluster, tmp_path):
    """flock failing with ENOLCK (Lustre without -o flock), made so in the lab's own process:
    a new run and a --resume each end in one line; no run folder is left, none changed."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(textwrap.dedent(f"""
        import fcntl
        def flock(*args, **kwargs):  # as on a filesystem mounted without locks
            raise OSError({errno.ENOLCK}, "No locks available")
        fcntl.flock = flock
    """))
    no_locks = {**ONE_CPU, "PYTHONPATH": str(hook)}
    results = tmp_path / "results"
    args = ("scale", "--backend", "slurm", "--partition", cluster["partition"],
            "--results-dir", str(results))
    said = ends_in_one_line(invoke(*args, env=no_locks), 2)
    assert "without file locks (flock: No locks available)" in said
    assert not list(results.glob("*-scale-*")) and not (results / "latest").exists()

    done = invoke(*args, env=ONE_CPU)  # a run made with locks, then resumed without
    assert done.returncode == 0, done.stdout + done.stderr
    folder = (results / "latest").resolve()
    drop_last_trial(folder)
    meta = (folder / "meta.json").read_text()
    said = one_line(invoke("scale", "--resume", "latest", "--results-dir", str(results),
                           env=no_locks), 2)
    assert "without file locks" in said and (folder / "meta.json").read_text() == meta

"""A long run loses nothing, bad input touches nothing, a container reaches nothing (issue 7).

Real engine, real signals, real `invoke` subprocesses. Trials are tiny (--work 200000): these
tests are about what happens around trials, never about how long they take.

Random choices (after which record a run is cut) come from one seed, printed and kept in the
assertion messages: LAB_TEST_SEED=<seed> repeats a failing draw.
"""

import ctypes
import fcntl
import hashlib
import io
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from lab import records as trial_records
from lab.run import folder as run_folder, plan as plans
from lab.backends import RUN_LABEL
from tests.conftest import IN_CI, PROJECT_ROOT, invoke

HOST_CPUS = len(os.sched_getaffinity(0))
CPUS = "1,2" if HOST_CPUS >= 2 else "1"
SEED = int(os.environ.get("LAB_TEST_SEED") or random.SystemRandom().randrange(1, 10**6))
RNG = random.Random(SEED)
INVOKE = str(Path(sys.executable).with_name("invoke"))
TEST_REPOSITORY = "multicore-lab-test"  # tags these tests make and remove (never the shared ones)


def draw(low, high, what):
    """A seeded draw, said so that a failure can be repeated."""
    value = RNG.randint(low, high)
    print(f"{what}: {value} (LAB_TEST_SEED={SEED})")
    return value


def need(condition, reason):
    """Skip with the reason when this machine cannot do what a test needs; under CI=true fail."""
    if not condition:
        if IN_CI:
            pytest.fail(f"CI=true and {reason}")
        pytest.skip(reason)


# --- helpers -----------------------------------------------------------------------------------

def scale_args(results, image, repeat=2, *extra):
    return ["scale", "--cpus", CPUS, "--variants", "strong", "--work", "200000",
            "--repeat", str(repeat), "--seed", "11", "--backend", "docker", "--image", image,
            "--results-dir", str(results), *extra]


def start_invoke(*args, env=None):
    return subprocess.Popen([INVOKE, *args], cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


def raw_files(results):
    return sorted(Path(results).glob("*/raw.jsonl"))


def complete_lines(path):
    """The newline-terminated lines of `path` (a line being written is not counted)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    return data.split(b"\n")[:-1]


def wait_for_records(process, results, count, timeout=300):
    """Block until the run under `results` has `count` records; returns the raw.jsonl path and
    its bytes then. Fails (with the run's output) when the run ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for raw in raw_files(results):
            lines = complete_lines(raw)
            if len(lines) >= count:
                return raw, b"".join(line + b"\n" for line in lines)
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"the run ended (exit {process.returncode}) before record {count}:\n"
                        f"{out[-3000:]}\n{err[-3000:]}")
        time.sleep(0.02)
    process.kill()
    pytest.fail(f"no record {count} within {timeout} s")


def finish(process, timeout=300):
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def records_of(raw):
    """Every line of raw.jsonl parsed (a line that does not parse fails the test)."""
    return [json.loads(line) for line in Path(raw).read_bytes().split(b"\n") if line.strip()]


def plan_keys(folder):
    return {t.key for t in plans.plan_of(trial_records.read_plan(Path(folder) / run_folder.PLAN)).trials}


def measured_keys(raw):
    """Keys of the records that are measurements (not cut off), each counted."""
    keys = [trial_records.trial_key(r) for r in records_of(raw) if not trial_records.is_cut_off(r)]
    return keys


def labelled(engine, run_id):
    return engine.containers.list(all=True, filters={"label": f"{RUN_LABEL}={run_id}"})


def snapshot(path):
    """Every file under `path` (or the file itself) with a digest of its bytes."""
    path = Path(path)
    if not path.exists():
        return None
    if path.is_file():
        return {".": hashlib.sha256(path.read_bytes()).hexdigest()}
    return {str(p.relative_to(path)): (hashlib.sha256(p.read_bytes()).hexdigest()
                                       if p.is_file() else "dir")
            for p in sorted(path.rglob("*"))}


def error_lines(stderr):
    return [line for line in stderr.splitlines() if line.strip()]


def libc_umount(path):
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.umount2(str(path).encode(), 2)  # MNT_DETACH


@pytest.fixture(scope="module")
def test_image(engine, trial_image):
    """The trial image under a tag of this module's own, so that a run's image does not change
    while another engineer edits the in-container code (the image tag is a digest of it)."""
    tag = f"{TEST_REPOSITORY}:robust-{os.getpid()}"
    engine.images.get(trial_image.id).tag(tag)
    yield tag
    try:
        engine.images.remove(tag, noprune=True)  # untags: the image keeps its own tag
    except Exception:  # noqa: BLE001
        pass


# --- a test-owned Docker engine ----------------------------------------------------------------

class PrivateEngine:
    """A dockerd of the test's own: its data root, exec root, pid file and socket under a fresh
    folder, no bridge and no iptables, in a network namespace of its own (dockerd with
    --bridge=none deletes any `docker0` it sees, which would break the shared engine)."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="mcl-engine-", dir="/tmp"))
        self.socket = self.dir / "d.sock"
        self.host = f"unix://{self.socket}"
        self.process = None
        self.client = None

    def start(self, timeout=60):
        import docker
        command = ["unshare", "--net", "dockerd",
                   "--data-root", str(self.dir / "data"), "--exec-root", str(self.dir / "exec"),
                   "--pidfile", str(self.dir / "dockerd.pid"), "-H", self.host,
                   "--bridge=none", "--iptables=false", "--ip-masq=false"]
        self.log = open(self.dir / "dockerd.log", "wb")
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                client = docker.DockerClient(base_url=self.host, timeout=10)
                client.ping()
                self.client = client
                return self
            except Exception:  # noqa: BLE001 (not up yet)
                time.sleep(0.2)
        return None

    def log_tail(self):
        try:
            return (self.dir / "dockerd.log").read_text(errors="replace")[-1500:]
        except OSError:
            return ""

    def load(self, engine, image, tag):
        """`image` of the shared engine, saved and loaded here (no registry), tagged `tag`."""
        loaded = self.client.images.load(engine.images.get(image).save())
        repository, _, name = tag.partition(":")
        loaded[0].tag(repository, name)
        return loaded[0]

    def kill(self):
        """The engine dies (SIGKILL: no shutdown, no goodbye to its clients)."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def _our_processes(self):
        """Processes this engine started (its containerd and shims): their command lines name
        this engine's folder."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if str(self.dir).encode() in cmdline:
                found.append(int(entry.name))
        return found

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        for pid in self._our_processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.2)
        with open("/proc/mounts") as handle:
            mounts = [line.split()[1] for line in handle if str(self.dir) in line]
        for mount in reversed(mounts):
            libc_umount(mount)
        shutil.rmtree(self.dir, ignore_errors=True)


def private_engine_or_skip():
    reasons = []
    if os.geteuid() != 0:
        reasons.append("a second dockerd needs root")
    for tool in ("dockerd", "unshare"):
        if shutil.which(tool) is None:
            reasons.append(f"{tool} is not installed")
    need(not reasons, "a test-owned dockerd cannot run here: " + "; ".join(reasons))
    engine = PrivateEngine()
    if engine.start() is None:
        tail = engine.log_tail()
        engine.stop()
        need(False, f"a test-owned dockerd did not start: {tail.strip().splitlines()[-1:]}")
    return engine


@pytest.fixture(scope="module")
def quiet_engine(engine):
    """A test-owned engine nobody else uses: every container-create event on it is ours."""
    private = private_engine_or_skip()
    yield private
    private.stop()


# --- interruption and resume -------------------------------------------------------------------

@pytest.fixture(scope="module")
def interrupted(engine, test_image, tmp_path_factory):
    """A real `invoke scale` sent SIGINT after its k-th record (k drawn from the seed)."""
    results = tmp_path_factory.mktemp("interrupted")
    args = scale_args(results, test_image)
    total = 3 * 3 if CPUS == "1,2" else 2 * 3  # points x (warm-up + 2 rounds)
    k = draw(1, total - 2, "SIGINT after record")
    process = start_invoke(*args)
    raw, before = wait_for_records(process, results, k)
    process.send_signal(signal.SIGINT)
    code, out, err = finish(process)
    return {"results": results, "args": args, "k": k, "raw": raw, "before": before,
            "folder": raw.parent, "run_id": raw.parent.name, "code": code, "out": out,
            "err": err, "total": total}


def test_sigint_stops_the_run_keeps_every_record_and_says_how_to_resume(engine, interrupted):
    run = interrupted
    note = f"k={run['k']} LAB_TEST_SEED={SEED}\n{run['out'][-2000:]}\n{run['err'][-2000:]}"
    assert run["code"] == 130, note
    command = f"invoke scale --resume {run['run_id']} --results-dir {run['results']}"
    assert command in run["out"], note
    assert "Interrupted (SIGINT)" in run["out"], note
    meta = json.loads((run["folder"] / "meta.json").read_text())
    assert meta["status"] == "interrupted", note
    assert labelled(engine, run["run_id"]) == [], note
    data = run["raw"].read_bytes()
    assert data.startswith(run["before"]), note  # the records there at the signal, untouched
    assert data.endswith(b"\n")
    records = records_of(run["raw"])
    cut = [r for r in records if trial_records.is_cut_off(r)]
    assert len(cut) <= 1 and all(r["error"] == "interrupted (SIGINT)" for r in cut), note
    assert all(r["ok"] for r in records if not trial_records.is_cut_off(r)), note
    assert len(records) - len(cut) < run["total"]


RESUME_REFUSALS = [
    (["--repeat", "3"], "the plan differs from the run's: --repeat 3, the run has 2"),
    (["--seed", "12"], "the plan differs from the run's: --seed 12, the run has 11"),
    (["--cpus", "1", "--variants", "strong,weak"], "the plan differs from the run's: the flags give"),
    (["--work", "300000"], "the plan differs from the run's: the flags give"),
    (["--backend", "local"], "the backend differs from the run's: --backend local, the run ran on "
                             "docker"),
    (["--image", "multicore-lab-base:trixie"], "the plan differs from the run's"),
    (["--repeat", "0"], "--repeat '0': not allowed"),
]


@pytest.mark.parametrize("flags, message", RESUME_REFUSALS,
                         ids=[" ".join(f) for f, _ in RESUME_REFUSALS])
def test_resume_refuses_flags_that_change_the_plan_or_backend(interrupted, tmp_path, flags,
                                                              message):
    results = tmp_path / "copy"
    shutil.copytree(interrupted["results"], results, symlinks=True)
    before = snapshot(results)
    done = invoke("scale", "--resume", interrupted["run_id"], "--results-dir", str(results),
                  *flags)
    lines = error_lines(done.stderr)
    assert done.returncode == 2, done.stdout + done.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert snapshot(results) == before


def test_resume_refuses_when_the_runs_image_changed_or_is_gone(engine, interrupted, test_image,
                                                               tmp_path):
    results = tmp_path / "copy"
    shutil.copytree(interrupted["results"], results, symlinks=True)
    before = snapshot(results)
    original = engine.images.get(test_image)
    other = engine.images.get("multicore-lab-base:trixie")
    assert other.id != original.id
    repository, _, name = test_image.partition(":")
    try:
        other.tag(repository, name)  # the same name now means another image
        done = invoke("scale", "--resume", interrupted["run_id"], "--results-dir", str(results))
        lines = error_lines(done.stderr)
        assert done.returncode == 2 and len(lines) == 1, done.stdout + done.stderr
        assert f"the image differs from the run's: {test_image} is now" in lines[0]
        engine.images.remove(test_image, noprune=True)  # the name is gone
        done = invoke("scale", "--resume", interrupted["run_id"], "--results-dir", str(results))
        lines = error_lines(done.stderr)
        assert done.returncode == 2 and len(lines) == 1, done.stdout + done.stderr
        assert "is no longer on this engine" in lines[0]
    finally:
        original.tag(repository, name)
    assert engine.images.get(test_image).id == original.id
    assert snapshot(results) == before


def test_resume_runs_only_the_missing_and_cut_off_trials_then_the_run_is_whole(
        engine, interrupted):
    run = interrupted
    note = f"k={run['k']} LAB_TEST_SEED={SEED}"
    folder, raw = run["folder"], run["raw"]
    kept = [r for r in records_of(raw) if not trial_records.is_cut_off(r)]
    before = snapshot(run["results"])
    dry = invoke("scale", "--resume", run["run_id"], "--results-dir", str(run["results"]),
                 "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"{run['total'] - len(kept)} of {run['total']} trials to run" in dry.stdout, dry.stdout
    assert snapshot(run["results"]) == before  # a dry run writes nothing

    # What an uninterrupted run with the same flags would run: its plan, from --dry-run.
    plan_text = invoke(*[a for a in run["args"]], "--dry-run")
    assert plan_text.returncode == 0, plan_text.stderr
    point_ids = [line.split(":")[0].strip() for line in plan_text.stdout.splitlines()
                 if line.startswith("  ")]
    rounds = 3
    uninterrupted = {(p, r) for p in point_ids for r in range(rounds)}
    assert plan_keys(folder) == uninterrupted

    done = invoke("scale", "--resume", run["run_id"], "--results-dir", str(run["results"]))
    assert done.returncode == 0, note + done.stdout[-3000:] + done.stderr[-3000:]
    assert f"{run['total'] - len(kept)} of {run['total']} trials to run" in done.stdout
    data = raw.read_bytes()
    assert data.startswith(run["before"])  # appended to, never rewritten
    keys = measured_keys(raw)
    assert sorted(keys) == sorted(uninterrupted), note  # each trial measured exactly once
    loaded = trial_records.read_records(raw, warn=lambda *_: None)
    assert {trial_records.trial_key(r) for r in loaded} == uninterrupted
    assert len(loaded) == len(uninterrupted)
    assert all(r["ok"] for r in loaded), [r["error"] for r in loaded if not r["ok"]]
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["status"] == "complete" and meta["resumes"][0]["previous_status"] == "interrupted"
    assert meta["calibration"]["work"] == 200000
    assert (folder / "summary.csv").exists() and (folder / "report.md").exists()
    assert labelled(engine, run["run_id"]) == []
    again = invoke("scale", "--resume", run["run_id"], "--results-dir", str(run["results"]))
    assert again.returncode == 0 and "nothing to resume" in again.stdout
    assert measured_keys(raw) == keys


def test_sigterm_and_a_second_signal_end_the_run_cleanly(engine, test_image, tmp_path):
    process = start_invoke(*scale_args(tmp_path, test_image, 1))
    raw, before = wait_for_records(process, tmp_path, 1)
    process.send_signal(signal.SIGTERM)
    time.sleep(0.05)
    try:
        process.send_signal(signal.SIGINT)  # a second signal must not cut the cleanup short
    except ProcessLookupError:
        pass
    code, out, err = finish(process)
    assert code == 130, out + err
    assert "Interrupted (SIGTERM)" in out and "Traceback" not in err, out + err
    run_id = raw.parent.name
    assert f"invoke scale --resume {run_id} --results-dir {tmp_path}" in out
    assert json.loads((raw.parent / "meta.json").read_text())["status"] == "interrupted"
    assert raw.read_bytes().startswith(before)
    assert all(r["ok"] or r["error"] == "interrupted (SIGTERM)" for r in records_of(raw))
    assert labelled(engine, run_id) == []


def test_a_killed_run_loses_at_most_its_trial_in_flight_and_resume_cleans_up(engine, test_image,
                                                                            tmp_path):
    """SIGKILL: no cleanup at all in the process. The records on disk are whole, and --resume
    removes what the run left behind (by its label) and finishes it."""
    k = draw(1, 5, "SIGKILL after record")
    process = start_invoke(*scale_args(tmp_path, test_image))
    raw, before = wait_for_records(process, tmp_path, k)
    process.kill()
    process.communicate(timeout=60)
    run_id = raw.parent.name
    assert raw.read_bytes().startswith(before)
    assert json.loads((raw.parent / "meta.json").read_text())["status"] == "running"
    done = invoke("scale", "--resume", run_id, "--results-dir", str(tmp_path))
    assert done.returncode == 0, f"k={k} LAB_TEST_SEED={SEED}\n" + done.stdout + done.stderr
    assert raw.read_bytes().startswith(before)
    assert sorted(measured_keys(raw)) == sorted(plan_keys(raw.parent))
    assert json.loads((raw.parent / "meta.json").read_text())["status"] == "complete"
    assert labelled(engine, run_id) == []


def test_resume_keeps_the_calibrated_work_and_does_not_calibrate_again(engine, test_image,
                                                                      tmp_path):
    env = {"INVOKE_SCALE_TARGET_SECONDS": "0.05"}  # a tiny calibrated trial
    args = ["scale", "--cpus", "1", "--variants", "strong", "--work", "auto", "--repeat", "2",
            "--backend", "docker", "--image", test_image, "--results-dir", str(tmp_path)]
    process = start_invoke(*args, env=env)
    raw, before = wait_for_records(process, tmp_path, 1)
    process.send_signal(signal.SIGINT)
    code, out, err = finish(process)
    assert code == 130 and "calibrated:" in out, out + err
    work = json.loads((raw.parent / "meta.json").read_text())["calibration"]["work"]
    done = invoke("scale", "--resume", raw.parent.name, "--results-dir", str(tmp_path),
                  "--work", "auto", env=env)  # the run's own --work: accepted, not re-measured
    assert done.returncode == 0, done.stdout + done.stderr
    assert "calibrated:" not in done.stdout
    records = trial_records.read_records(raw, warn=lambda *_: None)
    assert {r["params"]["work"] for r in records} == {work}
    assert {trial_records.trial_key(r) for r in records} == plan_keys(raw.parent)


def test_resume_refuses_a_run_another_process_is_running(interrupted, tmp_path):
    results = tmp_path / "copy"
    shutil.copytree(interrupted["results"], results, symlinks=True)
    folder = results / interrupted["run_id"]
    with open(folder / run_folder.LOCK, "a+") as held:  # as the process running it holds it
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        before = snapshot(results)
        done = invoke("scale", "--resume", interrupted["run_id"], "--results-dir", str(results))
    lines = error_lines(done.stderr)
    assert done.returncode == 2 and len(lines) == 1, done.stdout + done.stderr
    assert f"run {interrupted['run_id']} is being run right now" in lines[0]
    assert snapshot(results) == before


# --- the engine goes away, the disk fills up ---------------------------------------------------

def test_engine_gone_mid_run_keeps_the_finished_trials_and_fails_the_run(engine, trial_image,
                                                                        tmp_path):
    private = private_engine_or_skip()
    try:
        tag = f"{TEST_REPOSITORY}:gone"
        private.load(engine, trial_image.id, tag)
        k = draw(1, 4, "engine killed after record")
        process = start_invoke(*scale_args(tmp_path, tag), env={"DOCKER_HOST": private.host})
        raw, before = wait_for_records(process, tmp_path, k)
        private.kill()
        code, out, err = finish(process, timeout=120)
    finally:
        private.stop()
    note = f"k={k} LAB_TEST_SEED={SEED}\n{out[-3000:]}\n{err[-3000:]}"
    print(out, err)
    assert code == 1, note
    assert "Run failed: the Docker engine stopped answering" in out, note
    assert f"Run {raw.parent.name} failed" in out and "Traceback" not in err, note
    meta = json.loads((raw.parent / "meta.json").read_text())
    assert meta["status"] == "failed" and "Docker engine stopped answering" in meta["failure"]
    data = raw.read_bytes()
    assert data.startswith(before) and data.endswith(b"\n"), note
    records = records_of(raw)
    assert len(records) >= k
    # The trial the engine took with it is not recorded as a (false) failed measurement.
    assert all(r["ok"] for r in records), [r["error"] for r in records]


@pytest.fixture
def tiny_tmpfs():
    need(os.geteuid() == 0, "mounting a tmpfs needs root")
    mount = Path(tempfile.mkdtemp(prefix="mcl-full-", dir="/tmp"))
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    need(done.returncode == 0, f"cannot mount a tmpfs: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], capture_output=True)
    if mount.is_mount():
        libc_umount(mount)
    shutil.rmtree(mount, ignore_errors=True)


def fill(folder):
    """Take every byte left on the tmpfs mounted at `folder` (and never on any other disk)."""
    with open("/proc/mounts") as handle:
        kinds = {line.split()[1]: line.split()[2] for line in handle}
    assert kinds.get(str(folder)) == "tmpfs", f"{folder} is not a tmpfs mount point: not filling it"
    chunk = 64 * 1024
    with open(folder / "filler", "wb", buffering=0) as handle:
        while chunk:
            try:
                handle.write(b"\0" * chunk)
            except OSError as error:
                assert error.errno == 28  # ENOSPC
                chunk //= 2


def test_full_disk_stops_the_run_cleanly_and_resume_finishes_it(engine, test_image, tiny_tmpfs):
    results = tiny_tmpfs / "results"
    k = draw(1, 4, "disk filled after record")
    process = start_invoke(*scale_args(results, test_image))
    raw, before = wait_for_records(process, results, k)
    fill(tiny_tmpfs)
    code, out, err = finish(process)
    note = f"k={k} LAB_TEST_SEED={SEED}\n{out[-3000:]}\n{err[-3000:]}"
    print(out, err)
    assert code == 1, note
    assert "Run failed: the disk is full (no space left on device" in out, note
    assert "Traceback" not in err, note
    data = raw.read_bytes()
    assert data.startswith(before) and data.endswith(b"\n"), note  # no half record
    records = records_of(raw)  # every line parses
    assert k <= len(records) < 9 and all(r["ok"] for r in records), note
    meta = json.loads((raw.parent / "meta.json").read_text())
    assert meta["status"] == "failed" and "disk is full" in meta["failure"]
    assert labelled(engine, raw.parent.name) == []

    (tiny_tmpfs / "filler").unlink()  # room again: the run can be finished
    done = invoke("scale", "--resume", raw.parent.name, "--results-dir", str(results))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert raw.read_bytes().startswith(data)
    assert sorted(measured_keys(raw)) == sorted(plan_keys(raw.parent))
    assert json.loads((raw.parent / "meta.json").read_text())["status"] == "complete"


# --- loading a run validates every line --------------------------------------------------------

def copy_run(interrupted, tmp_path):
    folder = tmp_path / interrupted["run_id"]
    shutil.copytree(interrupted["folder"], folder)
    for drawn in ("summary.csv", "report.md", "speedup.png", "efficiency.png"):
        (folder / drawn).unlink(missing_ok=True)
    return folder


def test_report_skips_a_truncated_last_line_and_says_which(interrupted, tmp_path):
    folder = copy_run(interrupted, tmp_path)
    raw = folder / "raw.jsonl"
    lines = raw.read_bytes().splitlines(keepends=True)
    with open(raw, "ab") as handle:  # a crash in the middle of writing a record
        handle.write(lines[0][: len(lines[0]) // 2])
    done = invoke("report", str(folder))
    assert done.returncode == 0, done.stdout + done.stderr
    assert (f"{raw}:{len(lines) + 1}: damaged line (the last one, cut off: a crash mid-write?), "
            f"skipped") in done.stdout
    assert (folder / "report.md").exists() and (folder / "summary.csv").exists()
    assert "Traceback" not in done.stderr


def test_report_and_resume_refuse_a_record_of_an_unknown_schema(interrupted, tmp_path):
    folder = copy_run(interrupted, tmp_path)
    raw = folder / "raw.jsonl"
    records = records_of(raw)
    records[-1]["schema"] = 99
    raw.write_text("".join(json.dumps(r) + "\n" for r in records))
    before = snapshot(folder)
    expected = f"{raw}:{len(records)}: record schema 99 is not 1, which this lab reads"
    for command in (["report", str(folder)], ["scale", "--resume", str(folder)]):
        done = invoke(*command)
        lines = error_lines(done.stderr)
        assert done.returncode == 2, done.stdout + done.stderr
        assert lines == [f"error: {expected}"], lines
    assert snapshot(folder) == before


# --- bad input touches nothing -----------------------------------------------------------------

NOBODY = "unix:///tmp/mcl-nobody-answers.sock"
BAD_INPUTS = [
    # unknown option values
    (["--backend", "cloud"], "--backend 'cloud': unknown; allowed: auto, docker, local"),
    (["--placement", "diagonal"], "--placement 'diagonal': unknown; allowed: spread, compact"),
    (["--start-method", "clone"], "--start-method 'clone': unknown; allowed: fork, spawn, "
                                  "forkserver"),
    (["--variants", "strong,warp"], "--variants 'warp': unknown; allowed: "),
    (["--workers", "many"], "--workers 'many': not allowed; allowed: 'cpus', 'default' or whole"),
    (["--work", "lots"], "--work 'lots': not allowed; allowed: auto, seed, or a whole number"),
    # CPU counts outside the host
    (["--cpus", "0"], "--cpus '0': 0 CPUs is outside this host; allowed: 1 to"),
    (["--cpus", f"1,{HOST_CPUS + 1}"], f"{HOST_CPUS + 1} CPUs is outside this host; allowed: 1 "
                                       f"to {HOST_CPUS}"),
    (["--quota", str(HOST_CPUS + 1)], f"is outside 0.01 to {HOST_CPUS} CPUs"),
    # non-numeric or empty list items
    (["--cpus", "a,b"], "--cpus 'a,b': 'a' is not a whole number; allowed: whole CPU counts"),
    (["--cpus", "1.5"], "'1.5' is not a whole number"),
    (["--quota", "half"], "--quota 'half': 'half' is not a number; allowed: CPU quotas"),
    (["--workers", "2,x"], "--workers 'x': not allowed"),
    (["--repeat", "two"], "--repeat 'two': not allowed; allowed: a whole number of at least 1"),
    (["--seed", "abc"], "--seed 'abc': not allowed; allowed: a whole number"),
    (["--cpus", "1,,2"], "--cpus '1,,2': empty item; allowed: a comma-separated list"),
    (["--cpus="], "--cpus '': empty item"),
    (["--variants", "strong,"], "--variants 'strong,': empty item"),
    (["--quota", "0.5,,1"], "--quota '0.5,,1': empty item"),
    # zero or negative repeats, counts and sizes
    (["--repeat", "0"], "--repeat '0': not allowed; allowed: a whole number of at least 1"),
    (["--repeat=-1"], "--repeat '-1': not allowed"),
    (["--workers", "0"], "--workers '0': not allowed"),
    (["--workers=-2"], "--workers '-2': not allowed"),
    (["--work", "0"], "--work '0': not allowed"),
    (["--work=-3"], "--work '-3': not allowed"),
    (["--quota", "0"], "--quota '0': 0 is outside 0.01"),
    (["--quota=-1"], "--quota '-1': -1 is outside 0.01"),
    # a results folder that is not writable
    (["READ-ONLY"], "is not writable; pass --results-dir a folder you can write"),
    (["UNDER-A-FILE"], "is not writable; pass --results-dir a folder you can write"),
    # an image name that does not parse
    (["--image", "Not An Image!"], "--image 'Not An Image!': not an image name; allowed: names"),
    (["--base-image", "UPPER/Case:x"], "--base-image 'UPPER/Case:x': not an image name"),
    (["--base-image", "multicore-lab-base:trixie,"], "--base-image 'multicore-lab-base:trixie,': "
                                                     "empty item"),
    # a Docker host that does not answer
    (["--backend", "docker", "DOCKER_HOST=" + NOBODY], "--backend docker: the Docker engine does "
                                                       "not answer"),
    (["--backend", "auto", "DOCKER_HOST=" + NOBODY], "--backend auto: the Docker engine does not "
                                                     "answer"),
    # a run to resume that does not exist
    (["--resume", "20990101T000000Z-scale-0000"], "--resume '20990101T000000Z-scale-0000': no "
                                                  "such run; allowed: a run id under"),
    (["--resume="], "--resume '': empty; allowed: a run id"),
]


@pytest.fixture
def results_place(request, tmp_path):
    """Where the row's run would go, and what is there before: a folder that does not exist
    yet, a read-only tmpfs, or a path under a regular file."""
    kind = request.param
    if kind == "READ-ONLY":
        need(os.geteuid() == 0, "mounting a read-only tmpfs needs root")
        place = tmp_path / "read-only"
        place.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(place)],
                              capture_output=True, text=True)
        need(done.returncode == 0, f"cannot mount a read-only tmpfs: {done.stderr.strip()}")
        yield place, place
        subprocess.run(["umount", str(place)], capture_output=True)
    elif kind == "UNDER-A-FILE":
        regular = tmp_path / "a-file"
        regular.write_text("not a folder\n")
        yield regular / "results", regular
    else:
        yield tmp_path / "results", tmp_path / "results"


@pytest.mark.parametrize("args, message, results_place",
                         [(a, m, a[0] if a[0] in ("READ-ONLY", "UNDER-A-FILE") else "new")
                          for a, m in BAD_INPUTS],
                         ids=[" ".join(a) for a, _ in BAD_INPUTS], indirect=["results_place"])
def test_bad_input_is_refused_in_one_line_before_anything_runs(quiet_engine, args, message,
                                                               results_place):
    results, watched = results_place
    env = {"DOCKER_HOST": quiet_engine.host}  # an engine of the test's own: its events are ours
    flags = []
    for arg in args:
        if arg.startswith("DOCKER_HOST="):
            env["DOCKER_HOST"] = arg.split("=", 1)[1]
        elif arg not in ("READ-ONLY", "UNDER-A-FILE"):
            flags.append(arg)
    before = snapshot(watched)
    since = time.time()
    done = invoke("scale", "--results-dir", str(results), *flags, env=env, timeout=120)
    lines = error_lines(done.stderr)
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert done.stdout == ""
    assert snapshot(watched) == before  # no run folder; for a new place, not even the folder
    created = list(quiet_engine.client.events(since=since - 1, until=time.time(), decode=True,
                                              filters={"type": "container", "event": "create"}))
    assert created == []


# --- nothing reached ---------------------------------------------------------------------------

def probe_point(variant, params=None, cpuset=(0,)):
    return plans.make_point(experiment="probe", variant=variant, limit="cpuset",
                            cpus=len(cpuset), cpuset=list(cpuset), quota=None,
                            placement="spread", workers=1, start_method="fork",
                            params=params or {})


def interface_ipv4(name):
    """The IPv4 address of a host network interface (SIOCGIFADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as handle:
        packed = fcntl.ioctl(handle.fileno(), 0x8915, struct.pack("256s", name.encode()[:15]))
    return socket.inet_ntoa(packed[20:24])


class Listener:
    """A TCP listener on every host address, on a free port; remembers who connected."""

    def __init__(self):
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("0.0.0.0", 0))
        self.server.listen(8)
        self.server.settimeout(0.1)
        self.port = self.server.getsockname()[1]
        self.peers = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping.is_set():
            try:
                connection, peer = self.server.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.peers.append(peer[0])
            connection.close()

    def close(self):
        self.stopping.set()
        self.thread.join(timeout=5)
        self.server.close()


@pytest.fixture
def listener():
    server = Listener()
    yield server
    server.close()


@pytest.fixture(scope="module")
def owned_home_image(engine, trial_image):
    """The trial image plus one folder the trial user owns (/home/trial), so that a write the
    user's permissions allow shows what the read-only root alone refuses."""
    dockerfile = (f"FROM {trial_image.tag}\nUSER 0:0\n"
                  f"RUN mkdir -p /home/trial && chown 10001:10001 /home/trial\nUSER 10001:10001\n")
    tag = f"{TEST_REPOSITORY}:isolation-{os.getpid()}"
    image, _ = engine.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True,
                                   network_mode="none")
    yield image
    try:
        engine.images.remove(image.id, force=True)  # this test's own image, nothing else
    except Exception:  # noqa: BLE001
        pass


def run_container(client, image_id, spec, options):
    """A control container: `options` as given; returns the probe's check."""
    container = client.containers.create(image_id, command=[json.dumps(spec)], detach=True,
                                         **options)
    try:
        container.start()
        status = container.wait(timeout=60)
        out = container.logs(stdout=True, stderr=False).decode(errors="replace")
        err = container.logs(stdout=False, stderr=True).decode(errors="replace")
    finally:
        container.remove(force=True)
    result = json.loads(out.strip().splitlines()[-1])
    assert status["StatusCode"] == 0 and result["ok"], (result, err)
    return result["check"]


def test_trial_reaches_no_network_and_cannot_write_its_root_against_controls(
        engine, owned_home_image, listener):
    from lab.backends.docker import DockerBackend
    from lab.backends.image import ImageInfo
    from lab.run.runner import trial_spec
    bridge = engine.networks.get("bridge").attrs.get("Options", {}).get(
        "com.docker.network.bridge.name", "docker0")
    host = interface_ipv4(bridge)
    spec = trial_spec(probe_point("isolation", {"host": host, "port": listener.port,
                                                "paths": ["/", "/home/trial", "/tmp"]}))
    backend = DockerBackend(engine, {"memory_limit": "256m", "shm_size": "64m"})
    backend.images = {"isolation": ImageInfo(owned_home_image.id, owned_home_image.tags[0],
                                             "test", None)}
    options = backend.container_options([0], None, {RUN_LABEL: "test-isolation"})

    # Controls: the same image, spec and options but for networking / the read-only root.
    networked = run_container(engine, owned_home_image.id, spec,
                              {**options, "network_mode": "bridge"})
    assert networked["connect"] == "connected", networked
    deadline = time.monotonic() + 5
    while not listener.peers and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(listener.peers) == 1
    writable = run_container(engine, owned_home_image.id, spec, {**options, "read_only": False})
    assert writable["writes"]["/home/trial"] == "ok" and "rw" in writable["root_mount"], writable

    # The trial itself, as every trial runs (DockerBackend.run with container_options).
    outcome = backend.run(spec, [0], None, 60, {RUN_LABEL: "test-isolation"}, "isolation")
    assert outcome.error is None, outcome.stderr_tail
    check = outcome.result["check"]
    assert check["connect"] in ("ENETUNREACH", "EHOSTUNREACH", "timeout"), check
    time.sleep(0.5)
    assert len(listener.peers) == 1  # only the control ever reached the host
    assert "ro" in check["root_mount"] and "rw" not in check["root_mount"], check
    assert check["owned"]["/home/trial"] is True  # the user's own folder ...
    assert check["writes"]["/home/trial"] == "EROFS"  # ... is read-only all the same
    assert check["writes"]["/"] == "EROFS"
    assert check["writes"]["/tmp"] == "ok"  # the tmpfs is where a trial writes
    assert check["uid"] != 0 and check["euid"] != 0 and check["uid"] == 10001
    assert int(check["status"]["CapEff"], 16) == 0 and check["status"]["NoNewPrivs"] == "1"
    assert engine.containers.list(all=True, filters={"label": f"{RUN_LABEL}=test-isolation"}) == []


def test_trial_container_has_its_limits_and_no_host_path(engine, trial_image):
    from lab.backends.docker import DockerBackend
    backend = DockerBackend(engine, {"memory_limit": "256m", "shm_size": "64m", "pids_limit": 128})
    container = engine.containers.create(
        trial_image.id, command=["{}"],
        **backend.container_options([0], None, {RUN_LABEL: "test-isolation"}))
    try:
        attrs = container.attrs
    finally:
        container.remove(force=True)
    host = attrs["HostConfig"]
    assert host["NetworkMode"] == "none" and host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"] and not host.get("CapAdd") and not host["Privileged"]
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["PidsLimit"] == 128 and host["Memory"] == 256 * 2**20
    assert host["MemorySwap"] == host["Memory"] and host["ShmSize"] == 64 * 2**20
    assert not host.get("Binds") and not host.get("Mounts") and attrs["Mounts"] == []
    assert list(host["Tmpfs"]) == ["/tmp"]
    assert attrs["Config"]["User"] == "10001:10001"


INJECTIONS = {"substitution": "$(touch /tmp/pwned)", "chain": "; rm -rf / ;",
              "backticks": "`touch /tmp/pwned`", "quotes": "'\"\\", "lines": "a\nb && touch x"}


def test_a_spec_with_shell_text_reaches_the_trial_verbatim(docker_backend):
    from lab.run.runner import trial_spec
    spec = trial_spec(probe_point("echo", {**INJECTIONS, "marker": "/tmp/pwned"}))
    outcome = docker_backend.run(spec, [0], None, 60)
    assert outcome.error is None, outcome.stderr_tail
    check = outcome.result["check"]
    assert check["argv"] == [json.dumps(spec)]  # one argument, the JSON, untouched
    assert check["params"] == spec["params"]
    assert check["marker_exists"] is False  # no shell ever ran it (/tmp is the trial's tmpfs)


def test_the_local_backend_passes_the_spec_as_data_too(tmp_path):
    from lab.backends.local import LocalBackend
    from lab.run.runner import trial_spec
    marker = tmp_path / "pwned"
    params = {"substitution": f"$(touch {marker})", "chain": f"; touch {marker} ;",
              "backticks": f"`touch {marker}`", "marker": str(marker)}
    spec = trial_spec(probe_point("echo", params))
    outcome = LocalBackend({}).run(spec, [0], None, 60)
    assert outcome.error is None, outcome.stderr_tail
    assert outcome.result["check"]["argv"] == [json.dumps(spec)]
    assert outcome.result["check"]["params"] == params
    assert not marker.exists()

"""What the robustness tests share (issue 7): their seed, a run started and watched through
real `invoke` subprocesses, its records read back, the trial image under a tag of their own,
and a test-owned Docker engine. The tests are split by what they hold: test_robustness_resume
(interruption, --resume, loading a run), test_robustness_failures (the engine gone, a full
disk), test_robustness_bad_input (bad input touches nothing), test_robustness_isolation (a
trial reaches nothing).

Random choices (after which record a run is cut) come from one seed, printed and kept in the
assertion messages: LAB_TEST_SEED=<seed> repeats a failing draw.
"""

import ctypes
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from lab import records as trial_records
from lab.run import folder as run_folder, plan as plans
from lab.backends import RUN_LABEL
from tests.conftest import IN_CI, PROJECT_ROOT

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


"""The slurm backend: each trial is one Slurm job of one step with exactly the point's CPUs.

    srun -p PARTITION -N1 -n1 -c N --cpu-bind=cores --exact [--threads-per-core=1]
         --job-name multicore-lab-<run id> --time <trial limit, whole minutes> -v
         <python> -m lab.experiments '<trial spec>'

Pinning is the scheduler's: task/affinity sets the step's affinity and task/cgroup confines it to
the step's cpuset cgroup, so the CPU ids of the plan mean nothing on a node. The trial itself
checks what it got (lab.experiments.__main__: `expect_cpu_count`, `expect_cgroup_cpuset`): as many
CPUs as the point asks for, and an affinity that is the step cgroup's cpuset. No Docker on the
nodes (a container started by a job is dockerd's child, outside the step's cgroup: not pinned);
the trial runs the standard-library experiment code with the node's Python (`--python`).

The code reaches the nodes through the results folder (a shared filesystem, as on every
cluster): lab/__init__.py, lab/sysinfo.py and lab/experiments/ are copied once per code version
into <results dir>/.code/<digest>/ (lab.slurm.code_dir elsewhere) and run from there; nothing
is installed on a node. The digest is the run's "image" identity: --resume refuses changed code.

One job per trial, through plain srun/scontrol/scancel (not submitit: it pickles Python
callables and needs itself and cloudpickle importable by the node's Python, which is exactly what
this backend must not ask of a node; a trial here is a command line). A job per trial maps every
trial to Slurm's own record of it (JobState, Reason, kept by `scontrol show job` for MinJobAge,
no accounting database needed), needs no allocation sized and timed in advance, and lets
`--resume` start from nothing. Its cost is one scheduling pass per trial (about 0.1 s here; on a
busy cluster a queue wait, which is recorded as `queue_seconds` and is never trial time: the
trial's clock runs inside the step, and `host_seconds` starts when the step is launched).

Slurm's verdicts become the trial's error: TIMEOUT (past --time), CANCELLED, PREEMPTED,
NODE_FAIL, OUT_OF_MEMORY, DEADLINE; a job still pending after lab.slurm.pending_limit_s is
cancelled and recorded with Slurm's pending reason. Ctrl-C cancels this run's jobs by name
(`scancel --name multicore-lab-<run id> --user <you>`), no other job.
"""

import copy
import getpass
import hashlib
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from lab.backends import (RUN_LABEL, STDERR_TAIL_CHARS, Backend, BackendUnavailable,
                          ImageMismatch, outcome_from)

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
COMMANDS = ("sinfo", "srun", "scontrol", "squeue", "scancel")
JOB_PREFIX = "multicore-lab-"
PREPARE_JOB = JOB_PREFIX + "prepare"
IMAGE_NAME = "slurm"               # what points name as their image on this backend
PENDING_LIMIT_S = 1800             # lab.slurm.pending_limit_s: a trial's job waits this long
SLURM_GRACE_S = 180                # past Slurm's own limit, the host cancels a step itself
# Slurm's final job states that are a verdict on the trial (others: the trial's own result)
VERDICTS = {
    "TIMEOUT": "TIMEOUT: Slurm ended the step at its time limit",
    "CANCELLED": "CANCELLED: the job was cancelled",
    "PREEMPTED": "PREEMPTED: the job was preempted by another",
    "NODE_FAIL": "NODE_FAIL: the node failed while the step ran",
    "OUT_OF_MEMORY": "OUT_OF_MEMORY: the step was killed at its memory limit",
    "DEADLINE": "DEADLINE: the job reached its deadline",
    "BOOT_FAIL": "BOOT_FAIL: the node failed to boot",
}
UNUSABLE_NODE = {"DOWN", "DRAIN", "DRAINED", "DRAINING", "FAIL", "FAILING", "FUTURE",
                 "NOT_RESPONDING", "INVAL", "POWERED_DOWN", "POWER_DOWN", "NO_RESPOND"}
# srun's input variables that say "inside an allocation": stripped, so that every trial is a
# job of its own even when the lab itself runs inside salloc or sbatch
ALLOCATION_VARIABLES = ("SLURM_JOB_ID", "SLURM_JOBID", "SLURM_STEP_ID", "SLURM_STEPID",
                        "SLURM_NODELIST", "SLURM_JOB_NODELIST", "SLURM_NNODES",
                        "SLURM_JOB_NUM_NODES", "SLURM_NTASKS", "SLURM_NPROCS",
                        "SLURM_CPUS_PER_TASK", "SRUN_CPUS_PER_TASK", "SLURM_TASKS_PER_NODE",
                        "SLURM_JOB_CPUS_PER_NODE", "SLURM_CPU_BIND", "SLURM_DISTRIBUTION",
                        "SLURM_MEM_PER_CPU", "SLURM_MEM_PER_NODE", "SLURM_EXACT")
_PARTITION_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
# srun -v: "srun: jobid 26: nodes(1):`vm', ..." / "srun: job 30 queued and waiting ..." /
# "srun: launching StepId=26.0 on host vm, 1 tasks: 0"
_JOB_LINE = re.compile(r"^srun: job(?:id)? (\d+)[: ]")
_LAUNCH_LINE = re.compile(r"^srun: launching StepId=(\d+)\.(\d+) on host (\S+?),")
_CANCELLED_LINE = re.compile(r"\*\*\* (?:STEP|JOB) (\d+)(?:\.\d+)? ON (\S+) CANCELLED AT \S+"
                             r"(?: DUE TO ([A-Z ]+?))? \*\*\*")
_DUE_TO = {"TIME LIMIT": "TIMEOUT", "PREEMPTION": "PREEMPTED", "NODE FAILURE": "NODE_FAIL"}


# --- talking to Slurm ----------------------------------------------------------------------------

def _command(args, timeout=30):
    """A Slurm client command's CompletedProcess; BackendUnavailable when it cannot run."""
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise BackendUnavailable(f"no Slurm here: {args[0]} is not on PATH") from None
    except subprocess.TimeoutExpired:
        raise BackendUnavailable(f"the Slurm controller does not answer: `{' '.join(args[:3])}` "
                                 f"took over {timeout} s") from None


def _first_line(done):
    text = (done.stderr or done.stdout or "").strip()
    return text.splitlines()[0][:300] if text else f"exit status {done.returncode}"


def parse_fields(line):
    """`scontrol show ... -o` output (Key=Value ...) as a dict (values may hold spaces only in
    the last fields, which this backend does not read)."""
    fields = {}
    for word in line.split():
        key, sep, value = word.partition("=")
        if sep and key not in fields:
            fields[key] = value
    return fields


def show(kind, name=None, timeout=30):
    """Records of `scontrol show KIND [NAME] -o`, each a dict; [] when there is none."""
    done = _command(["scontrol", "show", kind, *([str(name)] if name else []), "-o"], timeout)
    if done.returncode != 0:
        return []
    return [parse_fields(line) for line in done.stdout.splitlines() if "=" in line]


def controller_answers(timeout=15):
    try:
        done = _command(["scontrol", "ping"], timeout)
    except BackendUnavailable:
        return False
    return "is UP" in done.stdout


def node_usable(state):
    words = set(state.rstrip("*~#!%$@^-").replace("*", "").split("+"))
    return not (words & UNUSABLE_NODE) and not state.endswith("*")


def time_limit_minutes(time_limit_s):
    """Slurm counts time limits in whole minutes: the lab's trial limit, rounded up."""
    return max(1, math.ceil(float(time_limit_s) / 60))


def minimal_env(environ=None):
    """The environment srun exports to the step: the user's (modules, accounts: SLURM_ACCOUNT
    and the like stay), without this lab's virtual environment and without an enclosing
    allocation's variables."""
    environ = dict(os.environ if environ is None else environ)
    venv = environ.pop("VIRTUAL_ENV", None)
    own_bin = {os.path.join(venv, "bin")} if venv else set()
    if sys.prefix != getattr(sys, "base_prefix", sys.prefix):  # the lab runs in a venv
        own_bin.add(os.path.join(sys.prefix, "bin"))
    environ["PATH"] = os.pathsep.join(p for p in environ.get("PATH", "/usr/bin:/bin").split(
        os.pathsep) if p and p not in own_bin) or "/usr/bin:/bin"
    for name in ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", *ALLOCATION_VARIABLES):
        environ.pop(name, None)
    return environ


# --- the trial code on the shared filesystem --------------------------------------------------------

def trial_files(root):
    from lab.backends.image import in_container_files  # one definition of "the trial's code"
    return in_container_files(root)


def code_digest(root):
    digest = hashlib.sha256()
    for path in trial_files(root):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def stage_code(root, folder):
    """Copy the trial code under `folder`/<digest>/lab (once per digest, atomically); returns
    that folder and the digest."""
    digest = code_digest(root)
    target = Path(folder) / digest
    if target.is_dir() and code_digest(target) == digest:
        return target, digest
    Path(folder).mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{digest}-", dir=folder))
    try:
        for path in trial_files(root):
            copy = temporary / path.relative_to(root)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, copy)
        temporary.chmod(0o755)
        if target.exists():  # a damaged copy: replaced whole
            shutil.rmtree(target)
        try:
            os.rename(temporary, target)
        except OSError:
            if not (target.is_dir() and code_digest(target) == digest):  # not another lab's race
                raise
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return target, digest


# What the prepare step prints on a node: its Python, CPU, kernel and cgroup, and that the staged
# trial code imports there (a Python too old for it is refused before the run).
NODE_PROBE = r"""
import json, os, platform, socket, sys
import lab.experiments, lab.sysinfo
model = None
try:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip(); break
except OSError:
    pass
cgroup = lab.sysinfo.find_cgroup()
print(json.dumps({"node": socket.gethostname(), "python": platform.python_version(),
                  "executable": sys.executable, "cpu_model": model, "kernel": platform.release(),
                  "architecture": platform.machine(),
                  "cgroup_version": cgroup.version if cgroup else None,
                  "affinity": sorted(os.sched_getaffinity(0))}))
"""


# --- one trial's srun, watched -------------------------------------------------------------------

class _Step:
    """An srun process and what its stderr said, read as it comes (job id, launch, node)."""

    def __init__(self, command, env, cwd):
        self.submitted = time.perf_counter()
        self.job_id = None
        self.step_id = None
        self.node = None
        self.launched = None        # perf_counter when srun launched the step
        self.queued = False
        self.stdout, self.stderr = [], []
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, env=env, cwd=cwd,
                                        start_new_session=True)  # Ctrl-C reaches the lab only
        self.readers = [threading.Thread(target=self._read_stdout, daemon=True),
                        threading.Thread(target=self._read_stderr, daemon=True)]
        for reader in self.readers:
            reader.start()

    def _read_stdout(self):
        for line in self.process.stdout:
            self.stdout.append(line)

    def _read_stderr(self):
        for line in self.process.stderr:
            self.stderr.append(line)
            job = _JOB_LINE.match(line)
            if job and self.job_id is None:
                self.job_id = job.group(1)
            if "queued and waiting for resources" in line:
                self.queued = True
            launch = _LAUNCH_LINE.match(line)
            if launch and self.launched is None:
                self.launched = time.perf_counter()
                self.job_id, self.step_id, self.node = launch.groups()

    def wait(self, timeout):
        try:
            self.process.wait(timeout=max(0.0, timeout))
            return True
        except subprocess.TimeoutExpired:
            return False

    def finish(self, timeout=None):
        self.process.wait(timeout=timeout)
        for reader in self.readers:
            reader.join(timeout=10)
        return "".join(self.stdout), "".join(self.stderr)


def trial_stderr(stderr):
    """The step's own stderr and srun's errors, without srun -v's chatter."""
    kept = [line for line in stderr.splitlines()
            if not line.startswith("srun: ") or re.search(r"error|abort|cancel|terminat|kill",
                                                          line, re.IGNORECASE)]
    return "\n".join(kept)


class SlurmBackend(Backend):
    name = "slurm"
    engine_words = "the Slurm controller"
    trial_overhead_s = 0.3  # srun's scheduling pass and step launch, interpreter start (~0.2 s here)
    supports_quota = False

    def __init__(self, config, partition, nodes, node_cpus, python="python3", per_node=1):
        super().__init__(config)
        self.partition = partition
        self.nodes = nodes                  # {name: scontrol's fields} of the usable nodes
        self.node_cpus = node_cpus          # the fields of the smallest usable node
        self.python = python
        self.per_node = per_node
        settings = config.get("slurm") or {}
        self.pending_limit_s = float(settings.get("pending_limit_s") or PENDING_LIMIT_S)
        self.code_root = Path(settings.get("code_dir") or
                              Path(config.get("results_dir") or "results") / ".code")
        self.code_dir = None                # set by stage(): <code_root>/<digest>
        self.digest = None
        self.node_facts = {}                # what the prepare step saw on a node
        self.user = getpass.getuser()
        self.env = minimal_env()
        self.version = None
        self.lane = None                    # set on a lane's view (on_lane)
        self._lanes = {}                    # point_id -> lane
        self._views = {}                    # lane -> the backend view that runs it

    # --- lanes: how many trials at once, and where --------------------------------------------------

    def slots(self):
        """Trials at once: one per node (each job takes its node whole: --exclusive), or
        --per-node N on each node (each lane bound to its node: --nodelist)."""
        return len(self.nodes) * self.per_node

    def lane_of(self, point):
        """The points of the run dealt over the slots in the order the runner asks (the
        plan's); one slot: the one sequential lane. With --per-node 1 any node serves any lane,
        so a point's trials land on whichever nodes are free."""
        if self.slots() == 1:
            return None
        return self._lanes.setdefault(point.point_id, len(self._lanes) % self.slots())

    def on_lane(self, lane):
        if lane is None:
            return self
        if lane not in self._views:
            view = copy.copy(self)
            view.lane = lane
            self._views[lane] = view
        return self._views[lane]

    def host_words(self, lane):
        node = self._lane_node(lane)
        return f"Slurm lane {lane}{f' (node {node})' if node else ''}"

    def _lane_node(self, lane):
        if lane is None or self.per_node == 1:
            return None
        return sorted(self.nodes)[int(lane) // self.per_node]

    # --- connecting -------------------------------------------------------------------------------

    @classmethod
    def connect(cls, config):
        """A backend on the partition asked for (or the default one), or BackendUnavailable
        saying in one line what is missing: Slurm's commands, the controller, the partition, a
        usable node."""
        options = config.get("backend_options") or {}
        partition = str(options.get("partition") or "").strip()
        python = str(options.get("python") or "python3").strip()
        per_node = options.get("per_node") or 1
        if partition and not _PARTITION_NAME.match(partition):
            raise BackendUnavailable(f"--partition {partition!r}: not a partition name; allowed: "
                                     f"letters, digits, '_', '.', '-'", hint="")
        if not python or any(c.isspace() for c in python):
            raise BackendUnavailable(f"--python {python!r}: not a command; allowed: the node's "
                                     f"interpreter, e.g. python3 or /opt/python/3.13/bin/python3",
                                     hint="")
        try:
            per_node = int(str(per_node).strip())
            assert per_node >= 1
        except (ValueError, AssertionError):
            raise BackendUnavailable(f"--per-node {options.get('per_node')!r}: not allowed; "
                                     f"allowed: a whole number of at least 1", hint="") from None
        missing = [name for name in COMMANDS if shutil.which(name) is None]
        if missing:
            raise BackendUnavailable(f"no Slurm here: {', '.join(missing)} not on PATH",
                                     hint="run the lab on a Slurm login node, or use "
                                          "--backend docker or local")
        ping = _command(["scontrol", "ping"], timeout=20)
        if "is UP" not in ping.stdout:
            said = " ".join((ping.stdout + " " + ping.stderr).split("*")[0].split())[:200]
            raise BackendUnavailable(f"the Slurm controller does not answer ({said})",
                                     hint="start slurmctld, or check SLURM_CONF")
        partitions = show("partition")
        names = [p.get("PartitionName") for p in partitions]
        if not partition:
            default = [p for p in partitions if p.get("Default") == "YES"]
            if not default:
                raise BackendUnavailable(f"the cluster has no default partition; allowed: "
                                         f"--partition {', '.join(names) or '(none)'}", hint="")
            chosen = default[0]
        else:
            chosen = next((p for p in partitions if p.get("PartitionName") == partition), None)
            if chosen is None:
                raise BackendUnavailable(f"--partition {partition}: unknown partition; allowed: "
                                         f"{', '.join(names) or '(none)'}", hint="")
        partition = chosen["PartitionName"]
        if chosen.get("State") != "UP":
            raise BackendUnavailable(f"--partition {partition}: the partition is "
                                     f"{chosen.get('State')}, not UP", hint="")
        nodes = {n["NodeName"]: n for n in show("node")
                 if partition in (n.get("Partitions") or "").split(",")}
        usable = {name: n for name, n in nodes.items() if node_usable(n.get("State", ""))}
        if not usable:
            states = ", ".join(f"{name} {n.get('State')}" for name, n in nodes.items())
            raise BackendUnavailable(f"--partition {partition}: no usable node ({states or 'none'})",
                                     hint="")
        smallest = min(usable.values(), key=lambda n: _int(n.get("CPUEfctv") or n.get("CPUTot")))
        backend = cls(config, partition, usable, smallest, python, per_node)
        backend.version = _first_line(_command(["sinfo", "--version"]))
        return backend

    # --- the nodes' CPUs and facts ---------------------------------------------------------------

    def cpus(self):
        """The smallest usable node's CPUs, numbered nominally (package, core, thread): a trial
        gets a count of CPUs; which ones is the scheduler's choice."""
        from lab.hosts.topology import Cpu
        fields = self.node_cpus
        count = _int(fields.get("CPUEfctv") or fields.get("CPUTot"))
        sockets = max(1, _int(fields.get("Sockets"), 1))
        cores = max(1, _int(fields.get("CoresPerSocket"), 1))
        threads = max(1, _int(fields.get("ThreadsPerCore"), 1))
        if sockets * cores * threads != count:  # specialised cores or odd boards: cores only
            sockets, cores, threads = 1, count, 1
        return [Cpu(((s * cores) + c) * threads + t, s, s * cores + c)
                for s in range(sockets) for c in range(cores) for t in range(threads)]

    def host_facts(self):
        from lab.hosts import topology
        cpus = self.cpus()
        probe = self.node_facts
        cluster = self._cluster()
        return {
            "hostname": f"{self.partition}@{cluster}" if cluster else self.partition,
            "cpu_model": probe.get("cpu_model"), "cpu_count": len(cpus), "usable_cpus": len(cpus),
            "topology": topology.describe(cpus), "kernel": probe.get("kernel"),
            "cgroup_version": probe.get("cgroup_version"), "host_python": probe.get("python"),
            "architecture": probe.get("architecture"), "cluster": cluster,
            "partition": self.partition, "nodes": sorted(self.nodes),
            "node_cpus": {name: _int(n.get("CPUEfctv") or n.get("CPUTot"))
                          for name, n in sorted(self.nodes.items())},
            "login_host": socket.gethostname(),
        }

    def _cluster(self):
        done = _command(["scontrol", "show", "config"])
        for line in done.stdout.splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "ClusterName":
                return value.strip()
        return None

    def describe(self):
        return {"backend": "slurm", "slurm_version": self.version, "partition": self.partition,
                "python": self.python, "python_executable": self.node_facts.get("executable"),
                "python_version": self.node_facts.get("python"), "per_node": self.per_node, "nodes": sorted(self.nodes),
                "code_dir": str(self.code_dir) if self.code_dir else None,
                "code_digest": self.digest, "summary": self.summary()}

    def summary(self):
        """The backend in one line, for the report."""
        packing = ("one trial per node at a time" if self.per_node == 1 else
                   f"--per-node {self.per_node}: up to {self.per_node} trials share a node "
                   f"(caches, memory bandwidth, turbo)")
        return (f"slurm ({self.version or 'Slurm'}), partition {self.partition} "
                f"({len(self.nodes)} node(s): {', '.join(sorted(self.nodes))}); each trial one "
                f"job step of exactly its cores (srun -n1 -c N --cpu-bind=cores --exact), pinned by "
                f"Slurm's affinity and cpuset cgroup; {packing}; node Python {self.python}")

    def run_meta(self):
        return {"warnings": self.run_warnings()} if self.run_warnings() else {}

    def run_warnings(self):
        if self.per_node <= 1:
            return []
        return [{"code": "packed_nodes",
                 "message": f"--per-node {self.per_node}: up to {self.per_node} trials may run on "
                            f"one node at once; neighbours share caches, memory bandwidth and "
                            f"turbo headroom and can bend each other's curves",
                 "advice": "rerun with --per-node 1 for figures no neighbour touched"}]

    # --- the trial code ("image") ---------------------------------------------------------------

    @staticmethod
    def plan_images(bases, image=None):
        return [IMAGE_NAME]

    def prepare_images(self, bases, image=None, say=print):
        self.stage(say)
        return [IMAGE_NAME]

    def stage(self, say=print):
        """The trial code copied to the shared folder, and one step on a node that imports it
        with the node's Python (what that Python is, and that it can run the code)."""
        try:
            self.code_dir, self.digest = stage_code(PROJECT_ROOT, self.code_root)
        except OSError as error:
            raise BackendUnavailable(f"cannot copy the trial code to {self.code_root}: "
                                     f"{error.strerror or error}; set lab.slurm.code_dir to a "
                                     f"shared folder you can write", hint="") from None
        say(f"trial code {self.digest} in {self.code_dir}; asking a node of partition "
            f"{self.partition} for its Python ({self.python})")
        command = [*self._srun(PREPARE_JOB, 1, 60), self.python, "-c", NODE_PROBE]
        done = _command(command, timeout=max(120, self.pending_limit_s))
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode != 0 or not lines:
            why = trial_stderr(done.stderr).strip().splitlines()
            raise BackendUnavailable(
                f"--python {self.python}: the node could not run the lab's trial code "
                f"({why[-1][:200] if why else f'srun exit status {done.returncode}'})",
                hint="pass --python the node's interpreter (Python 3.11 or later)")
        self.node_facts = json.loads(lines[-1])
        return self.code_dir

    def use_recorded_images(self, recorded, names, run):
        info = recorded.get(IMAGE_NAME) or {}
        self.stage(lambda *_: None)
        if info.get("id") != self._image_id():
            raise ImageMismatch(f"--resume {run}: the image differs from the run's: its trials "
                                f"ran the trial code {info.get('id')}, this code is "
                                f"{self._image_id()}; resume with the code the run had, or "
                                f"start a new run")
        if info.get("python") != self.node_facts.get("python"):
            raise ImageMismatch(f"--resume {run}: the image differs from the run's: its trials "
                                f"ran on Python {info.get('python')}, {self.python} on the "
                                f"nodes is {self.node_facts.get('python')}")

    def image_for_rerun(self, recorded, base_image):
        return IMAGE_NAME

    def _image_id(self):
        return f"slurm-code:{self.digest}" if self.digest else None

    def image_info(self, name=None):
        return {"id": self._image_id(), "tag": f"{self.python} on {self.partition}",
                "base": None, "python": self.node_facts.get("python")}

    # --- one trial -------------------------------------------------------------------------------

    def _srun(self, job_name, count, time_limit_s, siblings=False):
        command = ["srun", f"--partition={self.partition}", "--nodes=1", "--ntasks=1",
                   f"--cpus-per-task={count}", "--cpu-bind=cores", "--exact",
                   f"--job-name={job_name}", f"--time={time_limit_minutes(time_limit_s)}",
                   "--kill-on-bad-exit=1", "--verbose"]
        if not siblings:  # spread: one CPU per core, never an SMT sibling
            command.insert(6, "--threads-per-core=1")
        if self.per_node == 1:  # the node is the trial's alone; the step still gets N cores
            command.insert(2, "--exclusive")
        elif self._lane_node(self.lane):
            command.insert(2, f"--nodelist={self._lane_node(self.lane)}")
        if self.code_dir is not None:
            command.append(f"--chdir={self.code_dir}")
        return command

    def _env(self):
        return {**self.env, "PYTHONPATH": str(self.code_dir)} if self.code_dir else self.env

    def run(self, spec, cpuset, quota, time_limit_s, labels=None, image=None):
        if quota is not None:
            raise BackendUnavailable("the slurm backend cannot apply a CPU quota; use "
                                     "--backend docker", hint="")
        if self.code_dir is None:
            self.stage(lambda *_: None)
        run_id = (labels or {}).get(RUN_LABEL, "adhoc")
        count = len(cpuset)
        # The plan's CPU ids mean nothing on a node: the trial checks the count it got, and
        # that its affinity is the step cgroup's cpuset.
        spec = {**spec, "expect_affinity": None, "expect_cpu_count": count,
                "expect_cgroup_cpuset": True}
        command = [*self._srun(JOB_PREFIX + run_id, count, time_limit_s,
                               siblings=self._has_siblings(cpuset)),
                   self.python, "-m", "lab.experiments", json.dumps(spec)]
        step = _Step(command, self._env(), str(self.code_dir))
        verdict = None
        try:
            verdict = self._watch(step, time_limit_s)
            stdout, stderr = step.finish(timeout=60)
        except BaseException:
            self._cancel(step.job_id, JOB_PREFIX + run_id)
            try:
                step.finish(timeout=30)
            except subprocess.TimeoutExpired:
                step.process.kill()
            raise
        ended = time.perf_counter()
        return self._outcome(step, stdout, stderr, ended, time_limit_s, verdict)

    def _has_siblings(self, cpuset):
        from lab.hosts.topology import cores
        groups = cores([c for c in self.cpus() if c.id in set(cpuset)])
        return any(len(group) > 1 for group in groups)

    def _watch(self, step, time_limit_s):
        """Wait for srun; cancel a job pending past the pending limit, or a step Slurm left
        running far past its own limit. Returns the host's verdict, or None."""
        limit_s = time_limit_minutes(time_limit_s) * 60 + SLURM_GRACE_S
        while True:
            if step.launched is None:
                deadline = step.submitted + self.pending_limit_s
            else:
                deadline = step.launched + limit_s
            if step.wait(min(deadline - time.perf_counter(), 5.0)):
                return None
            now = time.perf_counter()
            if now < deadline:
                continue
            if step.launched is None:
                reason = self._pending_reason(step.job_id)
                verdict = (f"PENDING: the job waited {self.pending_limit_s:g} s without starting "
                           f"(Slurm's reason: {reason}); cancelled (lab.slurm.pending_limit_s)")
            else:
                verdict = (f"TIMEOUT: still running {limit_s:g} s after it started, past Slurm's "
                           f"own limit; cancelled by the lab")
            self._cancel(step.job_id, None)
            return verdict

    def _pending_reason(self, job_id):
        jobs = show("job", job_id) if job_id else []
        return jobs[0].get("Reason", "unknown") if jobs else "unknown"

    def _cancel(self, job_id, job_name):
        try:
            if job_id:
                _command(["scancel", str(job_id)])
            elif job_name:
                _command(["scancel", f"--name={job_name}", f"--user={self.user}"])
        except BackendUnavailable:
            pass

    def _job_state(self, job_id, wait_s=10.0):
        """(JobState, Reason, ExitCode) of a finished job from scontrol (no accounting needed);
        waits while it is still completing."""
        if not job_id:
            return None, None, None
        deadline = time.perf_counter() + wait_s
        while True:
            try:
                jobs = show("job", job_id)
            except BackendUnavailable:
                jobs = []
            fields = jobs[0] if jobs else {}
            state = fields.get("JobState")
            if state not in ("RUNNING", "COMPLETING", "CONFIGURING", "PENDING", "SUSPENDED") \
                    or time.perf_counter() > deadline:
                return state, fields.get("Reason"), fields.get("ExitCode")
            time.sleep(0.2)

    def _outcome(self, step, stdout, stderr, ended, time_limit_s, verdict):
        exit_code = step.process.returncode
        started = step.launched if step.launched is not None else ended
        host_seconds = ended - started  # the step's launch to srun's exit: queue wait left out
        outcome = outcome_from(stdout, trial_stderr(stderr), exit_code, False, False,
                               host_seconds, time_limit_s)
        result = outcome.result or {}
        slurm = result.get("slurm") or {}
        ok = outcome.error is None and exit_code == 0 and verdict is None
        state, reason, slurm_exit = ("COMPLETED", None, "0:0") if ok else \
            self._job_state(step.job_id or slurm.get("job_id"))
        cancelled = _CANCELLED_LINE.search(stderr)
        if state in (None, "FAILED", "COMPLETED") and cancelled:  # scontrol forgot the job
            state = _DUE_TO.get(cancelled.group(3) or "", "CANCELLED")
        if verdict is not None:
            outcome.error, outcome.result = verdict, None
            outcome.timed_out = verdict.startswith("TIMEOUT")
        elif state in VERDICTS:
            limit = time_limit_minutes(time_limit_s)
            detail = (f" (--time {limit} min: the lab's trial limit of {time_limit_s:g} s, "
                      f"rounded up to Slurm's whole minutes)" if state == "TIMEOUT" else
                      f" (Slurm's reason: {reason})" if reason and reason != "None" else "")
            outcome.error = VERDICTS[state] + detail
            outcome.result = None
            outcome.timed_out = state == "TIMEOUT"
            outcome.oom_killed = state == "OUT_OF_MEMORY"
        elif outcome.error and step.launched is None:
            said = trial_stderr(stderr).strip().splitlines()
            outcome.error = (f"not started by Slurm: {said[-1][:300] if said else outcome.error}")
        if outcome.error and not outcome.stderr_tail:
            outcome.stderr_tail = trial_stderr(stderr)[-STDERR_TAIL_CHARS:]
        queue = (step.launched - step.submitted) if step.launched is not None else None
        node = slurm.get("node") or step.node
        outcome.extra = {
            **({"host": node} if node else {}), "node": node,
            "slurm_job_id": _int(slurm.get("job_id") or step.job_id, None),
            "slurm_step_id": _int(slurm.get("step_id") or step.step_id, None),
            "slurm_partition": self.partition,
            "slurm_state": state, "slurm_reason": reason if reason not in (None, "None") else None,
            "slurm_exit_code": slurm_exit,
            "step_cgroup": slurm.get("cgroup"), "step_cpuset": slurm.get("cpuset"),
            "queue_seconds": queue, "per_node": self.per_node,
        }
        return outcome

    # --- the run's jobs ---------------------------------------------------------------------------

    def _jobs_of(self, run_id):
        try:
            done = _command(["squeue", "-h", f"--name={JOB_PREFIX}{run_id}",
                             f"--user={self.user}", "-o", "%i"])
        except BackendUnavailable:
            return []
        return done.stdout.split() if done.returncode == 0 else []

    def stop_all(self, run_id):
        """Cancel this run's jobs (by their name, only this user's) and wait until squeue shows
        none of them; returns how many there were."""
        jobs = self._jobs_of(run_id)
        if not jobs:
            return 0
        _command(["scancel", f"--name={JOB_PREFIX}{run_id}", f"--user={self.user}"])
        deadline = time.perf_counter() + 60
        while self._jobs_of(run_id) and time.perf_counter() < deadline:
            time.sleep(0.25)
        return len(jobs)

    def stopped_phrase(self, run_id, count):
        return (f"no Slurm job of this run is left (job name {JOB_PREFIX}{run_id}"
                f"{f', {count} cancelled' if count else ''})")

    def engine_gone(self):
        return not controller_answers()


def _int(value, default=0):
    try:
        return int(str(value).split("(")[0])
    except (TypeError, ValueError):
        return default

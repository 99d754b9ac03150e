"""The slurm backend: each trial is one Slurm job of one step with exactly the point's CPUs.
This module owns the backend (connecting, lanes, the nodes' facts, the staged code as the run's
"image", the run's jobs); slurm_commands talks to Slurm, slurm_code stages the trial code,
slurm_step builds, watches and judges one step.

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
into <results dir>/.code/<digest>/ (lab.slurm.code_dir elsewhere, always made absolute) and run
from there; nothing is installed on a node. The digest is the run's "image" identity: --resume refuses changed code.

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
(`scancel --name multicore-lab-<run id> --user <you>`, the user of this process's uid), no
other job; the pre-run check and the calibration before a run has its id are named with this
invocation's own token (multicore-lab-prepare-<token>, multicore-lab-calibration-<token>), so
one run's Ctrl-C never cancels another's. Every srun is started inside the runner's
interruptible guard: after a Ctrl-C no lane submits again.

The host of every record is the run's (`<partition>@<cluster>`); the node a trial ran on is
its `node` (slurm_nodes: --per-node deals trials, not points, over the nodes).
"""

import copy
import json
import os
import pwd
import secrets
import shutil
import socket
import threading
import time
from pathlib import Path

# RUN_LABEL too: callers that run one trial by hand (tests, benchmarks) label it from here
from lab.backends import (RUN_LABEL, Backend, BackendUnavailable, FlagRefused,  # noqa: F401
                          ImageMismatch)
from lab.backends import slurm_input
from lab.backends.slurm_code import NODE_PROBE, PROBE_SPEC, stage_code, unstage
from lab.backends.slurm_commands import (COMMANDS, JOB_PREFIX,
                                         command, controller_answers, duration_minutes,
                                         first_line, minimal_env, node_usable, show,
                                         time_limit_minutes, to_int, why_failed)
from lab.backends.slurm_nodes import NodeDealer, idle_nodes, max_nodes_of
from lab.backends.slurm_step import SlurmSteps
from lab.backends.slurm_project import SlurmProject

from lab.package_files import PROJECT_ROOT
PREPARE_JOB = JOB_PREFIX + "prepare"      # + "-<token>": this invocation's own
IMAGE_NAME = "slurm"               # what points name as their image on this backend
PENDING_LIMIT_S = 1800             # lab.slurm.pending_limit_s: a trial's job waits this long
TRIAL_LIMIT_S = 600                # lab.trial_time_limit_s when the config has none
CHECK_LIMIT_S = 60                 # the pre-run check's --time: one minute


class SlurmBackend(SlurmSteps, SlurmProject, Backend):
    name = "slurm"
    engine_words = "the Slurm controller"
    trial_overhead_s = 0.3  # srun's scheduling pass and step launch, interpreter start (~0.2 s here)
    supports_quota = False
    flags = slurm_input.FLAGS

    def __init__(self, config, partition, nodes, node_cpus, python="python3", per_node=1,
                 max_nodes=None):
        super().__init__(config)
        self.partition = partition
        self.nodes = nodes                  # {name: scontrol's fields} of the usable nodes
        self.node_cpus = node_cpus          # the fields of the smallest usable node
        self.python = python
        self.per_node = per_node
        settings = config.get("slurm") or {}
        self.pending_limit_s = float(settings.get("pending_limit_s") or PENDING_LIMIT_S)
        # absolute: srun's --chdir and the step's PYTHONPATH are read on the node, in another
        # working directory than this process's
        self.code_root = Path(os.path.abspath(settings.get("code_dir") or
                                              Path(config.get("results_dir") or "results") / ".code"))
        self.code_dir = None                # set by stage(): <code_root>/<digest>
        self.digest = None
        self.node_facts = {}                # what the prepare step saw on a node
        self.user = pwd.getpwuid(os.getuid()).pw_name  # whose jobs scancel/squeue may touch
        self.token = secrets.token_hex(4)   # names this invocation's jobs before a run id exists
        self.max_nodes, self.max_nodes_from = max_nodes_of(
            max_nodes if max_nodes is not None else settings.get("max_nodes"), nodes,
            "--max-nodes" if max_nodes is not None else "lab.slurm.max_nodes")
        idle = idle_nodes(nodes)
        self.held = sorted([*idle, *(n for n in sorted(nodes) if n not in idle)][:self.max_nodes])
        # shared by every lane's view (copy.copy keeps these objects)
        self.dealer = NodeDealer(self.held, per_node) if per_node > 1 else None
        self.live = set()                   # the srun processes running now, every lane's
        self.live_lock = threading.Lock()
        self.cluster = None
        self.env = minimal_env()
        self.version = None
        self.lane = None                    # set on a lane's view (on_lane)
        self._lanes = {}                    # point_id -> lane
        self._views = {}                    # lane -> the backend view that runs it

    # --- lanes: how many trials at once, and where --------------------------------------------------

    def slots(self):
        """Trials at once: one per node held (each job takes its node whole: --exclusive), or
        --per-node N on each (each trial dealt its node: --nodelist); at most max_nodes nodes."""
        return self.max_nodes * self.per_node

    def lane_of(self, point):
        """The points of the run dealt over the slots in the order the runner asks (the
        plan's); one slot: the one sequential lane. A lane is no node: with --per-node 1 a
        trial lands on whichever node is free, with --per-node N each trial is dealt a node."""
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
        return f"Slurm lane {lane}"

    # --- connecting -------------------------------------------------------------------------------

    @classmethod
    def connect(cls, config):
        """A backend on the partition asked for (or the default one), or BackendUnavailable
        saying in one line what is missing: Slurm's commands, the controller, the partition, a
        usable node."""
        options = config.get("backend_options") or {}
        max_nodes = options.get("max_nodes") or (config.get("slurm") or {}).get("max_nodes")
        try:  # checked by the flags' own parsers: a caller from Python gets the same refusals
            partition = slurm_input.partition(options.get("partition"))
            python = slurm_input.python(options.get("python"))
            per_node = slurm_input.per_node(options.get("per_node"))
        except FlagRefused as why:
            raise BackendUnavailable(str(why), hint="") from None
        missing = [name for name in COMMANDS if shutil.which(name) is None]
        if missing:
            raise BackendUnavailable(f"no Slurm here: {', '.join(missing)} not on PATH",
                                     hint="run the lab on a Slurm login node, or use "
                                          "--backend docker or local")
        ping = command(["scontrol", "ping"], timeout=20)
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
        check_time_limit(chosen, float(config.get("trial_time_limit_s") or TRIAL_LIMIT_S))
        smallest = min(usable.values(), key=lambda n: to_int(n.get("CPUEfctv") or n.get("CPUTot")))
        try:
            backend = cls(config, partition, usable, smallest, python, per_node, max_nodes)
        except ValueError as error:
            raise BackendUnavailable(str(error), hint="") from None
        backend.version = first_line(command(["sinfo", "--version"]))
        return backend

    # --- the nodes' CPUs and facts ---------------------------------------------------------------

    def cpus(self):
        """The smallest usable node's CPUs, numbered nominally (package, core, thread): a trial
        gets a count of CPUs; which ones is the scheduler's choice."""
        from lab.hosts.topology import Cpu
        fields = self.node_cpus
        count = to_int(fields.get("CPUEfctv") or fields.get("CPUTot"))
        sockets = max(1, to_int(fields.get("Sockets"), 1))
        cores = max(1, to_int(fields.get("CoresPerSocket"), 1))
        threads = max(1, to_int(fields.get("ThreadsPerCore"), 1))
        if sockets * cores * threads != count:  # specialised cores or odd boards: cores only
            sockets, cores, threads = 1, count, 1
        return [Cpu(((s * cores) + c) * threads + t, s, s * cores + c)
                for s in range(sockets) for c in range(cores) for t in range(threads)]

    def host_facts(self):
        from lab.hosts import topology
        cpus = self.cpus()
        probe = self.node_facts
        cluster = self.cluster or self._cluster()
        return {
            "hostname": f"{self.partition}@{cluster}" if cluster else self.partition,
            "cpu_model": probe.get("cpu_model"), "cpu_count": len(cpus), "usable_cpus": len(cpus),
            "topology": topology.describe(cpus), "kernel": probe.get("kernel"),
            "cgroup_version": probe.get("cgroup_version"), "host_python": probe.get("python"),
            "architecture": probe.get("architecture"), "cluster": cluster,
            "partition": self.partition, "nodes": sorted(self.nodes),
            "node_cpus": {name: to_int(n.get("CPUEfctv") or n.get("CPUTot"))
                          for name, n in sorted(self.nodes.items())},
            "login_host": socket.gethostname(),
        }

    def _cluster(self):
        done = command(["scontrol", "show", "config"])
        for line in done.stdout.splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "ClusterName":
                self.cluster = value.strip()
                return self.cluster
        return None

    def describe(self):
        return {"backend": "slurm", "slurm_version": self.version, "partition": self.partition,
                "python": self.python, "python_executable": self.node_facts.get("executable"),
                "python_version": self.node_facts.get("python"), "per_node": self.per_node, "nodes": sorted(self.nodes),
                "max_nodes": self.max_nodes, "nodes_held": self.held,
                "code_dir": str(self.code_dir) if self.code_dir else None,
                "code_digest": self.digest, "summary": self.summary()}

    def summary(self):
        """The backend in one line, for the report."""
        packing = ("one trial per node at a time" if self.per_node == 1 else
                   f"--per-node {self.per_node}: up to {self.per_node} trials share a node "
                   f"(caches, memory bandwidth, turbo), each trial dealt a node so that every "
                   f"point's trials spread over the nodes")
        packing += (f"; at most {self.max_nodes} node(s) held at once ({self.max_nodes_from}); "
                    f"one host {self.partition}@{self.cluster or self._cluster() or '?'}, each "
                    f"trial's node recorded beside it")
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
        """The trial code copied to the shared folder, then the pre-run check: one 1-CPU step
        built by step_command exactly as a trial's (flags, environment, working directory,
        --python), which imports the code and runs a probe trial on a node. Refused in one line
        when it fails, and what this call staged is taken away again."""
        try:
            self.code_dir, self.digest, made = stage_code(PROJECT_ROOT, self.code_root)
        except OSError as error:
            raise BackendUnavailable(f"cannot copy the trial code to {self.code_root}: "
                                     f"{error.strerror or error}; set lab.slurm.code_dir to a "
                                     f"shared folder you can write", hint="") from None
        step = self.step_command(f"{PREPARE_JOB}-{self.token}", 1, CHECK_LIMIT_S,
                                 ["-c", NODE_PROBE, json.dumps(PROBE_SPEC)])
        try:
            done = command(step.argv, timeout=max(120, self.pending_limit_s), env=step.env,
                           cwd=step.cwd)
        except BackendUnavailable:
            unstage(made)
            raise
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode != 0 or not lines:
            unstage(made)
            self.code_dir = self.digest = None
            raise BackendUnavailable(*self._check_failed(done))
        self.node_facts = json.loads(lines[-1])
        # said once the check passed, so that a refusal stays the one line it is
        say(f"trial code {self.digest} in {self.code_dir}; the nodes' Python: {self.python} is "
            f"{self.node_facts.get('executable')} {self.node_facts.get('python')} (node "
            f"{self.node_facts.get('node')} of partition {self.partition})")
        return self.code_dir

    def _check_failed(self, done):
        """(message, hint) of a failed pre-run check: the node's own words, and whether the
        interpreter or the code's folder is to blame."""
        why = why_failed(done.stderr, done.returncode)
        unseen = "couldn't chdir" in done.stderr or "No module named 'lab'" in done.stderr
        hint = (f"the nodes cannot read the trial code in {self.code_root}: set "
                f"lab.slurm.code_dir (or --results-dir) to a folder on the filesystem the "
                f"nodes share" if unseen else
                "allowed: --python the nodes' interpreter, a command on their PATH or a path "
                "(Python 3.11 or later)")
        return (f"--python {self.python}: the pre-run check, a step run as the trials are, "
                f"failed on partition {self.partition} ({why})", hint)

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

    # --- the run's jobs ---------------------------------------------------------------------------

    def _jobs_of(self, run_id):
        try:
            done = command(["squeue", "-h", f"--name={JOB_PREFIX}{run_id}",
                             f"--user={self.user}", "-o", "%i"])
        except BackendUnavailable:
            return []
        return done.stdout.split() if done.returncode == 0 else []

    def stop_all(self, run_id):
        """Cancel this run's jobs (by their name, only this user's) until squeue shows none of
        them and no srun of this process is left (an srun started just before the stop may
        submit its job after the first scancel); returns how many jobs were seen."""
        seen = set(self._jobs_of(run_id))
        deadline = time.perf_counter() + 60
        while time.perf_counter() < deadline:
            with self.live_lock:
                running = [step for step in self.live if step.process.poll() is None]
            if not seen and not running:
                break
            command(["scancel", f"--name={JOB_PREFIX}{run_id}", f"--user={self.user}"])
            time.sleep(0.25)
            jobs = self._jobs_of(run_id)
            seen.update(jobs)
            if not jobs and not running:
                break
        return len(seen)

    def stopped_phrase(self, run_id, count):
        return (f"no Slurm job of this run is left (job name {JOB_PREFIX}{run_id}"
                f"{f', {count} cancelled' if count else ''})")

    def engine_gone(self):
        return not controller_answers()


def check_time_limit(partition, trial_limit_s):
    """Refuse a trial limit longer than the partition's MaxTime: Slurm would refuse every
    trial's job, one by one."""
    most = duration_minutes(partition.get("MaxTime"))
    asked = time_limit_minutes(trial_limit_s)
    if most is not None and asked > most:
        name = partition.get("PartitionName")
        raise BackendUnavailable(
            f"--partition {name}: its MaxTime is {partition.get('MaxTime')}, shorter than a "
            f"trial's --time={asked} (lab.trial_time_limit_s {trial_limit_s:g} s in Slurm's "
            f"whole minutes); allowed: lab.trial_time_limit_s (INVOKE_LAB_TRIAL_TIME_LIMIT_S) "
            f"up to {int(most * 60)} s, or a partition with a longer MaxTime", hint="")

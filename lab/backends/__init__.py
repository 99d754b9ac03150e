"""Where a trial executes. Every backend is a `Backend`; nothing outside lab/backends asks which.

A new backend (a remote engine, a cluster) is one module here with one `Backend` subclass, named
in `CLASSES`: the options, the runner, the run folder, resume and the report do not change. A
backend declares what the user types for it (its flags, the host strings it takes) and says its
own errors in one line (`refusal`); the generic code asks this module, never a backend by name.

`choose_backend` implements the rule for --backend auto|docker|local (ARCHITECTURE.md, README).
"""

import contextlib
import importlib
import json
import os
from dataclasses import dataclass, field

STDERR_TAIL_CHARS = 2000
RUN_LABEL = "multicore-lab.run"  # every trial container carries its run id under this label
PID_LABEL = "multicore-lab.pid"  # and the pid of the lab process that started it
POINT_LABEL = "multicore-lab.point"  # and the id of its point
BACKENDS = ("auto", "docker", "local", "slurm")  # auto never picks slurm
# name -> (module, class): imported only when that backend's class is asked for
CLASSES = {"local": ("lab.backends.local", "LocalBackend"),
           "docker": ("lab.backends.docker", "DockerBackend"),
           "slurm": ("lab.backends.slurm", "SlurmBackend")}
DEFAULT_HOST = "local"  # the host of a run without --hosts: this machine (its records name none)
HOST_PYTHON = "local"   # the image a point names on a backend that runs none (the host's Python)
# a refusal's kind: the user's input, refused before anything was written (exit 2), or a failure
# of something the run needed (exit 1)
REFUSED, FAILED = "refused", "failed"


class BackendUnavailable(RuntimeError):
    """The backend asked for cannot run trials here; the message says why and what to do.
    `hint`: what to do instead, when the backend knows better than the generic advice ("" for
    none: the message says it all)."""

    def __init__(self, message, hint=None):
        super().__init__(message)
        self.hint = hint

    def advice(self):
        """What to do, in words ("" for nothing beyond the message)."""
        return "start dockerd, or use --backend local" if self.hint is None else self.hint


class FlagRefused(ValueError):
    """A backend's flag value or host string it refuses; the message is the one line the user
    sees (lab.run.options turns it into BadInput)."""


@dataclass(frozen=True)
class BackendFlag:
    """A flag a backend takes (a task flag that configures the backend, not the plan)."""
    name: str      # the task's flag and meta.json's `flags` key, e.g. "partition"
    parse: object  # the value as given (None: not given) -> what the backend gets; FlagRefused


class ImageMismatch(RuntimeError):
    """--resume: the images (or Python) a run used are not what this backend has now."""


@dataclass
class TrialOutcome:
    result: dict | None      # the trial's JSON line, parsed
    error: str | None        # why the trial failed, or None
    exit_code: int | None
    oom_killed: bool
    timed_out: bool
    host_seconds: float      # start to exit as the host saw it (container or process start included)
    stderr_tail: str
    extra: dict = field(default_factory=dict)  # backend-specific record fields (slurm: node, job)


class UserInput:
    """What the user types for a backend, declared by its class and asked before anything
    connects (lab.run.options, lab.commands.refusal)."""
    flags = ()       # its BackendFlags (e.g. slurm's --partition), each parsed by the class
    host_forms = ""  # the --hosts strings it takes, in words ("" for none)

    @staticmethod
    def host_item(item, source, allowed):
        """One --hosts item in its form, None when not its kind, FlagRefused when malformed."""
        return None

    @staticmethod
    def refusal(error):
        """(REFUSED or FAILED, one line) for an error of its own, else None."""
        return None


class HostInfo:
    """The host trials run on: its CPUs (what points are made on) and what meta.json records."""

    def cpus(self):
        """The CPUs (hosts.topology.Cpu) of the host trials run on."""
        from lab.hosts import topology
        return topology.read_cpus()

    def host_facts(self):
        """What meta.json records of that host."""
        from lab.hosts import facts
        return facts.host(self.cpus())

    def describe(self):
        """What meta.json records of the backend itself."""
        raise NotImplementedError


class TrialArtifact:
    """What a trial runs: a trial image (docker), this host's Python (local), the code staged
    for a cluster's nodes (slurm). Points carry its name (plan.Point.image)."""

    @staticmethod
    def plan_images(bases, image=None):
        """The names points carry, without building anything."""
        raise NotImplementedError

    def prepare_images(self, bases, image=None, say=print):
        """Build, reuse or stage the artifact; returns the names points carry."""
        raise NotImplementedError

    def use_recorded_images(self, recorded, names, run):
        """--resume: the very artifact the run used, or ImageMismatch."""
        raise NotImplementedError

    def use_recorded(self, meta, names, run):
        """--resume: use_recorded_images from the run's meta.json."""
        return self.use_recorded_images(meta.get("images") or {}, names, run)

    def image_for_rerun(self, recorded, base_image):
        """The name a point of another run's plan (--plan) runs on here."""
        raise NotImplementedError

    def image_info(self, name=None):
        """id, tag, base, python of the artifact a point names."""
        raise NotImplementedError

    def known_python(self, name):
        """The Python of the artifact `name` where it can be had without building, staging or
        starting anything (what a dry run may ask), else None."""
        return None


class TrialRunner:
    """Running and stopping trials."""
    engine_words = "the backend"  # what stops answering when the run fails ("the Docker engine")
    trial_overhead_s = 0.5  # rough seconds a trial costs beyond its work (estimates only)
    supports_quota = False  # whether a CFS quota can be set on a trial

    def run(self, spec, cpuset, quota, time_limit_s, labels=None, image=None):
        """One trial -> TrialOutcome."""
        raise NotImplementedError

    def stop_all(self, run_id):
        """Stop whatever this run still has running; returns how many."""
        return 0

    def stopped_phrase(self, run_id, count):
        """Those stops in words, for the interrupt message."""
        return "the trial in flight is stopped"

    def stop_failed_phrase(self, run_id, why):
        """`stop_all` raised: what could not be stopped and how to find it, in words."""
        return (f"could not stop the run's containers ({why}); look for label "
                f"{RUN_LABEL}={run_id}")

    def removed_phrase(self, run_id, count):
        """What --resume removed that a killed run left behind, in words."""
        return (f"removed {count} container(s) left behind by run {run_id} "
                f"(label {RUN_LABEL}={run_id})")

    quota_advice = "use --backend docker"  # where a point's CPU quota can be set

    @staticmethod
    def quota_refusal(by_name):
        """Why a --quota cannot run here, in words; `by_name`: the backend was asked for by
        name (else auto fell back to it)."""
        if by_name:
            return ("--quota needs containers: a CPU quota cannot be set on a host process; "
                    "use --backend docker or auto")
        return "--quota needs the docker backend, and no Docker engine answers"

    def engine_gone(self):
        """Whether what runs its trials stopped answering (the run fails, no record)."""
        return False

    def close(self):
        """Release connections."""


class Lanes:
    """Trials side by side: the runner runs each lane one trial at a time, lanes in parallel.
    A single host is one lane (None)."""

    def lane_of(self, point):
        """Which lane runs the point (None: the one lane of a single host)."""
        return None

    def on_lane(self, lane):
        """The Backend that runs that lane's trials."""
        return self

    def host_of(self, lane, default):
        """The host name that lane's records carry."""
        return default

    def lane_group(self, lane):
        """Lanes of one group run one after another (hosts on one machine)."""
        return lane

    def host_words(self, lane):
        return "the host"

    def host_cpus(self):
        """{point.host: that host's CPUs}, what each host's points are made on."""
        return {"": self.cpus()}

    def run_meta(self):
        """What meta.json adds (e.g. "hosts": a facts block per host)."""
        return {}


class Backend(UserInput, HostInfo, TrialArtifact, TrialRunner, Lanes):
    """What the run machinery needs of a place that runs trials: five small interfaces, each
    implemented once in the backend's own file (docker, local, slurm, multihost):

    UserInput      its flags, --hosts strings and errors, asked before anything connects
    HostInfo       cpus(), host_facts(), describe()
    TrialArtifact  what a trial runs: plan_images, prepare_images, use_recorded(_images),
                   image_for_rerun, image_info
    TrialRunner    run(spec, cpuset, quota, time_limit_s, labels, image) -> TrialOutcome,
                   stop_all(run_id) and its phrases, engine_gone(), close()
    Lanes          lane_of, on_lane, host_of, lane_group, host_words, host_cpus, run_meta

    `name` ("docker", "local", "slurm") is recorded with every trial and is no one's to branch
    on outside lab/backends.
    """
    name = ""

    def __init__(self, config):
        self.config = config
        # Steps a signal must not cut in half; the runner lends its signal guard's `shielded`.
        self.uninterruptible = contextlib.nullcontext


def trial_tags(run_id, point_id=None):
    """What a trial is run with to say whose it is (`labels` of Backend.run): its run, its point.
    A backend finds the run's trials by them (docker: container labels; slurm: the job name)."""
    return {RUN_LABEL: run_id, **({POINT_LABEL: point_id} if point_id else {})}


def run_of(tags, default=None):
    """The run id of `tags` (trial_tags), else `default`."""
    return (tags or {}).get(RUN_LABEL, default)


def point_of(tags):
    """The point id of `tags` (trial_tags), or None."""
    return (tags or {}).get(POINT_LABEL)


def outcome_from(stdout, stderr, exit_code, timed_out, oom_killed, host_seconds, time_limit_s):
    """Turn what a finished trial left behind into an outcome with one clear reason on failure."""
    tail = stderr[-STDERR_TAIL_CHARS:]
    lines = [line for line in stdout.strip().splitlines() if line.strip()]
    result = None
    if lines:
        try:
            result = json.loads(lines[-1])
        except json.JSONDecodeError:
            result = None
        if not isinstance(result, dict):
            result = None
    if timed_out:
        error = f"timeout: still running after the {time_limit_s:g} s trial limit"
    elif oom_killed:
        error = "out of memory: killed at the container's memory limit (OOMKilled)"
    elif result is not None and not result.get("ok"):
        error = result.get("error") or f"trial failed (exit {exit_code})"
    elif exit_code != 0:
        error = f"exited with status {exit_code}"
    elif result is None:
        error = "unparsable output: the last line of stdout is not a JSON object"
    else:
        error = None
    return TrialOutcome(result, error, exit_code, oom_killed, timed_out, host_seconds, tail)


def backend_class(name):
    """The Backend subclass called `name` (KeyError for none), without connecting to anything."""
    module, cls = CLASSES[name]
    return getattr(importlib.import_module(module), cls)


def backend_classes():
    return [backend_class(name) for name in CLASSES]


def flag_names():
    """The flags some backend takes, each once, in CLASSES order."""
    return tuple(dict.fromkeys(flag.name for cls in backend_classes() for flag in cls.flags))


def parse_flags(values):
    """{flag: its parsed value} of every backend's flags, from `values` (None: not given);
    FlagRefused in one line for a value its backend refuses."""
    parsed = {}
    for cls in backend_classes():
        for flag in cls.flags:
            parsed.setdefault(flag.name, flag.parse(values.get(flag.name)))
    return parsed


def hosts_allowed():
    """What --hosts takes, in words: the default host and each backend's host strings."""
    forms = [cls.host_forms for cls in backend_classes() if cls.host_forms]
    return (f"allowed: {', '.join([DEFAULT_HOST, *forms])}, comma-separated, or @FILE with one "
            f"host a line")


def host_item(item, source=""):
    """One --hosts item, checked for form by the backend whose kind it is (whether it answers
    is found when connecting); FlagRefused in one line for none. `source`: where it was read
    (" (in FILE)" or "")."""
    if item == DEFAULT_HOST:
        return item
    allowed = hosts_allowed()
    for cls in backend_classes():
        found = cls.host_item(item, source, allowed)
        if found is not None:
            return found
    raise FlagRefused(f"--hosts{source} {item!r}: unknown kind of host; {allowed}")


def on_default_host(hosts):
    """Whether `hosts` (--hosts) is this machine alone, as a run without --hosts is."""
    return list(hosts or [DEFAULT_HOST]) == [DEFAULT_HOST]


def refusal(error):
    """(REFUSED or FAILED, one line) for a backend's error a user can cause or fix, else None.
    BackendUnavailable is every backend's; each backend says its own others."""
    if isinstance(error, BackendUnavailable):  # raised after connecting: a node's Python, a probe
        text = " ".join(str(error).split())[:500]
        hint = f"; {error.hint}" if error.hint else ""
        # before a run folder exists nothing was written: refused; once a run exists, it is
        # left unfinished, as a run the backend failed
        return (FAILED if getattr(error, "run_exists", False) else REFUSED), f"error: {text}{hint}"
    for cls in backend_classes():
        said = cls.refusal(error)
        if said is not None:
            return said
    return None


def build_image(base_image, rebuild=False, say=print):
    """`invoke build`: the trial image of `base_image` (lab.backends.docker_commands)."""
    from lab.backends.docker_commands import build
    return build(base_image, rebuild=rebuild, say=say)


def say_engine(base_image, say=print):
    """`invoke info`'s engine lines: the engine, the images of `base_image`, what --backend auto
    picks here."""
    from lab.backends.docker_commands import engine_lines
    engine_lines(base_image, say)


def engine_requested_explicitly():
    return bool(os.environ.get("DOCKER_HOST"))


def choose_backend(name, config, say=print, hosts=("local",), several=False):
    """The backend for `--backend name`: auto falls back to local loudly; docker never does.
    `config` is the lab's config (its `docker` section configures containers). `hosts`
    (--hosts) other than `local` alone, or `several` (a --hosts run resumed on `local` alone):
    one Docker backend per host, run side by side."""
    from lab.backends.local import LocalBackend
    hosts = list(hosts or [DEFAULT_HOST])
    if name == "slurm":  # never chosen by auto: a cluster is asked for by name
        if not on_default_host(hosts):
            raise BackendUnavailable("it names Docker hosts; the slurm backend runs on the "
                                     "nodes of its partition (--partition)", hint="")
        from lab.backends.slurm import SlurmBackend
        return SlurmBackend.connect(config)
    if several or not on_default_host(hosts):
        return _several_hosts(name, config, hosts)
    if name == "local":
        return LocalBackend(config)
    from lab.backends.docker import DockerBackend, connect
    try:
        client = connect()
    except BackendUnavailable as why:
        if name == "docker" or engine_requested_explicitly():
            raise
        say(f"WARNING: no Docker engine answers ({why}); running trials on the local backend "
            f"(host processes pinned with sched_setaffinity). Start dockerd for containers.")
        return LocalBackend(config)
    return DockerBackend(client, config.get("docker", {}))


def _several_hosts(name, config, hosts):
    """A MultiHostBackend of one DockerBackend per host, each connected (one SSH login per
    remote host) and answering; BackendUnavailable in one line for the first that does not."""
    if name == "local":
        raise BackendUnavailable("--hosts runs trials in containers on each host's Docker "
                                 "engine; use --backend docker or auto with --hosts")
    from lab.backends.docker import DockerBackend, connect_host
    from lab.backends.multihost import MultiHostBackend
    members, clients = {}, {}
    shared = {}

    def source():
        """This machine's engine, to ship images from (None without one)."""
        if "client" not in shared:
            try:
                shared["client"] = clients.get("local") or connect_host("local")
            except BackendUnavailable:
                shared["client"] = None
        return shared["client"]

    try:
        for host in hosts:
            clients[host] = connect_host(host)
            members[host] = DockerBackend(clients[host], config.get("docker", {}), host=host,
                                          source=source)
        _one_engine_once(clients)
    except BackendUnavailable:
        for client in clients.values():
            client.close()
        raise
    return MultiHostBackend(members, config)


def _one_engine_once(clients):
    """BackendUnavailable naming both entries when two --hosts reach one engine (its engine
    ID): its trials would run twice, side by side on the same CPUs."""
    seen = {}
    for host, client in clients.items():
        engine_id = client.info().get("ID")
        if engine_id and engine_id in seen:
            raise BackendUnavailable(
                f"hosts {seen[engine_id]} and {host} reach one Docker engine (engine ID "
                f"{engine_id[:17]}...): its trials would run twice, side by side on the same "
                f"CPUs; give each engine once")
        seen.setdefault(engine_id, host)

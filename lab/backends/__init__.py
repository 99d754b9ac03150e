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


class Backend:
    """What the run machinery needs of a place that runs trials.

    name                   "docker" | "local" (recorded with every trial)
    trial_overhead_s       rough seconds a trial costs beyond its work (estimates only)
    supports_quota         whether a CFS quota can be set on a trial
    cpus()                 the CPUs (hosts.topology.Cpu) of the host trials run on
    host_facts()           what meta.json records of that host
    describe()             what meta.json records of the backend itself
    plan_images(bases, image)      the names points carry, without building anything
    prepare_images(bases, image, say)  build or reuse the trial images; returns those names
    use_recorded_images(images, names, run)  --resume: the very images of the run, or ImageMismatch
    image_for_rerun(recorded, base_image)    the image a point of another run's plan runs on here
    image_info(name)       id, tag, base, python of the image a point names
    run(spec, cpuset, quota, time_limit_s, labels, image) -> TrialOutcome
    stop_all(run_id)       stop whatever this run still has running; returns how many
    stopped_phrase(run_id, count)  those stops in words, for the interrupt message
    stop_failed_phrase(run_id, why)  stop_all raised: what is left and how to find it, in words
    engine_gone()          the backend's engine stopped answering (the run fails, no record)
    close()                release connections

    Several hosts (--hosts) are lanes the runner runs side by side, one trial at a time each:
    lane_of(point)         which lane runs the point (None: the one lane of a single host)
    on_lane(lane)          the Backend that runs that lane's trials
    host_of(lane, default) the host name that lane's records carry
    lane_group(lane)       lanes of one group run one after another (hosts on one machine)
    host_cpus()            {point.host: that host's CPUs}, what each host's points are made on
    run_meta()             what meta.json adds (e.g. "hosts": a facts block per host)
    use_recorded(meta, names, run)  --resume: use_recorded_images from the run's meta.json

    What the user types for it, declared by the class (asked before anything connects):
    flags                  its BackendFlags (e.g. slurm's --partition), parsed by the class
    host_forms             the --hosts strings it takes, in words ("" for none)
    host_item(item, source, allowed)  one --hosts item in its form, None when not its kind
    refusal(error)         (REFUSED or FAILED, one line) for an error of its own, else None
    quota_refusal(by_name) why a --quota cannot run here, in words
    removed_phrase(run_id, count)  what --resume removed that a killed run left, in words
    """
    name = ""
    engine_words = "the backend"  # what stops answering when the run fails ("the Docker engine")
    trial_overhead_s = 0.5
    supports_quota = False
    flags = ()
    host_forms = ""

    @staticmethod
    def host_item(item, source, allowed):
        return None

    @staticmethod
    def refusal(error):
        return None

    @staticmethod
    def quota_refusal(by_name):
        """`by_name`: the backend was asked for by name (else auto fell back to it)."""
        if by_name:
            return ("--quota needs containers: a CPU quota cannot be set on a host process; "
                    "use --backend docker or auto")
        return "--quota needs the docker backend, and no Docker engine answers"

    def removed_phrase(self, run_id, count):
        return (f"removed {count} container(s) left behind by run {run_id} "
                f"(label {RUN_LABEL}={run_id})")

    def __init__(self, config):
        self.config = config
        # Steps a signal must not cut in half; the runner lends its signal guard's `shielded`.
        self.uninterruptible = contextlib.nullcontext

    def cpus(self):
        from lab.hosts import topology
        return topology.read_cpus()

    def host_facts(self):
        from lab.hosts import facts
        return facts.host(self.cpus())

    def describe(self):
        raise NotImplementedError

    @staticmethod
    def plan_images(bases, image=None):
        raise NotImplementedError

    def prepare_images(self, bases, image=None, say=print):
        raise NotImplementedError

    def use_recorded_images(self, recorded, names, run):
        raise NotImplementedError

    def image_for_rerun(self, recorded, base_image):
        raise NotImplementedError

    def image_info(self, name=None):
        raise NotImplementedError

    def run(self, spec, cpuset, quota, time_limit_s, labels=None, image=None):
        raise NotImplementedError

    def stop_all(self, run_id):
        return 0

    def lane_of(self, point):
        return None

    def on_lane(self, lane):
        return self

    def host_of(self, lane, default):
        return default

    def lane_group(self, lane):
        return lane

    def host_words(self, lane):
        return "the host"

    def host_cpus(self):
        return {"": self.cpus()}

    def run_meta(self):
        return {}

    def use_recorded(self, meta, names, run):
        return self.use_recorded_images(meta.get("images") or {}, names, run)

    def stopped_phrase(self, run_id, count):
        return "the trial in flight is stopped"

    def stop_failed_phrase(self, run_id, why):
        """`stop_all` raised: what could not be stopped and how to find it, in words."""
        return (f"could not stop the run's containers ({why}); look for label "
                f"{RUN_LABEL}={run_id}")

    def engine_gone(self):
        return False

    def close(self):
        pass


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
